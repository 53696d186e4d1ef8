/**
 * Converter benchmark: a synthetic checkpoint with the real block structure and widths of the
 * `CompVis/ldm-text2im-large-256` UNet (872.3M parameters, fp16 safetensors, 1.75 GB) converted to fp16 ONNX with
 * external data; reports wall time, throughput and peak resident memory (RSS sampled every 20 ms), plus the tiny
 * text-to-image pipeline for scale. The synthetic source is generated first and not timed. About 40 s on 2 cores.
 *
 * @module
 */
import { join } from "node:path";
import { rssMiB, timeMedianMs } from "./_harness.ts";
import type { BenchRow, BenchSuite } from "./_harness.ts";
import { convertPipeline } from "../models/convert/mod.ts";
import { writeSyntheticPipeline } from "../models/convert/_synthetic.ts";

const TINY = new URL("../tests/fixtures/diffusers-tiny/ldm-text2im", import.meta.url).pathname;

/** Runs `fn` while sampling RSS; returns its result, the peak RSS in MiB and the wall time in seconds. */
async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number; seconds: number }> {
  let peak = rssMiB();
  const timer = setInterval(() => peak = Math.max(peak, rssMiB()), 20);
  const t0 = performance.now();
  try {
    const value = await fn();
    peak = Math.max(peak, rssMiB());
    return { value, peak, seconds: (performance.now() - t0) / 1000 };
  } finally {
    clearInterval(timer);
  }
}

/** The suite. */
export async function run(): Promise<BenchSuite> {
  const rows: BenchRow[] = [];
  const dir = await Deno.makeTempDir({ prefix: "ldm-bench-convert-" });
  try {
    const src = join(dir, "src");
    const gen = await withPeakRss(() => writeSyntheticPipeline(src, { components: ["unet"], dtype: "F16" }));
    const params = gen.value.unet!;
    rows.push({
      name: "generate synthetic UNet source (F16 safetensors)",
      value: gen.seconds,
      unit: "s",
      notes: `${(params / 1e6).toFixed(1)}M parameters`,
    });
    const before = rssMiB();
    const conv = await withPeakRss(() => convertPipeline(src, join(dir, "out"), { dtype: "fp16", hashSources: false }));
    const graph = conv.value.manifest.components.unet!.graphs!.model!;
    rows.push({
      name: "convert real-size UNet fp16 → unet/model.onnx + model.onnx_data",
      value: conv.seconds,
      unit: "s",
      notes: `${(conv.value.bytes / 2 ** 30).toFixed(2)} GiB written and hashed; external data: ${graph.externalData}`,
    });
    rows.push({
      name: "conversion throughput (weight bytes / wall time)",
      value: graph.weightBytes / 2 ** 20 / conv.seconds,
      unit: "MiB/s",
    });
    rows.push({
      name: "peak RSS during the real-size conversion",
      value: conv.peak,
      unit: "MiB",
      notes: `RSS before: ${before.toFixed(0)} MiB; largest tensor 13.1M values`,
    });
    await Deno.remove(join(dir, "out"), { recursive: true });
    let i = 0;
    const tiny = await timeMedianMs(
      () => convertPipeline(TINY, join(dir, `tiny-${i++}`), { dtype: "fp32" }),
      { warmup: 1, iterations: 3 },
    );
    rows.push({ name: "convert tiny ldm-text2im (bert, unet, vqvae) fp32", value: tiny, unit: "ms" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return { name: "convert", rows };
}

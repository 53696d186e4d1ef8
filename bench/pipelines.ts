/**
 * Pipelines on CPU: session creation, seconds per image per scheduler, UNet time per step and peak RSS, for the
 * built-in models and the tiny diffusers fixtures (converted into a temporary folder first).
 *
 * Text to image: 50 steps (the CLI default), guidance 5, one 64×64 image (built-in) / 32×32 (fixture). Super-resolution:
 * 20 steps (the default 100 would take minutes on 2 cores) on a 32×32 input (→ 128×128 built-in, 64×64 fixture).
 * Each run is timed as the median of 2 after 1 warm-up. Set `LDM_EXECUTION_PROVIDERS` to bench another provider.
 *
 * @module
 */
import { join } from "node:path";
import { decodeImage } from "@ldm/core/image";
import { defaultExecutionProviders } from "@ldm/core/onnx";
import { LDMSuperResolutionPipeline, LDMTextToImagePipeline, SCHEDULER_NAME_LIST } from "@ldm/core/pipelines";
import type { RunTimings } from "@ldm/core/pipelines";
import { builtinModelDir } from "@ldm/models/builtin";
import { convertPipeline } from "@ldm/models/convert";
import { type BenchRow, type BenchSuite, rssMiB, timeMedianMs } from "./_harness.ts";

const TINY = new URL("../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;
const T2I_STEPS = 50;
const SR_STEPS = 20;

async function loadTimed<T>(load: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const pipe = await load();
  return [pipe, performance.now() - t0];
}

/** Runs the suite. */
export async function run(): Promise<BenchSuite> {
  const rows: BenchRow[] = [];
  const provider = defaultExecutionProviders().join(",");
  let peak = rssMiB();
  const sample = () => (peak = Math.max(peak, rssMiB()));
  const tmp = await Deno.makeTempDir({ prefix: "ldm-bench-" });
  try {
    await convertPipeline(join(TINY, "ldm-text2im"), join(tmp, "t2i"), { hashSources: false });
    await convertPipeline(join(TINY, "ldm-super-resolution"), join(tmp, "sr"), { hashSources: false });
    const srInput = await decodeImage(await Deno.readFile(join(TINY, "sr_input.png")));
    const models = [
      { label: "builtin", t2i: builtinModelDir("ldm-text2im-tiny"), sr: builtinModelDir("ldm-super-resolution-tiny") },
      { label: "fixture", t2i: join(tmp, "t2i"), sr: join(tmp, "sr") },
    ];
    for (const m of models) {
      const [t2i, t2iLoadMs] = await loadTimed(() => LDMTextToImagePipeline.load(m.t2i));
      rows.push({ name: `${m.label} text2im: session creation`, value: t2iLoadMs, unit: "ms", notes: provider });
      try {
        for (const scheduler of SCHEDULER_NAME_LIST) {
          let timings: RunTimings | undefined;
          const ms = await timeMedianMs(async () => {
            const r = await t2i.generate({
              prompt: "a big red circle on a blue background",
              guidanceScale: 5,
              numInferenceSteps: T2I_STEPS,
              scheduler,
              seed: 0,
            });
            timings = r.timings;
            sample();
          }, { warmup: 1, iterations: 2 });
          const size = `${t2i.info.defaultWidth}×${t2i.info.defaultHeight}`;
          rows.push({
            name: `${m.label} text2im ${scheduler}: per image`,
            value: ms / 1000,
            unit: "s",
            notes: `${size}, ${timings!.steps} steps, guidance 5`,
          });
          rows.push({
            name: `${m.label} text2im ${scheduler}: UNet per step`,
            value: timings!.unetMs / timings!.steps,
            unit: "ms",
            notes: "batch 2 (classifier-free guidance)",
          });
        }
      } finally {
        await t2i.dispose();
      }
      const [sr, srLoadMs] = await loadTimed(() => LDMSuperResolutionPipeline.load(m.sr));
      rows.push({ name: `${m.label} upscale: session creation`, value: srLoadMs, unit: "ms", notes: provider });
      try {
        for (const scheduler of SCHEDULER_NAME_LIST) {
          let timings: RunTimings | undefined;
          const ms = await timeMedianMs(async () => {
            const r = await sr.upscale({ image: srInput, numInferenceSteps: SR_STEPS, scheduler, seed: 0 });
            timings = r.timings;
            sample();
          }, { warmup: 1, iterations: 2 });
          const f = sr.info.upscaleFactor;
          rows.push({
            name: `${m.label} upscale ${scheduler}: per image`,
            value: ms / 1000,
            unit: "s",
            notes: `32×32 → ${32 * f}×${32 * f}, ${timings!.steps} steps`,
          });
          rows.push({
            name: `${m.label} upscale ${scheduler}: UNet per step`,
            value: timings!.unetMs / timings!.steps,
            unit: "ms",
          });
        }
      } finally {
        await sr.dispose();
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  rows.push({ name: "peak RSS (sampled after each run)", value: sample(), unit: "MiB" });
  return { name: "pipelines (CPU)", rows };
}

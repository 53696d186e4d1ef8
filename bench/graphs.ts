/**
 * Graph variants benchmark: milliseconds per call of the text-to-image UNet (`UNet2DConditionModel`, per denoising
 * step) and of the VAE decoder (`AutoencoderKL`, once per image), for each execution provider that works here, each
 * graph variant of `@ldm/models/onnx` (plain fp32 = the baseline, measured in the same run; fused for the provider;
 * fixed size; fp16) and batch sizes 1/2/4/8, at two sizes:
 *
 * - `builtin`: the configuration of `models/builtin/ldm-text2im-tiny` (8×8 latents, 77×128 text states, 64×64 images);
 * - `real`: `CompVis/ldm-text2im-large-256` (UNet 872 M parameters, 32×32 latents, 77×1280 text states; VAE decoder
 *   to 256×256), with seeded synthetic weights (`SyntheticWeights`), since only the sizes matter for timing.
 *
 * Timings interleave each variant with the baseline round by round and report the median; a variant's `ratio` is
 * the median of its per-round ratios to the baseline run next to it (robust to other processes' load on a shared
 * machine, which can change the absolute numbers by 2× within a minute). Each variant's output is compared with the
 * baseline's on the same inputs (the `max|Δ|` note). UNet batch `2n` is one classifier-free-guidance step for `n`
 * images, so 50 guided steps cost `50 · 2 · ms/batch` per image.
 *
 * Environment (all optional): `LDM_BENCH_GRAPHS_PROVIDERS` (default: every provider compiled into onnxruntime-node;
 * those that cannot start get an "unavailable" row), `LDM_BENCH_GRAPHS_SIZES` (`builtin,real`),
 * `LDM_BENCH_GRAPHS_MODELS` (`unet,vae`), `LDM_BENCH_GRAPHS_REAL_BATCHES` (UNet; default `1,2` on cpu, `1,2,4,8` on
 * GPUs), `LDM_BENCH_GRAPHS_ITERATIONS` (timed rounds; default 20, at real size on cpu 5 for the UNet and 3 for the
 * VAE), `LDM_BENCH_THREADS` (intra-op threads of the cpu provider; default 1, 0 = onnxruntime's choice, one per core).
 *
 * Why one cpu thread by default: on a shared 2-core machine a 2-thread run waits at every operator for a thread that
 * another process preempted, and its timings swung 2× between rounds, hiding 5–10% differences; one thread measures
 * the graphs' work (its CPU time, in the notes, tracks its wall time). The `all cores` rows show the thread effect.
 *
 * @module
 */
import process from "node:process";
import type { BenchRow, BenchSuite } from "./_harness.ts";
import { rssMiB } from "./_harness.ts";
import { availableExecutionProviders, loadOnnxModel, type LoadOnnxModelOptions, type OnnxModel } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import {
  buildAutoencoderKLDecoder,
  buildUNet2DConditionModel,
  type GraphBuilder,
  type GraphVariantOptions,
  LDM_TEXT2IM_LARGE_256,
  type ModelDtype,
  type OptimizationTarget,
  type OptimizeOptions,
  resolveAutoencoderKLConfig,
  resolveUNet2DConditionConfig,
  SyntheticWeights,
  unet2DConditionParams,
  vaeParameterSpec,
} from "@ldm/models/onnx";

const BUILTIN = new URL("../models/builtin/ldm-text2im-tiny/", import.meta.url);
const SEQUENCE = 77;
const GUIDED_STEPS = 50;

type SizeLabel = "builtin" | "real";

/** One graph to benchmark: how to build it and feed it. */
interface Subject {
  model: "unet" | "vae decoder";
  size: SizeLabel;
  /** Latent height = width. */
  latent: number;
  build(options: { dtype: ModelDtype } & GraphVariantOptions): GraphBuilder;
  inputs(batch: number): Record<string, Tensor>;
  output: string;
  /** Symbolic dims of a fixed-size graph for `batch`. */
  fixedDims(batch: number): Record<string, number>;
  /** How a call's time maps to per-image cost. */
  perImage(ms: number, batch: number): string;
}

interface Variant {
  label: string;
  dtype: ModelDtype;
  optimize?: OptimizeOptions;
  /** Fixed-size graph for exactly this batch (built per batch). */
  fixed?: boolean;
  /** intra-op threads override (cpu; 0 = all cores). */
  threads?: number;
  /**
   * Load onnxruntime's own optimised copy of the graph (written by a first session with `optimizedModelFilePath`)
   * with graph optimisation disabled: what a server would do from its second start on.
   */
  preoptimized?: boolean;
}

function env(name: string): string | undefined {
  const v = Deno.env.get(name)?.trim();
  return v === undefined || v === "" ? undefined : v;
}

function list(name: string, fallback: string[], allowed: readonly string[]): string[] {
  const v = env(name)?.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "") ?? fallback;
  const bad = v.filter((s) => !allowed.includes(s));
  if (bad.length > 0) throw new RangeError(`${name} may list ${allowed.join(", ")}: got "${bad.join(",")}"`);
  return v;
}

function intList(name: string, fallback: number[]): number[] {
  const v = env(name);
  if (v === undefined) return fallback;
  const out = v.split(",").map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isSafeInteger(n) || n < 1)) {
    throw new RangeError(`${name} must be a comma-separated list of positive integers: got "${v}"`);
  }
  return out;
}

function positiveInt(name: string, fallback: number, min = 1): number {
  const v = env(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min}: got "${v}"`);
  return n;
}

function fill(shape: number[], salt: number, scale: number): Tensor {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = scale * Math.sin(i * 12.9898 + salt * 78.233);
  return t;
}

async function unetSubject(size: SizeLabel): Promise<Subject> {
  const raw = size === "real"
    ? LDM_TEXT2IM_LARGE_256.unet
    : JSON.parse(await Deno.readTextFile(new URL("unet/config.json", BUILTIN)));
  const config = resolveUNet2DConditionConfig(raw);
  const latent = size === "real" ? 32 : config.sampleSize as number;
  const spec = unet2DConditionParams(config);
  return {
    model: "unet",
    size,
    latent,
    build: (options) => buildUNet2DConditionModel(config, new SyntheticWeights(spec, 0), options),
    inputs: (batch) => ({
      sample: fill([batch, config.inChannels, latent, latent], 1, 1),
      timestep: new Tensor(Float32Array.from({ length: batch }, (_, i) => 981 - 20 * i), [batch]),
      encoder_hidden_states: fill([batch, SEQUENCE, config.crossAttentionDim[0]!], 2, 2),
    }),
    output: "out_sample",
    fixedDims: (batch) => ({ batch, height: latent, width: latent, sequence: SEQUENCE }),
    perImage: (ms, batch) =>
      batch === 1
        ? `${((GUIDED_STEPS * ms) / 1000).toFixed(2)} s/image at 50 unguided steps`
        : `${((GUIDED_STEPS * 2 * ms) / batch / 1000).toFixed(2)} s/image at 50 guided steps`,
  };
}

async function vaeSubject(size: SizeLabel): Promise<Subject> {
  const raw = size === "real"
    ? LDM_TEXT2IM_LARGE_256.vqvae
    : JSON.parse(await Deno.readTextFile(new URL("vqvae/config.json", BUILTIN)));
  const config = resolveAutoencoderKLConfig(raw);
  const factor = 2 ** (config.blockOutChannels.length - 1);
  const latent = size === "real" ? 32 : 8;
  const spec = vaeParameterSpec(config, "kl");
  return {
    model: "vae decoder",
    size,
    latent,
    build: (options) => buildAutoencoderKLDecoder(raw, new SyntheticWeights(spec, 0), options),
    inputs: (batch) => ({ latent_sample: fill([batch, config.latentChannels, latent, latent], 3, 1) }),
    output: "sample",
    fixedDims: (batch) => ({ batch, latent_height: latent, latent_width: latent }),
    perImage: (ms, batch) => `${(ms / batch).toFixed(1)} ms/image (${latent * factor}×${latent * factor})`,
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let i = 0; i < a.size; i++) {
    const d = Math.abs(a.data[i]! - b.data[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Builds and saves one variant (external data above 2 GB, as the converter does). */
async function buildGraph(dir: string, s: Subject, v: Variant, batch: number | null): Promise<string> {
  const options: { dtype: ModelDtype } & GraphVariantOptions = { dtype: v.dtype };
  if (v.optimize) options.optimize = v.optimize;
  if (v.fixed && batch !== null) options.fixedDims = s.fixedDims(batch);
  const slug = `${s.model}-${s.size}-${v.label}`.replace(/[^a-z0-9]+/gi, "_");
  const path = `${dir}/${slug}${batch === null ? "" : `-b${batch}`}.onnx`;
  await s.build(options).save(path);
  return path;
}

async function removeGraph(path: string): Promise<void> {
  const optimized = path.replace(/\.onnx$/, ".ort-optimized.onnx");
  for (const p of [path, `${path}_data`, optimized, `${optimized}_data`]) await Deno.remove(p).catch(() => {});
}

interface Loaded {
  model: OnnxModel;
  loadMs: number;
}

async function load(
  path: string,
  provider: string,
  threads: number,
  name: string,
  extra: LoadOnnxModelOptions = {},
): Promise<Loaded> {
  const t0 = performance.now();
  const model = await loadOnnxModel(path, {
    ...extra,
    executionProviders: [provider],
    intraOpNumThreads: provider === "cpu" ? threads : 0,
    name,
  });
  return { model, loadMs: performance.now() - t0 };
}

/** Lets onnxruntime write its optimised copy of `path`, then loads that copy with optimisation disabled. */
async function loadPreoptimized(path: string, provider: string, threads: number, name: string): Promise<Loaded> {
  const optimized = path.replace(/\.onnx$/, ".ort-optimized.onnx");
  const first = await load(path, provider, threads, name, { optimizedModelFilePath: optimized });
  await first.model.dispose();
  return await load(optimized, provider, threads, name, { graphOptimizationLevel: "disabled" });
}

function variantsFor(provider: string, s: Subject): Variant[] {
  const target = (["cpu", "webgpu", "cuda"] as const).find((t) => t === provider) as OptimizationTarget | undefined;
  const out: Variant[] = [];
  if (!target) return out;
  out.push({ label: `fused fp32 (${target})`, dtype: "fp32", optimize: { target } });
  if (s.model === "unet" && (target === "cpu" || s.size === "builtin")) {
    out.push({ label: `fused fp32 (${target}), fixed size`, dtype: "fp32", optimize: { target }, fixed: true });
    if (target === "cpu") {
      out.push({
        label: "fused fp32 (cpu), fixed size, pre-optimised by onnxruntime",
        dtype: "fp32",
        optimize: { target },
        fixed: true,
        preoptimized: true,
      });
    }
  }
  // fp16 has no fast path on x86 CPUs (onnxruntime casts around most fp16 ops): measured at builtin size only there.
  if (target !== "cpu" || s.size === "builtin") {
    out.push({ label: "plain fp16", dtype: "fp16" });
    out.push({ label: `fused fp16 (${target})`, dtype: "fp16", optimize: { target } });
  }
  if (target !== "cpu") {
    // Sub-pixel upsampling is the cpu default; on GPUs it is measured here before it becomes one.
    out.push({
      label: `fused fp16 (${target}), sub-pixel upsampling${s.model === "unet" ? ", fixed size" : ""}`,
      dtype: "fp16",
      optimize: { target, upsample: "subpixel" },
      fixed: s.model === "unet",
    });
  }
  if (target === "cpu" && s.size === "builtin") out.push({ label: "plain fp32, all cores", dtype: "fp32", threads: 0 });
  return out;
}

/** Runs the suite (see the module doc). */
export async function run(): Promise<BenchSuite> {
  const rows: BenchRow[] = [];
  const compiled = availableExecutionProviders().map((p) => p.name).filter((p) => p !== "tensorrt");
  const providers = list("LDM_BENCH_GRAPHS_PROVIDERS", compiled, compiled);
  const sizes = list("LDM_BENCH_GRAPHS_SIZES", ["builtin", "real"], ["builtin", "real"]) as SizeLabel[];
  const models = list("LDM_BENCH_GRAPHS_MODELS", ["unet", "vae"], ["unet", "vae"]);
  const threads = positiveInt("LDM_BENCH_THREADS", 1, 0);
  const dir = await Deno.makeTempDir({ prefix: "ldm-bench-graphs-" });
  try {
    for (const provider of providers) {
      for (const size of sizes) {
        if (models.includes("unet")) await runSubject(rows, dir, provider, await unetSubject(size), threads);
        if (models.includes("vae")) await runSubject(rows, dir, provider, await vaeSubject(size), threads);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return { name: "graphs (ms per call: UNet = one denoising step, VAE decoder = once per image)", rows };
}

interface Measured {
  variant: Variant;
  batch: number;
  times: number[];
  cpu: number[];
  diff: number;
  baseTimes: number[];
}

async function runSubject(rows: BenchRow[], dir: string, provider: string, s: Subject, threads: number) {
  const gpu = provider !== "cpu";
  const realCpu = s.size === "real" && !gpu;
  const batches = s.model === "vae decoder"
    ? (s.size === "real" && !gpu ? [1] : [1, 2])
    : s.size === "builtin"
    ? [1, 2, 4, 8]
    : intList("LDM_BENCH_GRAPHS_REAL_BATCHES", gpu ? [1, 2, 4, 8] : [1, 2]);
  const iterations = positiveInt("LDM_BENCH_GRAPHS_ITERATIONS", realCpu ? (s.model === "unet" ? 5 : 3) : 20);
  const warmup = realCpu ? 1 : 3;
  const prefix = `${provider} ${s.size} ${s.model}`;
  const basePath = await buildGraph(dir, s, { label: "plain fp32", dtype: "fp32" }, null);
  let base: Loaded;
  try {
    base = await load(basePath, provider, threads, `${prefix} plain`);
  } catch (e) {
    const reason = (e instanceof Error ? e.message : String(e)).replace(/^Could not create .*?: /, "");
    rows.push({ name: `${prefix}: provider unavailable`, value: 0, unit: "-", notes: reason.slice(0, 200) });
    await removeGraph(basePath);
    return;
  }
  const baseRss = rssMiB();
  const feeds = new Map(batches.map((b) => [b, s.inputs(b)]));
  const baseOut = new Map<number, Tensor>();
  for (const b of batches) baseOut.set(b, (await base.model.run(feeds.get(b)!))[s.output]!);
  const baseTimes = new Map<number, number[]>();
  const baseCpu = new Map<number, number[]>();
  const measured: Measured[] = [];
  const loads: { variant: Variant; ms: number }[] = [];
  const time = async (m: OnnxModel, f: Record<string, Tensor>, times: number[], cpu: number[]) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await m.run(f);
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  };
  try {
    for (const variant of variantsFor(provider, s)) {
      // Fixed-size graphs exist per batch; the others serve every batch from one session.
      const groups: (number | null)[] = variant.fixed ? batches : [null];
      for (const group of groups) {
        const path = await buildGraph(dir, s, variant, group);
        let v: Loaded;
        try {
          const t = variant.threads ?? threads;
          v = variant.preoptimized
            ? await loadPreoptimized(path, provider, t, `${prefix} ${variant.label}`)
            : await load(path, provider, t, `${prefix} ${variant.label}`);
        } catch (e) {
          rows.push({
            name: `${prefix} ${variant.label}: could not load`,
            value: 0,
            unit: "-",
            notes: (e instanceof Error ? e.message : String(e)).slice(0, 200),
          });
          await removeGraph(path);
          continue;
        }
        if (group === null || group === batches[0]) loads.push({ variant, ms: v.loadMs });
        try {
          for (const b of group === null ? batches : [group]) {
            const f = feeds.get(b)!;
            const diff = maxAbsDiff((await v.model.run(f))[s.output]!, baseOut.get(b)!);
            for (let i = 1; i < warmup; i++) {
              await v.model.run(f);
              await base.model.run(f);
            }
            const m: Measured = { variant, batch: b, times: [], cpu: [], diff, baseTimes: [] };
            const bc: number[] = [];
            for (let i = 0; i < iterations; i++) {
              // Alternate which goes first so neither always runs on a warmer cache.
              if (i % 2 === 0) {
                await time(base.model, f, m.baseTimes, bc);
                await time(v.model, f, m.times, m.cpu);
              } else {
                await time(v.model, f, m.times, m.cpu);
                await time(base.model, f, m.baseTimes, bc);
              }
            }
            baseTimes.set(b, [...(baseTimes.get(b) ?? []), ...m.baseTimes]);
            baseCpu.set(b, [...(baseCpu.get(b) ?? []), ...bc]);
            measured.push(m);
          }
        } finally {
          await v.model.dispose();
          await removeGraph(path);
        }
      }
    }
  } finally {
    await base.model.dispose();
    await removeGraph(basePath);
  }
  const baseName = (b: number) => `${prefix} b${b} plain fp32`;
  for (const b of batches) {
    const bt = baseTimes.get(b);
    if (!bt || bt.length === 0) continue;
    const ms = median(bt);
    rows.push({
      name: baseName(b),
      value: ms,
      unit: "ms",
      notes: `${s.perImage(ms, b)}; cpu time ${median(baseCpu.get(b)!).toFixed(1)} ms; baseline`,
    });
    for (const m of measured.filter((x) => x.batch === b)) {
      const v = median(m.times);
      // Median of per-round ratios: each round times the baseline and the variant back to back, so a load spike
      // from another process inflates both sides of one ratio instead of one side of the comparison.
      const ratio = median(m.times.map((t, i) => t / m.baseTimes[i]!));
      rows.push({
        name: `${prefix} b${b} ${m.variant.label}`,
        value: v,
        unit: "ms",
        ratio,
        baseline: baseName(b),
        notes: `${s.perImage(v, b)}; cpu time ${median(m.cpu).toFixed(1)} ms; max|Δ| vs plain ${
          m.diff.toExponential(1)
        }`,
      });
    }
  }
  rows.push({
    name: `${prefix} load plain fp32`,
    value: base.loadMs,
    unit: "ms",
    notes: `session creation; process rss after it ${baseRss.toFixed(0)} MiB`,
  });
  for (const l of loads) {
    rows.push({
      name: `${prefix} load ${l.variant.label}`,
      value: l.ms,
      unit: "ms",
      ratio: l.ms / base.loadMs,
      baseline: `${prefix} load plain fp32`,
      notes: "session creation",
    });
  }
}

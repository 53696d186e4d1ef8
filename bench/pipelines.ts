/**
 * Pipelines on CPU: session creation, seconds per image per scheduler, UNet time per step and peak RSS, for the
 * built-in models and the tiny diffusers fixtures (converted into a temporary folder first); then the **pipeline's
 * own overhead per denoising step** over bare UNet calls on the same session, the text-encoder cache, previews and
 * the schedulers' share of a step.
 *
 * Text to image: 50 steps (the CLI default), guidance 5, one 64×64 image (built-in) / 32×32 (fixture). Super-resolution:
 * 20 steps (the default 100 would take minutes on 2 cores) on a 32×32 input (→ 128×128 built-in, 64×64 fixture).
 * Each run is timed as the median of 2 after 1 warm-up. Set `LDM_EXECUTION_PROVIDERS` to bench another provider.
 *
 * Overhead rows: the pipeline is built from sessions this suite loads itself (one intra-op thread), with a timing
 * wrapper around its UNet. A "pipeline step" is the time between two `onProgress` calls (steps 2…N: UNet call, input
 * assembly, guidance, scheduler step, bookkeeping); the overhead is that step minus the UNet call(s) made inside it,
 * as a median over the steps of a run, then over rounds; the ratio is step ÷ UNet. A bare `OnnxModel.run` loop on
 * the same session, with prebuilt feeds of the same shapes, alternates with the runs and is printed beside (it should
 * agree with the UNet time inside the steps). "LDM-256 shapes, instant models" rows run the pipelines on stub models
 * that answer at once with tensors of the CompVis shapes: the pipeline's own cost whatever the UNet costs.
 *
 * Environment: `LDM_BENCH_PIPELINES_ONLY=overhead` skips the per-image rows; `LDM_BENCH_OVERHEAD_ROUNDS` (default 5);
 * `LDM_BENCH_THREADS` (intra-op threads of the overhead sessions, default 1).
 *
 * @module
 */
import { join } from "node:path";
import { decodeImage } from "@ldm/core/image";
import { defaultExecutionProviders, loadOnnxComponents, type OnnxFeed, type OnnxModel } from "@ldm/core/onnx";
import {
  LDMSuperResolutionPipeline,
  LDMTextToImagePipeline,
  type RunTimings,
  SCHEDULER_NAME_LIST,
  type SchedulerName,
} from "@ldm/core/pipelines";
import { Generator } from "@ldm/core/random";
import { createSchedulerByName } from "@ldm/core/schedulers";
import { Tensor } from "@ldm/core/tensor";
import { BertTokenizer } from "@ldm/core/tokenizer";
import { builtinModelDir } from "@ldm/models/builtin";
import { convertPipeline } from "@ldm/models/convert";
import { LDM_TEXT2IM_LARGE_256 } from "@ldm/models/onnx";
import { type BenchRow, type BenchSuite, rssMiB, timeMedianMs } from "./_harness.ts";

const TINY = new URL("../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;
const T2I_STEPS = 50;
const SR_STEPS = 20;
const PROMPT = "a big red circle on a blue background";
/** Alternating pipeline/bare rounds per overhead measurement (`LDM_BENCH_OVERHEAD_ROUNDS`). */
const ROUNDS = Number(Deno.env.get("LDM_BENCH_OVERHEAD_ROUNDS") ?? 5);
/**
 * Intra-op threads of the overhead sessions (`LDM_BENCH_THREADS`, default 1, as bench/graphs.ts): with two threads on
 * this shared 2-core machine, every UNet call waits for a preempted thread and its time swings by 2×.
 */
const THREADS = Number(Deno.env.get("LDM_BENCH_THREADS") ?? 1);

async function loadTimed<T>(load: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const pipe = await load();
  return [pipe, performance.now() - t0];
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function readJson(dir: string, rel: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(join(dir, rel)));
}

/** A filled tensor of `shape` (values do not matter for timing, only finiteness). */
function filled(shape: readonly number[], salt: number): Tensor {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sin(i * 0.37 + salt) * 0.5;
  return t;
}

/** ms per call of `model.run(feeds)` over a loop of `calls` calls. */
async function bareMs(model: OnnxModel, feeds: Record<string, OnnxFeed>, calls: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await model.run(feeds);
  return (performance.now() - t0) / calls;
}

/** A UNet that records the start and duration of every call it forwards to `model`. */
function timedUNet(model: OnnxModel): OnnxModel & { calls: { start: number; ms: number }[] } {
  const calls: { start: number; ms: number }[] = [];
  return {
    name: model.name,
    inputs: model.inputs,
    outputs: model.outputs,
    executionProvider: model.executionProvider,
    calls,
    async run(feeds) {
      const start = performance.now();
      const out = await model.run(feeds);
      calls.push({ start, ms: performance.now() - start });
      return out;
    },
    dispose: () => model.dispose(),
  };
}

/** Per-step values of one run: step time (between `onProgress` calls), UNet time inside it, and their difference. */
interface StepSplit {
  stepMs: number;
  unetMs: number;
  overheadMs: number;
}

/**
 * Splits a run into steps 2…N (the time between consecutive `onProgress` calls) and the UNet calls made in each;
 * returns the medians over steps, so a load spike during one step does not move the result.
 */
function splitSteps(progressAt: readonly number[], calls: readonly { start: number; ms: number }[]): StepSplit {
  const step: number[] = [], unet: number[] = [], over: number[] = [];
  for (let i = 1; i < progressAt.length; i++) {
    const from = progressAt[i - 1]!, to = progressAt[i]!;
    const inside = calls.filter((c) => c.start > from && c.start < to).reduce((s, c) => s + c.ms, 0);
    step.push(to - from);
    unet.push(inside);
    over.push(to - from - inside);
  }
  return { stepMs: median(step), unetMs: median(unet), overheadMs: median(over) };
}

interface OverheadResult {
  /** Median pipeline step (ms). */
  stepMs: number;
  /** Median UNet time inside a step (ms). */
  unetMs: number;
  /** Median step − UNet inside it (ms). */
  overheadMs: number;
  /** Median step ÷ UNet inside it. */
  ratio: number;
  /** Bare `OnnxModel.run` loop on the same session, per step (ms). */
  bareMs: number;
}

/**
 * `rounds` pipeline runs, each split into steps (see {@linkcode splitSteps}), alternating with bare loops of
 * `callsPerStep` UNet calls per step on the same session; returns medians over rounds.
 */
async function measureOverhead(
  unet: ReturnType<typeof timedUNet>,
  runPipeline: (onProgress: () => void) => Promise<unknown>,
  bare: (calls: number) => Promise<number>,
  callsPerStep: number,
): Promise<OverheadResult> {
  const steps: number[] = [],
    unets: number[] = [],
    overheads: number[] = [],
    ratios: number[] = [],
    bares: number[] = [];
  await runPipeline(() => {}); // warm-up (and fills whatever the pipeline caches between runs)
  await bare(5);
  for (let r = 0; r < ROUNDS; r++) {
    const at: number[] = [];
    unet.calls.length = 0;
    await runPipeline(() => void at.push(performance.now()));
    const split = splitSteps(at, unet.calls);
    steps.push(split.stepMs);
    unets.push(split.unetMs);
    overheads.push(split.overheadMs);
    ratios.push(split.stepMs / split.unetMs);
    bares.push((await bare((at.length - 1) * callsPerStep)) * callsPerStep);
  }
  return {
    stepMs: median(steps),
    unetMs: median(unets),
    overheadMs: median(overheads),
    ratio: median(ratios),
    bareMs: median(bares),
  };
}

function overheadRows(label: string, r: OverheadResult, notes: string): BenchRow[] {
  return [
    { name: `${label}: pipeline step`, value: r.stepMs, unit: "ms", notes },
    {
      name: `${label}: overhead per step (step − UNet)`,
      value: r.overheadMs,
      unit: "ms",
      ratio: r.ratio,
      baseline: "UNet",
      notes: `UNet inside the step ${r.unetMs.toFixed(2)} ms; bare UNet loop ${r.bareMs.toFixed(2)} ms`,
    },
  ];
}

/** The text-to-image overhead rows for one repository. */
async function textToImageOverhead(label: string, dir: string): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const sessions = await loadOnnxComponents(dir, {
    bert: "bert/model.onnx",
    unet: "unet/model.onnx",
    vaeDecoder: "vqvae/decoder.onnx",
  }, { intraOpNumThreads: THREADS });
  const unet = timedUNet(sessions.unet);
  try {
    const [schedulerConfig, unetConfig, vaeConfig] = await Promise.all([
      readJson(dir, "scheduler/scheduler_config.json"),
      readJson(dir, "unet/config.json"),
      readJson(dir, "vqvae/config.json"),
    ]);
    const tokenizer = await BertTokenizer.fromDirectory(join(dir, "tokenizer"));
    const pipe = new LDMTextToImagePipeline({
      bert: sessions.bert,
      unet,
      vaeDecoder: sessions.vaeDecoder,
      tokenizer,
      schedulerConfig,
      unetConfig,
      vaeConfig,
    });
    const f = pipe.info.vaeScaleFactor;
    const h = pipe.info.defaultHeight / f, w = pipe.info.defaultWidth / f, c = pipe.info.latentChannels;
    const ctx = (await sessions.bert.run({ input_ids: tokenizer.encodeBatch([PROMPT], { maxLength: 77 }) }))
      .last_hidden_state!;
    const dim = ctx.shape[2]!;
    const feeds = (batch: number): Record<string, OnnxFeed> => ({
      sample: filled([batch, c, h, w], 1),
      timestep: new Tensor(new Float32Array(batch).fill(500), [batch]),
      encoder_hidden_states: filled([batch, 77, dim], 2),
    });
    const size = `${pipe.info.defaultWidth}×${pipe.info.defaultHeight}`;
    const schedulers: SchedulerName[] = label === "builtin" ? [...SCHEDULER_NAME_LIST] : ["ddim"];
    for (const scheduler of schedulers) {
      const r = await measureOverhead(
        unet,
        async (onProgress) =>
          (await pipe.generate({
            prompt: PROMPT,
            guidanceScale: 5,
            numInferenceSteps: T2I_STEPS,
            scheduler,
            seed: 0,
            onProgress,
          })).timings,
        (calls) => bareMs(sessions.unet, feeds(2), calls),
        1,
      );
      rows.push(...overheadRows(`${label} text2im ${scheduler} guided`, r, `${size}, UNet batch 2`));
    }
    const unguided = await measureOverhead(
      unet,
      async (onProgress) =>
        (await pipe.generate({ prompt: PROMPT, numInferenceSteps: T2I_STEPS, seed: 0, onProgress })).timings,
      (calls) => bareMs(sessions.unet, feeds(1), calls),
      1,
    );
    rows.push(...overheadRows(`${label} text2im ddim unguided`, unguided, `${size}, UNet batch 1`));
    if (label === "builtin") {
      const batched = await measureOverhead(
        unet,
        async (onProgress) =>
          (await pipe.generateBatch({
            items: [0, 1, 2, 3].map((seed) => ({ prompt: `${PROMPT} ${seed}`, seed })),
            guidanceScale: 5,
            numInferenceSteps: T2I_STEPS,
            onProgress,
          })).timings,
        (calls) => bareMs(sessions.unet, feeds(8), calls),
        1,
      );
      rows.push(...overheadRows(`${label} text2im ddim generateBatch ×4 guided`, batched, `${size}, UNet batch 8`));

      // The text encoder per run for a prompt the pipeline has seen before (cached after the change).
      const enc: number[] = [];
      for (let i = 0; i < 5; i++) {
        enc.push(
          (await pipe.generate({ prompt: PROMPT, guidanceScale: 5, numInferenceSteps: 2, seed: i })).timings
            .textEncoderMs,
        );
      }
      rows.push({
        name: `${label} text2im: text encoder per run, repeated prompt`,
        value: median(enc.slice(1)),
        unit: "ms",
        notes: "guided; first run excluded",
      });
      const fresh: number[] = [];
      for (let i = 0; i < 5; i++) {
        fresh.push(
          (await pipe.generate({
            prompt: `${PROMPT} ${i} ${Math.random()}`,
            guidanceScale: 5,
            numInferenceSteps: 2,
            seed: i,
          }))
            .timings.textEncoderMs,
        );
      }
      rows.push({
        name: `${label} text2im: text encoder per run, new prompt`,
        value: median(fresh),
        unit: "ms",
        notes: "guided",
      });

      // Previews every 5 steps (one decoder run each) with a consumer that takes 20 ms asynchronously.
      const noPreview: number[] = [], withPreview: number[] = [];
      const slowConsumer = () => new Promise<void>((resolve) => setTimeout(resolve, 20));
      const wall = async (extra: { previewEvery?: number; onPreview?: () => Promise<void> }) => {
        const t0 = performance.now();
        await pipe.generate({ prompt: PROMPT, guidanceScale: 5, numInferenceSteps: T2I_STEPS, seed: 0, ...extra });
        return performance.now() - t0;
      };
      for (let i = 0; i < 3; i++) {
        noPreview.push(await wall({}));
        withPreview.push(await wall({ previewEvery: 5, onPreview: slowConsumer }));
      }
      rows.push({ name: `${label} text2im: run without previews`, value: median(noPreview), unit: "ms" });
      rows.push({
        name: `${label} text2im: run with previews every 5 steps`,
        value: median(withPreview),
        unit: "ms",
        ratio: median(withPreview) / median(noPreview),
        baseline: "without previews",
        notes: "9 previews, each consumed in 20 ms (async)",
      });
    }
  } finally {
    await sessions.dispose();
  }
  return rows;
}

/** The super-resolution overhead rows for one repository (untiled, and tiled in 4 tiles). */
async function superResolutionOverhead(label: string, dir: string): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const sessions = await loadOnnxComponents(dir, { unet: "unet/model.onnx", vqvaeDecoder: "vqvae/decoder.onnx" }, {
    intraOpNumThreads: THREADS,
  });
  const unet = timedUNet(sessions.unet);
  try {
    const [schedulerConfig, unetConfig, vqvaeConfig] = await Promise.all([
      readJson(dir, "scheduler/scheduler_config.json"),
      readJson(dir, "unet/config.json"),
      readJson(dir, "vqvae/config.json"),
    ]);
    const pipe = new LDMSuperResolutionPipeline({
      unet,
      vqvaeDecoder: sessions.vqvaeDecoder,
      schedulerConfig,
      unetConfig,
      vqvaeConfig,
    });
    const feeds = (side: number): Record<string, OnnxFeed> => ({
      sample: filled([1, 6, side, side], 1),
      timestep: new Tensor(new Float32Array([500]), [1]),
    });
    const image32 = filled([1, 3, 32, 32], 3);
    const untiled = await measureOverhead(
      unet,
      async (onProgress) =>
        (await pipe.upscale({ image: image32, numInferenceSteps: SR_STEPS, seed: 0, onProgress })).timings,
      (calls) => bareMs(sessions.unet, feeds(32), calls),
      1,
    );
    rows.push(...overheadRows(`${label} upscale ddim 32×32`, untiled, "untiled"));
    const image64 = filled([1, 3, 64, 64], 4);
    const tiled = await measureOverhead(
      unet,
      async (onProgress) =>
        (await pipe.upscale({
          image: image64,
          numInferenceSteps: SR_STEPS,
          seed: 0,
          tileSize: 40,
          tileOverlap: 16,
          onProgress,
        })).timings,
      (calls) => bareMs(sessions.unet, feeds(40), calls),
      4,
    );
    rows.push(...overheadRows(`${label} upscale ddim 64×64 tiled`, tiled, "4 UNet tiles of 40×40 per step"));
  } finally {
    await sessions.dispose();
  }
  return rows;
}

/** An `OnnxModel` that answers at once with a fresh zero tensor of `outShape(feeds)` (what onnxruntime allocates). */
function instantModel(
  name: string,
  inputs: { name: string; type: "float32" | "int64"; shape: (number | string)[] }[],
  outputName: string,
  outShape: (feeds: Readonly<Record<string, OnnxFeed>>) => number[],
): OnnxModel {
  return {
    name,
    inputs,
    outputs: [{ name: outputName, type: "float32", shape: [] }],
    executionProvider: "instant",
    run: (feeds) => Promise.resolve({ [outputName]: Tensor.zeros(outShape(feeds)) }),
    dispose: () => Promise.resolve(),
  };
}

/**
 * The pipelines' own cost per step at the CompVis LDM-256 shapes (latents `[B, 4, 32, 32]`, text states
 * `[B, 77, 1280]`; super-resolution 128×128 → 512×512 and a tiled 256×256 input), with models that answer at once:
 * what the loop adds to a step whatever the UNet costs (on a GPU, where a guided step takes tens of milliseconds,
 * this is the part that could show).
 */
async function stubOverhead(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const batchOf = (f: Readonly<Record<string, OnnxFeed>>, key: string) => f[key]!.shape[0]!;
  const bert = instantModel(
    "bert",
    [{ name: "input_ids", type: "int64", shape: ["batch", 77] }],
    "last_hidden_state",
    (f) => [batchOf(f, "input_ids"), 77, 1280],
  );
  const unet = timedUNet(instantModel(
    "unet",
    [
      { name: "sample", type: "float32", shape: ["batch", 4, "h", "w"] },
      { name: "timestep", type: "float32", shape: ["batch"] },
      { name: "encoder_hidden_states", type: "float32", shape: ["batch", 77, 1280] },
    ],
    "out_sample",
    (f) => [...f["sample"]!.shape],
  ));
  const vaeDecoder = instantModel(
    "vaeDecoder",
    [{ name: "latent_sample", type: "float32", shape: ["batch", 4, "h", "w"] }],
    "sample",
    (f) => [batchOf(f, "latent_sample"), 3, f["latent_sample"]!.shape[2]! * 8, f["latent_sample"]!.shape[3]! * 8],
  );
  const tokenizer = {
    encodeBatch: (texts: readonly string[], { maxLength }: { maxLength: number }) => ({
      int64: new BigInt64Array(texts.length * maxLength),
      shape: [texts.length, maxLength],
    }),
  };
  const schedulerConfig = await readJson(builtinModelDir("ldm-text2im-tiny"), "scheduler/scheduler_config.json");
  const t2i = new LDMTextToImagePipeline({
    bert,
    unet,
    vaeDecoder,
    tokenizer,
    schedulerConfig,
    unetConfig: LDM_TEXT2IM_LARGE_256.unet,
    vaeConfig: LDM_TEXT2IM_LARGE_256.vqvae, // no scaling_factor key: diffusers' default 0.18215
  });
  const noBare = () => Promise.resolve(0);
  const stubRows = (label: string, r: OverheadResult, notes: string): BenchRow => ({
    name: `LDM-256 shapes, instant models: ${label}: overhead per step`,
    value: r.overheadMs,
    unit: "ms",
    notes: `${notes}; step ${r.stepMs.toFixed(3)} ms, of which the instant UNet ${r.unetMs.toFixed(3)} ms`,
  });
  for (const scheduler of ["ddim", "lms", "dpm-multistep"] as const) {
    const r = await measureOverhead(
      unet,
      async (onProgress) =>
        (await t2i.generate({
          prompt: PROMPT,
          guidanceScale: 5,
          numInferenceSteps: T2I_STEPS,
          scheduler,
          seed: 0,
          onProgress,
        })).timings,
      noBare,
      1,
    );
    rows.push(stubRows(`text2im ${scheduler} guided`, r, "UNet batch 2"));
  }
  const batched = await measureOverhead(
    unet,
    async (onProgress) =>
      (await t2i.generateBatch({
        items: [0, 1, 2, 3].map((seed) => ({ prompt: `${PROMPT} ${seed}`, seed })),
        guidanceScale: 5,
        numInferenceSteps: T2I_STEPS,
        onProgress,
      })).timings,
    noBare,
    1,
  );
  rows.push(stubRows("text2im ddim generateBatch ×4 guided", batched, "UNet batch 8"));

  const srUNet = timedUNet(instantModel(
    "unet",
    [
      { name: "sample", type: "float32", shape: ["batch", 6, "h", "w"] },
      { name: "timestep", type: "float32", shape: ["batch"] },
    ],
    "out_sample",
    (f) => {
      const [b, , h, w] = f["sample"]!.shape as [number, number, number, number];
      return [b, 3, h, w];
    },
  ));
  const srConfigs = await Promise.all([
    readJson(builtinModelDir("ldm-super-resolution-tiny"), "scheduler/scheduler_config.json"),
    readJson(builtinModelDir("ldm-super-resolution-tiny"), "unet/config.json"),
  ]);
  const sr = new LDMSuperResolutionPipeline({
    unet: srUNet,
    vqvaeDecoder: instantModel(
      "vqvaeDecoder",
      [{ name: "latent_sample", type: "float32", shape: ["batch", 3, "h", "w"] }],
      "sample",
      (f) => [batchOf(f, "latent_sample"), 3, f["latent_sample"]!.shape[2]! * 4, f["latent_sample"]!.shape[3]! * 4],
    ),
    schedulerConfig: srConfigs[0],
    unetConfig: srConfigs[1],
    vqvaeConfig: { block_out_channels: [128, 256, 512] },
  });
  for (
    const [label, side, tiling] of [
      ["upscale ddim 128×128", 128, { tileSize: 0 }],
      ["upscale ddim 256×256 in 9 tiles of 128", 256, { tileSize: 128, tileOverlap: 32 }],
    ] as const
  ) {
    const image = filled([1, 3, side, side], 7);
    const r = await measureOverhead(
      srUNet,
      async (onProgress) =>
        (await sr.upscale({ image, numInferenceSteps: SR_STEPS, seed: 0, onProgress, ...tiling })).timings,
      noBare,
      1,
    );
    rows.push(stubRows(label, r, "UNet batch 1"));
  }
  return rows;
}

/** µs per `scheduler.step` (allocations included) at a latent shape, over a 50-step loop. */
async function schedulerStepUs(name: SchedulerName, shape: readonly number[]): Promise<number> {
  const scheduler = createSchedulerByName(name, { clip_sample: false });
  const eps = filled(shape, 5), start = filled(shape, 6);
  let calls = 0;
  const ms = await timeMedianMs(() => {
    scheduler.setTimesteps(T2I_STEPS);
    const generator = new Generator(0);
    let sample = start;
    calls = 0;
    for (const t of Array.from(scheduler.timesteps)) {
      sample = scheduler.step(eps, t, scheduler.scaleModelInput(sample, t), { generator }).prevSample;
      calls++;
    }
  }, { warmup: 2, iterations: 7 });
  return (ms * 1000) / calls;
}

/** Runs the suite. */
export async function run(): Promise<BenchSuite> {
  const rows: BenchRow[] = [];
  const provider = defaultExecutionProviders().join(",");
  let peak = rssMiB();
  const sample = () => (peak = Math.max(peak, rssMiB()));
  const tmp = await Deno.makeTempDir({ prefix: "ldm-bench-" });
  const only = Deno.env.get("LDM_BENCH_PIPELINES_ONLY"); // "overhead": skip the per-image rows
  try {
    await convertPipeline(join(TINY, "ldm-text2im"), join(tmp, "t2i"), { hashSources: false });
    await convertPipeline(join(TINY, "ldm-super-resolution"), join(tmp, "sr"), { hashSources: false });
    const srInput = await decodeImage(await Deno.readFile(join(TINY, "sr_input.png")));
    const models = [
      { label: "builtin", t2i: builtinModelDir("ldm-text2im-tiny"), sr: builtinModelDir("ldm-super-resolution-tiny") },
      { label: "fixture", t2i: join(tmp, "t2i"), sr: join(tmp, "sr") },
    ];
    for (const m of only === "overhead" ? [] : models) {
      const [t2i, t2iLoadMs] = await loadTimed(() => LDMTextToImagePipeline.load(m.t2i));
      rows.push({ name: `${m.label} text2im: session creation`, value: t2iLoadMs, unit: "ms", notes: provider });
      try {
        for (const scheduler of SCHEDULER_NAME_LIST) {
          let timings: RunTimings | undefined;
          const ms = await timeMedianMs(async () => {
            const r = await t2i.generate({
              prompt: PROMPT,
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
    let guidedUNetMs: number | undefined;
    for (const m of models) {
      const t2iRows = await textToImageOverhead(m.label, m.t2i);
      guidedUNetMs ??= t2iRows.find((r) => r.name === `${m.label} text2im ddim guided: pipeline step`)?.value;
      rows.push(...t2iRows);
      sample();
      rows.push(...await superResolutionOverhead(m.label, m.sr));
      sample();
    }
    rows.push(...await stubOverhead());
    sample();
    // Scheduler math (allocations included) against the UNet step it follows: the built-in UNet measured above, the
    // LDM-256 one from bench/PERFORMANCE.md (CPU, one thread, batch 2: 1875 ms).
    const unetStep = guidedUNetMs;
    for (
      const [what, shape, unetMs] of [
        ["built-in latent", [1, 4, 8, 8], unetStep],
        ["LDM-256 latent", [1, 4, 32, 32], 1875],
      ] as const
    ) {
      for (const name of SCHEDULER_NAME_LIST) {
        const us = await schedulerStepUs(name, shape);
        rows.push({
          name: `scheduler ${name}: scaleModelInput + step [${shape.join(",")}]`,
          value: us,
          unit: "µs",
          notes: unetMs === undefined ? what : `${what}; ${((us / 10) / unetMs).toPrecision(2)}% of a UNet b2 call`,
        });
      }
      const n = shape.reduce<number>((a, b) => a * b, 1);
      const allocMs = await timeMedianMs(() => {
        for (let i = 0; i < 1000; i++) new Float32Array(n)[i % n] = i;
      }, { warmup: 2, iterations: 7 });
      rows.push({
        name: `allocate one Float32Array [${shape.join(",")}]`,
        value: allocMs,
        unit: "µs",
        notes: `${what}; what each fresh tensor of a scheduler step costs`,
      });
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  rows.push({ name: "peak RSS (sampled after each run)", value: sample(), unit: "MiB" });
  return { name: "pipelines (CPU)", rows };
}

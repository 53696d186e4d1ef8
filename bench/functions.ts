/**
 * Bench suite `functions`: what the HTTP functions add per request over the bare pipeline call, on the built-in
 * models (CPU). Three ways to make the same image (same prompt, seed, steps):
 *
 * - bare: the ONNX runner called in-process (pipeline + PNG encoding), the baseline;
 * - app: `app.request()` on `createApp` over that same runner (validation, queue, base64, JSON; no socket, no worker);
 * - server: `fetch` to a server on 127.0.0.1 whose worker hosts the pipelines (adds the socket and the worker hop).
 *
 * Then encoding off the generation slot: two batches submitted back to back to a one-slot queue over a one-worker
 * pool, with the images encoded on the pipeline worker (`encoderWorkers: 0`, the behaviour before encoder workers) and
 * in an encoder worker while the pipeline worker runs the second batch; measured in the same run.
 *
 * @module
 */
import { Image } from "imagescript";
import { type BenchRow, type BenchSuite, rssMiB, timeMedianMs } from "./_harness.ts";
import { createApp } from "../functions/app.ts";
import { loadConfig } from "../functions/config.ts";
import { silentLogger } from "../functions/logger.ts";
import { createRunner } from "../functions/onnx_runner.ts";
import { onnxRunnerOptions, startServer } from "../functions/server.ts";
import { GenerationQueue } from "../functions/queue.ts";
import { readyRunner, type SuperResolutionJob, type TextToImageJob } from "../functions/runner.ts";
import { WorkerPoolRunner } from "../functions/worker/pool.ts";

/**
 * Medians of several variants measured in alternating rounds, so that load from other processes on a shared machine
 * and late warm-up hit every variant alike: each variant is warmed up, then timed `iterations` times per round for
 * three rounds; the result is the median of the rounds' medians.
 */
async function interleaved<const F extends readonly (() => unknown)[]>(
  fns: F,
  { warmup = 10, iterations = 7 }: { warmup?: number; iterations?: number } = {},
): Promise<{ [K in keyof F]: number }> {
  for (const fn of fns) for (let i = 0; i < warmup; i++) await fn();
  const medians: number[][] = fns.map(() => []);
  for (let round = 0; round < 3; round++) {
    for (const [i, fn] of fns.entries()) medians[i]!.push(await timeMedianMs(fn, { warmup: 1, iterations }));
  }
  return medians.map((m) => m.sort((a, b) => a - b)[1]!) as { [K in keyof F]: number };
}

/**
 * Milliseconds until two text-to-image batches submitted back to back are both answered, through a one-slot queue
 * over a one-worker pool hosting `module`: encoding on the slot (`encoderWorkers: 0`) and off it (one encoder
 * worker), measured interleaved. Also the median `encode_ms` and `inference_ms` of the off-slot variant.
 */
async function backToBack(
  module: URL,
  options: unknown,
  job: TextToImageJob,
): Promise<{ onSlot: number; offSlot: number; encodeMs: number; inferenceMs: number }> {
  const pools = [0, 1].map((encoderWorkers) =>
    new WorkerPoolRunner({ size: 1, module, options, logger: silentLogger, encoderWorkers })
  );
  try {
    while (pools.some((p) => p.status().state === "loading")) await new Promise((r) => setTimeout(r, 10));
    const failed = pools.find((p) => p.status().state === "failed");
    if (failed) throw new Error(`the bench pool failed to load: ${JSON.stringify(failed.status())}`);
    const queues = pools.map((p) => new GenerationQueue(p, { concurrency: 1, maxQueue: 4, maxBatchImages: 1 }));
    const signal = new AbortController().signal;
    const samples = { encodeMs: [] as number[], inferenceMs: [] as number[] };
    // Different seeds per batch, so that `maxBatchImages: 1` keeps them two pipeline calls.
    const two = (q: GenerationQueue, record: boolean) => async () => {
      const outcomes = await Promise.all(
        [1, 2].map((b) =>
          q.submit({ task: "text-to-image", job: { ...job, seeds: job.seeds.map((s) => s + 100 * b) } }, { signal })
        ),
      );
      if (record) {
        for (const o of outcomes) {
          samples.encodeMs.push(o.result.encodeMs), samples.inferenceMs.push(o.result.inferenceMs);
        }
      }
    };
    const [onSlot, offSlot] = await interleaved([two(queues[0]!, false), two(queues[1]!, true)], {
      warmup: 1,
      iterations: 3,
    });
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return { onSlot, offSlot, encodeMs: median(samples.encodeMs), inferenceMs: median(samples.inferenceMs) };
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
}

function backToBackRows(label: string, r: Awaited<ReturnType<typeof backToBack>>, notes: string): BenchRow[] {
  return [
    {
      name: `${label}: 2 batches back to back, encoding on the slot`,
      value: r.onSlot,
      unit: "ms",
      notes: `${notes}; pipeline worker encodes (encoderWorkers 0)`,
    },
    {
      name: `${label}: 2 batches back to back, encoding off the slot`,
      value: r.offSlot,
      unit: "ms",
      ratio: r.offSlot / r.onSlot,
      baseline: "encoding on the slot",
      notes: `${notes}; 1 encoder worker; per batch inference_ms ${r.inferenceMs.toFixed(0)}, encode_ms ${
        r.encodeMs.toFixed(0)
      }; saved ${(r.onSlot - r.offSlot).toFixed(0)} ms`,
    },
  ];
}

/** Runs the suite. */
export async function run(): Promise<BenchSuite> {
  const config = loadConfig({ PORT: "0", LDM_INTRA_OP_THREADS: "1" });
  const loaded = await createRunner(onnxRunnerOptions(config));
  const runner = readyRunner(loaded);
  const app = createApp({ runner, config });
  const server = startServer({ config, logger: silentLogger, handleSignals: false });
  while (server.runner.status().state === "loading") await new Promise((r) => setTimeout(r, 10));
  const rows: BenchRow[] = [];
  try {
    const steps = 2;
    const body = { prompt: "a big red circle on a blue background", num_inference_steps: steps, seed: 1 };
    const job: TextToImageJob = {
      prompts: [body.prompt],
      negativePrompts: null,
      numImagesPerPrompt: 1,
      seeds: [1],
      numInferenceSteps: steps,
      guidanceScale: 1,
      eta: 0,
      width: 64,
      height: 64,
      scheduler: null,
      outputFormat: "png",
    };
    const signal = new AbortController().signal;
    const jsonRequest = () => ({
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const [t2iBare, t2iApp, t2iServer] = await interleaved([
      () => runner.textToImage([job], { signal }),
      async () => await (await app.request("/v1/text-to-image", jsonRequest())).json(),
      async () => await (await fetch(`${server.url}/v1/text-to-image`, jsonRequest())).json(),
    ]);
    const notes = `64×64, ${steps} steps, CPU`;
    rows.push(
      { name: "text-to-image: bare pipeline call", value: t2iBare, unit: "ms", notes },
      {
        name: "text-to-image: app.request (JSON)",
        value: t2iApp,
        unit: "ms",
        ratio: t2iApp / t2iBare,
        baseline: "bare",
        notes: `overhead ${(t2iApp - t2iBare).toFixed(2)} ms`,
      },
      {
        name: "text-to-image: loopback server + worker (JSON)",
        value: t2iServer,
        unit: "ms",
        ratio: t2iServer / t2iBare,
        baseline: "bare",
        notes: `overhead ${(t2iServer - t2iBare).toFixed(2)} ms`,
      },
    );

    const png = new Uint8Array(await new Image(64, 64).fill(0x3366ccff).encode());
    const srJob: SuperResolutionJob = {
      image: png,
      numInferenceSteps: 1,
      eta: 0,
      seed: 1,
      tileSize: null,
      scheduler: null,
      outputFormat: "png",
    };
    const [srBare, srServer] = await interleaved([
      () => runner.superResolution(srJob, { signal }),
      async () =>
        await (await fetch(`${server.url}/v1/super-resolution?num_inference_steps=1&seed=1`, {
          method: "POST",
          headers: { "content-type": "image/png", accept: "image/png" },
          body: png,
        })).arrayBuffer(),
    ], { warmup: 2, iterations: 3 });
    rows.push(
      { name: "super-resolution: bare pipeline call", value: srBare, unit: "ms", notes: "64×64 → 256×256, 1 step" },
      {
        name: "super-resolution: loopback server + worker (image/png)",
        value: srServer,
        unit: "ms",
        ratio: srServer / srBare,
        baseline: "bare",
        notes: `overhead ${(srServer - srBare).toFixed(2)} ms`,
      },
      { name: "process RSS after the suite", value: rssMiB(), unit: "MiB", notes: "in-process runner + one worker" },
    );

    // Encoding off the slot. A fake pipeline whose steps wait asynchronously (as a GPU-bound thread does) making four
    // 1024×1024 PNGs per batch, encoded for real; then the built-in text-to-image model on the CPU.
    const big: TextToImageJob = { ...job, seeds: [1, 2, 3, 4], numImagesPerPrompt: 4, width: 1024, height: 1024 };
    const fake = await backToBack(new URL("../functions/testing/fake_runner.ts", import.meta.url), { stepMs: 40 }, {
      ...big,
      numInferenceSteps: 10,
    });
    rows.push(...backToBackRows("fake GPU-like pipeline", fake, "4 × 1024×1024 PNG per batch, 10 steps × 40 ms"));
    const builtin = await backToBack(
      new URL("../functions/onnx_runner.ts", import.meta.url),
      { ...onnxRunnerOptions(config), functions: ["text-to-image"] },
      { ...big, width: 256, height: 256, numInferenceSteps: 1 },
    );
    rows.push(...backToBackRows("built-in text-to-image", builtin, "4 × 256×256 PNG per batch, 1 step, CPU"));
  } finally {
    await server.shutdown();
    await runner.close();
  }
  return { name: "functions", rows };
}

/**
 * A fake {@linkcode PipelineRunner} for tests and the load test's plumbing checks: it runs the real step loop shape
 * (progress per step, cancellation at the next step), optionally blocking its thread per step the way
 * onnxruntime-node's `run` does, and returns real PNG/JPEG/WebP images (a solid colour derived from the seed), or,
 * through `generateTextToImage` / `generateSuperResolution`, the same images unencoded, as the ONNX runner does.
 *
 * The module also exports {@linkcode createRunner}, so a worker can host it exactly as it hosts the ONNX runner.
 *
 * @module
 */
import { decode } from "imagescript";
import { probeImage } from "../_image_probe.ts";
import { encodeRunResult } from "../codec.ts";
import {
  type GeneratedImage,
  type GeneratedResult,
  type LoadedRunner,
  type ModelDescriptor,
  type PipelineRunner,
  RunnerError,
  type RunnerStatus,
  type RunOptions,
  type RunResult,
  type SuperResolutionJob,
  type TextToImageJob,
  toRunnerError,
} from "../runner.ts";

/** Options of the fake runner. All structured-clone safe, so they can be sent to a worker. */
export interface FakeRunnerOptions {
  /** Milliseconds each step waits asynchronously. @default 0 */
  stepMs?: number;
  /** Milliseconds each step blocks the thread (busy wait), like onnxruntime-node's synchronous `run`. @default 0 */
  blockMs?: number;
  /** Milliseconds before the models count as loaded. @default 0 */
  loadMs?: number;
  /** When set, loading fails with this reason. */
  failLoad?: string;
  /** When set, every run fails with this internal error message. */
  failRun?: string;
  /** Super-resolution output side ÷ input side. @default 4 */
  upscaleFactor?: number;
}

/** The fake models. */
export function fakeModels(options: FakeRunnerOptions = {}): ModelDescriptor[] {
  return [
    {
      id: "fake-text2im",
      task: "text-to-image",
      executionProvider: "cpu",
      defaultWidth: 32,
      defaultHeight: 32,
      sizeMultiple: 8,
      upscaleFactor: null,
      defaultScheduler: "ddim",
    },
    {
      id: "fake-super-resolution",
      task: "super-resolution",
      executionProvider: "cpu",
      defaultWidth: null,
      defaultHeight: null,
      sizeMultiple: 32,
      upscaleFactor: options.upscaleFactor ?? 4,
      defaultScheduler: "ddim",
    },
  ];
}

/** One call the fake received. */
export interface FakeCall {
  /** Which pipeline was called. */
  task: "text-to-image" | "super-resolution";
  /** Jobs in the call (1 for super-resolution). */
  batchSize: number;
  /** Steps it ran before finishing or being cancelled. */
  stepsRun: number;
  /** How it ended. */
  outcome: "ok" | "cancelled" | "error";
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // onnxruntime-node's session.run holds the thread like this
  }
}

/** A solid image of the seed's colour, as the pipelines return images: floats in [0, 1] that are exact bytes / 255. */
function solid(width: number, height: number, seed: number, pixels = new Float32Array(width * height * 3)) {
  const r = ((seed * 97) % 256) / 255, g = ((seed * 57) % 256) / 255, b = ((seed * 17) % 256) / 255;
  for (let i = 0; i < pixels.length; i += 3) {
    pixels[i] = r;
    pixels[i + 1] = g;
    pixels[i + 2] = b;
  }
  return { width, height, pixels, seed } satisfies GeneratedImage;
}

/** The fake pipelines, already loaded. */
export class FakeLoadedRunner implements LoadedRunner {
  /** Every call received, in order. */
  readonly calls: FakeCall[] = [];
  readonly #options: FakeRunnerOptions;
  /** Uses `options` for every call. */
  constructor(options: FakeRunnerOptions = {}) {
    this.#options = options;
  }

  /** The fake models. */
  models(): ModelDescriptor[] {
    return fakeModels(this.#options);
  }

  async #loop(task: FakeCall["task"], batchSize: number, steps: number, options: RunOptions): Promise<FakeCall> {
    const call: FakeCall = { task, batchSize, stepsRun: 0, outcome: "ok" };
    this.calls.push(call);
    for (let i = 0; i < steps; i++) {
      if (options.signal.aborted) {
        call.outcome = "cancelled";
        throw new RunnerError("cancelled", "The generation was cancelled");
      }
      if (this.#options.blockMs) busyWait(this.#options.blockMs);
      // Yield a macrotask per step, as onnxruntime-node's run (setImmediate + native call) does.
      await new Promise((r) => setTimeout(r, this.#options.stepMs ?? 0));
      call.stepsRun = i + 1;
      options.onProgress?.(i + 1, steps);
    }
    if (this.#options.failRun) {
      call.outcome = "error";
      throw new Error(this.#options.failRun);
    }
    return call;
  }

  /** Runs the fake step loop once for the batch and returns one solid image per seed (`null` for aborted jobs). */
  async textToImage(jobs: readonly TextToImageJob[], options: RunOptions): Promise<(RunResult | null)[]> {
    const generated = await this.generateTextToImage(jobs, options);
    const results: (RunResult | null)[] = [];
    for (const g of generated) results.push(g ? await encodeRunResult(g) : null);
    return results;
  }

  /** {@linkcode textToImage} without the encoding: each job's images over one buffer of its own. */
  async generateTextToImage(
    jobs: readonly TextToImageJob[],
    options: RunOptions,
  ): Promise<(GeneratedResult | null)[]> {
    const first = jobs[0];
    if (!first) throw new RunnerError("invalid_parameter", "textToImage needs at least one job");
    const t0 = performance.now();
    try {
      await this.#loop("text-to-image", jobs.length, first.numInferenceSteps, options);
    } catch (e) {
      throw toRunnerError(e, options.signal);
    }
    const inferenceMs = performance.now() - t0;
    return jobs.map((job, i) => {
      if (options.jobSignals?.[i]?.aborted) return null;
      const size = job.width * job.height * 3;
      const buffer = new Float32Array(size * job.seeds.length);
      const images = job.seeds.map((seed, k) =>
        solid(job.width, job.height, seed, buffer.subarray(k * size, (k + 1) * size))
      );
      return { images, outputFormat: job.outputFormat, inferenceMs };
    });
  }

  /** Checks the image decodes, runs the fake step loop and returns a solid image `upscaleFactor` times larger. */
  async superResolution(job: SuperResolutionJob, options: RunOptions): Promise<RunResult> {
    return await encodeRunResult(await this.generateSuperResolution(job, options));
  }

  /**
   * {@linkcode superResolution} without the encoding. A job whose upload was decoded already (`job.decoded`) is
   * taken as it is, as the ONNX runner does.
   */
  async generateSuperResolution(job: SuperResolutionJob, options: RunOptions): Promise<GeneratedResult> {
    let size = job.decoded;
    if (!size) {
      const probe = probeImage(job.image);
      if (!probe || probe.format === "webp") {
        throw new RunnerError("invalid_image", "image is not a PNG or JPEG image", "image");
      }
      try {
        await decode(job.image);
      } catch (e) {
        throw new RunnerError("invalid_image", `image could not be decoded: ${(e as Error).message}`, "image");
      }
      size = { width: probe.width, height: probe.height, data: new Uint8Array(0) };
    }
    const t0 = performance.now();
    try {
      await this.#loop("super-resolution", 1, job.numInferenceSteps, options);
    } catch (e) {
      throw toRunnerError(e, options.signal);
    }
    const inferenceMs = performance.now() - t0;
    const f = this.#options.upscaleFactor ?? 4;
    const width = (size.width - (size.width % 32)) * f;
    const height = (size.height - (size.height % 32)) * f;
    return { images: [solid(width, height, job.seed)], outputFormat: job.outputFormat, inferenceMs };
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The runner-module entry point: what the worker calls to host the fake.
 * @throws {Error} with `failLoad` as its message when loading is set to fail.
 */
export async function createRunner(options: FakeRunnerOptions = {}): Promise<LoadedRunner> {
  if (options.loadMs) await new Promise((r) => setTimeout(r, options.loadMs));
  if (options.failLoad) throw new Error(options.failLoad);
  return new FakeLoadedRunner(options);
}

/** An in-process fake {@linkcode PipelineRunner} whose status the test controls. */
export class FakeRunner extends FakeLoadedRunner implements PipelineRunner {
  /** What `status()` returns; tests set it. */
  state: RunnerStatus = { state: "ready" };
  /** Whether `close()` was called. */
  closed = false;
  /** Reports {@linkcode state}. */
  status(): RunnerStatus {
    return this.state;
  }
  /** Records the call. */
  override close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

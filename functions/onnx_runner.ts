/**
 * The production runner: `LDMTextToImagePipeline` and `LDMSuperResolutionPipeline` from `@ldm/core/pipelines` behind
 * the {@linkcode LoadedRunner} port, with decoding of uploads and encoding of outputs through `@ldm/core/image`.
 *
 * onnxruntime-node's `session.run` blocks the thread it runs on, so the server hosts this module in a worker
 * (`worker/pool.ts` imports it there through {@linkcode createRunner}); calling it in-process is for the bench and
 * the CLI. In the worker, the pool calls `generateTextToImage` / `generateSuperResolution`, which return the float
 * images unencoded, and encodes them in its encoder workers; `textToImage` / `superResolution` encode in-thread.
 *
 * @module
 */
import type { Tensor } from "@ldm/core/tensor";
import {
  type BatchItemResult,
  LDMSuperResolutionPipeline,
  LDMTextToImagePipeline,
  type Logger as PipelineLogger,
} from "@ldm/core/pipelines";
import type { SchedulerName, Task } from "@ldm/sdk/schemas";
import { SCHEDULER_NAMES } from "@ldm/sdk/schemas";
import { decodeUpload, encodeRunResult } from "./codec.ts";
import {
  type GeneratedImage,
  type GeneratedResult,
  type LoadedRunner,
  type ModelDescriptor,
  RunnerError,
  type RunOptions,
  type RunResult,
  type SuperResolutionJob,
  type TextToImageJob,
  toRunnerError,
} from "./runner.ts";

/** Options of {@linkcode createRunner}; structured-clone safe so they can be posted to a worker. */
export interface OnnxRunnerOptions {
  /** Functions to load. */
  functions: readonly Task[];
  /** Converted text-to-image repository. */
  textToImageModelDir: string;
  /** Converted super-resolution repository. */
  superResolutionModelDir: string;
  /** onnxruntime execution providers to try, in order. */
  executionProviders: readonly string[];
  /** CPU-provider threads per session (0 = onnxruntime's choice). */
  intraOpThreads: number;
  /** Largest input the super-resolution decoder accepts, in pixels. */
  maxInputPixels: number;
  /**
   * The text-to-image pipeline's text-embedding cache (`textEmbeddingCache` of `LDMTextToImagePipeline.load`):
   * bounds of its prompt LRU, or `false` for no caching. @default the pipeline's (32 prompts, 16 MiB)
   */
  textEmbeddingCache?: { maxEntries: number; maxBytes: number } | false;
}

/** Extra hooks of {@linkcode createRunner}. */
export interface CreateRunnerHooks {
  /** Where the pipelines log provider choices and skipped options. */
  logger?: PipelineLogger;
}

const CLASS_TO_NAME: Record<string, SchedulerName> = {
  DDIMScheduler: "ddim",
  PNDMScheduler: "pndm",
  LMSDiscreteScheduler: "lms",
  EulerDiscreteScheduler: "euler",
  EulerAncestralDiscreteScheduler: "euler-ancestral",
  DPMSolverMultistepScheduler: "dpm-multistep",
};

/** The short scheduler name of a diffusers scheduler class, or `null` for classes this project does not serve. */
export function schedulerNameOf(className: string): SchedulerName | null {
  const name = CLASS_TO_NAME[className];
  return name && (SCHEDULER_NAMES as readonly string[]).includes(name) ? name : null;
}

function basename(dir: string): string {
  const parts = dir.replace(/[\\/]+$/, "").split(/[\\/]/);
  return parts.at(-1) || dir;
}

function providers(byComponent: Record<string, string>): string {
  return [...new Set(Object.values(byComponent))].join(",");
}

/**
 * The `[N, H, W, 3]` images of one job as {@linkcode GeneratedImage}s over one buffer of their own (copied out of
 * the batch's output, so each job's buffer can be transferred on its own).
 */
function ownImages(tensors: readonly Tensor[], seeds: readonly number[]): GeneratedImage[] {
  const pixels = new Float32Array(tensors.reduce((n, t) => n + t.size, 0));
  const images: GeneratedImage[] = [];
  let at = 0;
  tensors.forEach((t, i) => {
    const [n, h, w] = t.shape as [number, number, number, number];
    pixels.set(t.data, at);
    for (let k = 0; k < n; k++) {
      images.push({ width: w, height: h, pixels: pixels.subarray(at, at + h * w * 3), seed: seeds[i]! });
      at += h * w * 3;
    }
  });
  return images;
}

/** Runs the two pipelines in the current thread. */
class OnnxRunner implements LoadedRunner {
  readonly #t2i: LDMTextToImagePipeline | null;
  readonly #sr: LDMSuperResolutionPipeline | null;
  readonly #options: OnnxRunnerOptions;
  readonly #models: ModelDescriptor[] = [];

  constructor(
    t2i: LDMTextToImagePipeline | null,
    sr: LDMSuperResolutionPipeline | null,
    options: OnnxRunnerOptions,
  ) {
    this.#t2i = t2i;
    this.#sr = sr;
    this.#options = options;
    if (t2i) {
      this.#models.push({
        id: basename(options.textToImageModelDir),
        task: "text-to-image",
        executionProvider: providers(t2i.info.executionProviders),
        defaultWidth: t2i.info.defaultWidth,
        defaultHeight: t2i.info.defaultHeight,
        sizeMultiple: t2i.info.sizeMultiple,
        upscaleFactor: null,
        defaultScheduler: schedulerNameOf(t2i.info.schedulerClass),
      });
    }
    if (sr) {
      this.#models.push({
        id: basename(options.superResolutionModelDir),
        task: "super-resolution",
        executionProvider: providers(sr.info.executionProviders),
        defaultWidth: null,
        defaultHeight: null,
        sizeMultiple: sr.info.sizeMultiple,
        upscaleFactor: sr.info.upscaleFactor,
        defaultScheduler: schedulerNameOf(sr.info.schedulerClass),
      });
    }
  }

  models(): ModelDescriptor[] {
    return this.#models;
  }

  async textToImage(jobs: readonly TextToImageJob[], options: RunOptions): Promise<(RunResult | null)[]> {
    const generated = await this.generateTextToImage(jobs, options);
    const results: (RunResult | null)[] = [];
    for (const g of generated) results.push(g ? await encodeRunResult(g) : null);
    return results;
  }

  async generateTextToImage(
    jobs: readonly TextToImageJob[],
    options: RunOptions,
  ): Promise<(GeneratedResult | null)[]> {
    const t2i = this.#t2i;
    if (!t2i) throw new RunnerError("not_ready", "This runner has no text-to-image model");
    const first = jobs[0];
    if (!first) throw new RunnerError("invalid_parameter", "textToImage needs at least one job");
    // One batch item per image, each with its own generator: image i of a request is what that request would give
    // with num_images_per_prompt 1 and seed seeds[i] (diffusers' `generator=[torch.manual_seed(s) for s in seeds]`).
    const items: { job: number; prompt: string; negativePrompt?: string; seed: number; signal?: AbortSignal }[] = [];
    jobs.forEach((job, j) => {
      let k = 0;
      job.prompts.forEach((prompt, p) => {
        for (let n = 0; n < job.numImagesPerPrompt; n++) {
          const negative = job.negativePrompts?.[p];
          const signal = options.jobSignals?.[j];
          items.push({
            job: j,
            prompt,
            ...(negative === undefined ? {} : { negativePrompt: negative }),
            seed: job.seeds[k++]!,
            ...(signal ? { signal } : {}),
          });
        }
      });
    });
    let batch;
    try {
      batch = await t2i.generateBatch({
        items: items.map(({ job: _job, ...item }) => item),
        numInferenceSteps: first.numInferenceSteps,
        guidanceScale: first.guidanceScale,
        eta: first.eta,
        width: first.width,
        height: first.height,
        ...(first.scheduler ? { scheduler: first.scheduler } : {}),
        signal: options.signal,
        onProgress: ({ step, totalSteps }) => options.onProgress?.(step, totalSteps),
      });
    } catch (e) {
      throw toRunnerError(e, options.signal);
    }
    const inferenceMs = batch.timings.totalMs;
    const results: (GeneratedResult | null)[] = [];
    for (let j = 0; j < jobs.length; j++) {
      const job = jobs[j]!;
      const mine = batch.items.filter((_, i) => items[i]!.job === j);
      const done = mine.flatMap((r: BatchItemResult) => r.status === "done" ? [r.images] : []);
      if (done.length !== mine.length) {
        results.push(null);
        continue;
      }
      // Item i of the job is image i (one image per item), drawn with seed i.
      results.push({ images: ownImages(done, job.seeds), outputFormat: job.outputFormat, inferenceMs });
    }
    return results;
  }

  async superResolution(job: SuperResolutionJob, options: RunOptions): Promise<RunResult> {
    return await encodeRunResult(await this.generateSuperResolution(job, options));
  }

  async generateSuperResolution(job: SuperResolutionJob, options: RunOptions): Promise<GeneratedResult> {
    const sr = this.#sr;
    if (!sr) throw new RunnerError("not_ready", "This runner has no super-resolution model");
    const image = job.decoded ?? await decodeUpload(job.image, this.#options.maxInputPixels);
    let result;
    try {
      result = await sr.upscale({
        image,
        numInferenceSteps: job.numInferenceSteps,
        eta: job.eta,
        seed: job.seed,
        tileSize: job.tileSize ?? "auto",
        ...(job.scheduler ? { scheduler: job.scheduler } : {}),
        signal: options.signal,
        onProgress: ({ step, totalSteps }) => options.onProgress?.(step, totalSteps),
      });
    } catch (e) {
      throw toRunnerError(e, options.signal);
    }
    const [n, h, w] = result.images.shape as [number, number, number, number];
    const data = result.images.data;
    // The output is ours: hand its buffer over as it is when the images fill it, else copy them out.
    const pixels = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength &&
        data.buffer instanceof ArrayBuffer
      ? data as Float32Array<ArrayBuffer>
      : data.slice();
    const images: GeneratedImage[] = [];
    for (let k = 0; k < n; k++) {
      images.push({ width: w, height: h, pixels: pixels.subarray(k * h * w * 3, (k + 1) * h * w * 3), seed: job.seed });
    }
    return { images, outputFormat: job.outputFormat, inferenceMs: result.timings.totalMs };
  }

  async close(): Promise<void> {
    await Promise.all([this.#t2i?.dispose(), this.#sr?.dispose()]);
  }
}

/**
 * Loads the pipelines of the enabled functions (the runner-module entry point the worker calls).
 *
 * @throws {Error} naming the repository and the reason when a pipeline cannot be loaded; pipelines already loaded
 * are released first.
 *
 * @example Running in-process (blocks the thread during inference)
 * ```ts ignore
 * const runner = await createRunner({
 *   functions: ["text-to-image"],
 *   textToImageModelDir: "models/builtin/ldm-text2im-tiny",
 *   superResolutionModelDir: "",
 *   executionProviders: ["cpu"],
 *   intraOpThreads: 0,
 *   maxInputPixels: 512 * 512,
 * });
 * ```
 */
export async function createRunner(options: OnnxRunnerOptions, hooks: CreateRunnerHooks = {}): Promise<LoadedRunner> {
  const load = { executionProviders: options.executionProviders, intraOpNumThreads: options.intraOpThreads };
  const withLogger = hooks.logger ? { ...load, logger: hooks.logger } : load;
  const cache = options.textEmbeddingCache;
  const t2iOptions = cache === undefined ? withLogger : { ...withLogger, textEmbeddingCache: cache };
  // Held in an object so the catch below sees what was loaded (a plain `let` is narrowed to null there).
  const loaded: { t2i: LDMTextToImagePipeline | null; sr: LDMSuperResolutionPipeline | null } = { t2i: null, sr: null };
  try {
    if (options.functions.includes("text-to-image")) {
      try {
        loaded.t2i = await LDMTextToImagePipeline.load(options.textToImageModelDir, t2iOptions);
      } catch (e) {
        throw new Error(`text-to-image model ${options.textToImageModelDir}: ${(e as Error).message}`);
      }
    }
    if (options.functions.includes("super-resolution")) {
      try {
        loaded.sr = await LDMSuperResolutionPipeline.load(options.superResolutionModelDir, withLogger);
      } catch (e) {
        throw new Error(`super-resolution model ${options.superResolutionModelDir}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    await Promise.all([loaded.t2i?.dispose(), loaded.sr?.dispose()]);
    throw e;
  }
  return new OnnxRunner(loaded.t2i, loaded.sr, options);
}

/**
 * The port between the HTTP app and the pipelines: {@linkcode PipelineRunner}. The app only ever talks to this
 * interface, so it never depends on pipeline internals; implementations are the worker pool
 * (`worker/pool.ts`, production), the in-process ONNX runner it hosts (`onnx_runner.ts`) and fakes in tests.
 *
 * @module
 */
import type { OutputFormat, SchedulerName, Task } from "@ldm/sdk/schemas";

/** A model a runner hosts, as `GET /v1/models` describes it. */
export interface ModelDescriptor {
  /** Identifier returned in responses (`model`), e.g. the repository's folder name. */
  id: string;
  /** Which function it serves. */
  task: Task;
  /** Execution provider its sessions run on, e.g. `"cpu"`. */
  executionProvider: string;
  /** Default output width (text-to-image) or `null`. */
  defaultWidth: number | null;
  /** Default output height (text-to-image) or `null`. */
  defaultHeight: number | null;
  /** Text-to-image width/height, or super-resolution input sides, must be multiples of this. */
  sizeMultiple: number;
  /** Output side ÷ input side (super-resolution) or `null`. */
  upscaleFactor: number | null;
  /** Scheduler the model's `scheduler_config.json` names, or `null` when it is none of the six. */
  defaultScheduler: SchedulerName | null;
}

/** One text-to-image request, validated and resolved (no defaults left to fill). */
export interface TextToImageJob {
  /** One prompt per batch entry. */
  prompts: string[];
  /** Unconditional prompts (one per prompt) for classifier-free guidance, or `null` for diffusers' `""`. */
  negativePrompts: string[] | null;
  /** Images per prompt. */
  numImagesPerPrompt: number;
  /** One seed per image, prompt-major: image i is drawn from its own generator seeded with `seeds[i]`. */
  seeds: number[];
  /** Denoising steps. */
  numInferenceSteps: number;
  /** Classifier-free guidance weight (≤ 1: no unconditional pass). */
  guidanceScale: number;
  /** DDIM's η. */
  eta: number;
  /** Image width in pixels. */
  width: number;
  /** Image height in pixels. */
  height: number;
  /** Scheduler to build from the model's config; `null` keeps the model's own. */
  scheduler: SchedulerName | null;
  /** Encoding of the output images. */
  outputFormat: OutputFormat;
}

/** One super-resolution request, validated and resolved. */
export interface SuperResolutionJob {
  /** The encoded input image (PNG or JPEG bytes). */
  image: Uint8Array<ArrayBuffer>;
  /** Denoising steps. */
  numInferenceSteps: number;
  /** DDIM's η. */
  eta: number;
  /** Seed of the generator drawing the latents (and step noise). */
  seed: number;
  /** Tile side in input pixels, 0 for never, `null` for the pipeline's automatic choice. */
  tileSize: number | null;
  /** Scheduler to build from the model's config; `null` keeps the model's own. */
  scheduler: SchedulerName | null;
  /** Encoding of the output image. */
  outputFormat: OutputFormat;
  /**
   * `image` already decoded (8-bit RGB), filled in by {@linkcode PipelineRunner.prepareSuperResolution} so that
   * decoding happens before the request takes a generation slot. When set, runners use it and ignore `image`.
   */
  decoded?: DecodedImage;
}

/** An 8-bit RGB image (`width × height × 3` bytes, row-major): a decoded upload. */
export interface DecodedImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The pixels, R, G, B per pixel. */
  data: Uint8Array<ArrayBuffer>;
}

/** A generated image before encoding: the pipeline's float output, transferable between workers. */
export interface GeneratedImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /**
   * `height × width × 3` floats in [0, 1], row-major RGB (one image of the pipelines' `[N, H, W, 3]` output). Several
   * images of one job may be views of one buffer; no buffer is shared between jobs.
   */
  pixels: Float32Array<ArrayBuffer>;
  /** Seed that reproduces it. */
  seed: number;
}

/** What one job generated, before encoding. */
export interface GeneratedResult {
  /** The job's images, in request order. */
  images: GeneratedImage[];
  /** How to encode them. */
  outputFormat: OutputFormat;
  /** Pipeline time in milliseconds (the whole batch's, for batched jobs). */
  inferenceMs: number;
}

/** An encoded output image. */
export interface EncodedImage {
  /** The encoded bytes (backed by a plain `ArrayBuffer`, so they can be transferred between workers). */
  data: Uint8Array<ArrayBuffer>;
  /** `image/png`, `image/jpeg` or `image/webp`. */
  contentType: "image/png" | "image/jpeg" | "image/webp";
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Seed that reproduces it. */
  seed: number;
}

/** What one job produced. */
export interface RunResult {
  /** The job's images, in request order. */
  images: EncodedImage[];
  /** Pipeline time in milliseconds (the whole batch's, for batched jobs). */
  inferenceMs: number;
  /**
   * Encoding time in milliseconds: from the end of the pipeline call to this job's encoded bytes (8-bit conversion
   * and PNG/JPEG/WebP encoding, plus, when an encoder pool does it, the wait for a free encoder and the hops).
   */
  encodeMs: number;
}

/** Per-call hooks. */
export interface RunOptions {
  /** Aborting it stops the work at the next denoising step; the call then rejects with a {@linkcode RunnerError}
   * of code `"cancelled"`. */
  signal: AbortSignal;
  /** Called after each denoising step with the steps done and the total. */
  onProgress?: (step: number, total: number) => void;
  /**
   * Text-to-image only: one signal per job. An aborted job leaves the batch at the next step (its result is `null`)
   * while the others go on; `signal` still cancels the whole call.
   */
  jobSignals?: readonly AbortSignal[];
  /**
   * Called once when the pipeline call has finished and the generation slot (its worker) is free again, while the
   * images are still being encoded elsewhere; the call's promise settles once they are. Runners that encode on the
   * slot never call it.
   */
  onGenerated?: () => void;
}

/** Whether a runner's models are usable. */
export type RunnerStatus =
  | { state: "loading" }
  | { state: "ready" }
  | { state: "failed"; reason: string };

/** A runner whose models are loaded: what a runner module's `createRunner()` returns. */
export interface LoadedRunner {
  /** The hosted models. */
  models(): ModelDescriptor[];
  /**
   * Runs compatible text-to-image jobs (same size, steps, scheduler, guidance and η) as one pipeline call.
   * @returns one result per job, in order; `null` for a job whose `jobSignals` entry aborted.
   * @throws {RunnerError} `invalid_parameter` for parameters the pipeline refuses, `cancelled`, `internal`.
   */
  textToImage(jobs: readonly TextToImageJob[], options: RunOptions): Promise<(RunResult | null)[]>;
  /**
   * Upscales one image.
   * @throws {RunnerError} `invalid_image` when the image cannot be decoded, `invalid_parameter`, `cancelled`,
   * `internal`.
   */
  superResolution(job: SuperResolutionJob, options: RunOptions): Promise<RunResult>;
  /**
   * Optional: {@linkcode textToImage} without the encoding, for hosts that encode elsewhere (the worker pool's
   * encoders). Same contract otherwise.
   */
  generateTextToImage?(jobs: readonly TextToImageJob[], options: RunOptions): Promise<(GeneratedResult | null)[]>;
  /** Optional: {@linkcode superResolution} without the encoding. Same contract otherwise. */
  generateSuperResolution?(job: SuperResolutionJob, options: RunOptions): Promise<GeneratedResult>;
  /** Releases every session. */
  close(): Promise<void>;
}

/** The port the app uses: a {@linkcode LoadedRunner} that may still be loading (or have failed to load). */
export interface PipelineRunner extends LoadedRunner {
  /** Whether the models are loaded. The app answers 503 until `ready`. */
  status(): RunnerStatus;
  /**
   * Optional: decodes a super-resolution upload off the generation slot. The queue calls it when the request
   * arrives, while other work may hold the slots, and queues the returned job (with `decoded` set).
   * @throws {RunnerError} `invalid_image` when the image cannot be decoded, `cancelled` when `signal` aborts.
   */
  prepareSuperResolution?(job: SuperResolutionJob, signal: AbortSignal): Promise<SuperResolutionJob>;
}

/** Why a runner call failed. */
export type RunnerErrorCode = "invalid_image" | "invalid_parameter" | "cancelled" | "not_ready" | "internal";

/** The one error type runners throw; it crosses the worker boundary as {@linkcode SerializedRunnerError}. */
export class RunnerError extends Error {
  /** Why it failed. */
  readonly code: RunnerErrorCode;
  /** The request field at fault, when there is one. */
  readonly param: string | null;
  /** Builds the error. */
  constructor(code: RunnerErrorCode, message: string, param: string | null = null) {
    super(message);
    this.name = "RunnerError";
    this.code = code;
    this.param = param;
  }
}

/** A {@linkcode RunnerError} as plain data (structured-clone safe). */
export interface SerializedRunnerError {
  /** {@linkcode RunnerError.code}. */
  code: RunnerErrorCode;
  /** The error's message. */
  message: string;
  /** {@linkcode RunnerError.param}. */
  param: string | null;
}

/**
 * Turns anything a pipeline threw into a {@linkcode RunnerError}: `RangeError`/`TypeError` from core input checks
 * become `invalid_parameter` (their messages name the field), aborts become `cancelled`, the rest `internal`.
 */
export function toRunnerError(e: unknown, signal?: AbortSignal): RunnerError {
  if (e instanceof RunnerError) return e;
  if (signal?.aborted || (e instanceof DOMException && e.name === "AbortError")) {
    return new RunnerError("cancelled", "The generation was cancelled");
  }
  if (e instanceof RangeError || e instanceof TypeError) return new RunnerError("invalid_parameter", e.message);
  return new RunnerError("internal", e instanceof Error ? e.message : String(e));
}

/** Wraps a loaded runner as a ready {@linkcode PipelineRunner} (in-process use: bench, tests). */
export function readyRunner(loaded: LoadedRunner): PipelineRunner {
  return {
    status: () => ({ state: "ready" }),
    models: () => loaded.models(),
    textToImage: (jobs, options) => loaded.textToImage(jobs, options),
    superResolution: (job, options) => loaded.superResolution(job, options),
    close: () => loaded.close(),
  };
}

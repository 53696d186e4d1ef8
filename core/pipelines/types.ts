/**
 * Public types of the two Latent Diffusion pipelines: what `generate`, `generateBatch` and `upscale` take and return.
 * `API.md` beside this file explains how they fit together.
 *
 * @module
 */
import type { Tensor } from "../tensor/mod.ts";
import type { Generator } from "../random/mod.ts";
import type { Logger } from "../onnx/mod.ts";
import type { RgbImage } from "../image/mod.ts";

import type { SchedulerName } from "../schedulers/mod.ts";
import type { TextEmbeddingCacheOptions } from "./_text_cache.ts";

export type { Logger, RgbImage, SchedulerName, TextEmbeddingCacheOptions };

/** Options for `LDMTextToImagePipeline.load` and `LDMSuperResolutionPipeline.load`. */
export interface PipelineLoadOptions {
  /**
   * Execution providers to try for every component, in order (e.g. `["webgpu", "cpu"]`). The first one that can
   * create a component's session is used; the others are logged with the reason they were skipped.
   * @default the comma-separated `LDM_EXECUTION_PROVIDERS` environment variable when readable, else `["cpu"]`
   */
  executionProviders?: readonly string[];
  /** Threads for the CPU provider's operators; 0 lets onnxruntime decide. @default 0 */
  intraOpNumThreads?: number;
  /** Where load-time and run-time messages go (provider choice, skipped providers, ignored options). */
  logger?: Logger;
  /**
   * Text to image only (ignored by super-resolution): bounds of the cache of prompt embeddings, so a repeated prompt
   * skips the text encoder; `false` turns caching off, the unconditional `""` included. See API.md, "Text-encoder
   * cache".
   * @default { maxEntries: 32, maxBytes: 16 MiB }
   */
  textEmbeddingCache?: TextEmbeddingCacheOptions | false;
}

/** What `onProgress` receives after every denoising step. */
export interface StepProgress {
  /** Steps done so far, 1-based (`step === totalSteps` on the last one). */
  step: number;
  /** Denoising steps in this run (the scheduler's number of timesteps: PNDM with PRK warm-up has more than asked). */
  totalSteps: number;
  /** The timestep of the step just done (fractional for LMS/Euler with `"linspace"` spacing). */
  timestep: number;
  /** Milliseconds since the run started (text encoding included). */
  elapsedMs: number;
}

/** What `onPreview` receives every `previewEvery` steps. */
export interface PreviewImages {
  /** Steps done so far, 1-based. */
  step: number;
  /** Denoising steps in this run. */
  totalSteps: number;
  /**
   * The decoded current estimate of the clean image (the scheduler's x̂₀ where it computes one, else the current
   * latents), `[N, H, W, 3]` float32 in [0, 1], one row per image of the run (all items of a batch, in order).
   */
  images: Tensor;
  /** For `generateBatch`: the item index of each row of `images` (aborted items are left out). */
  itemOfImage: readonly number[];
}

/** Options shared by both pipelines' runs. */
export interface RunOptions {
  /** Denoising steps. Text-to-image @default 50; super-resolution @default 100 */
  numInferenceSteps?: number;
  /** DDIM's η in [0, 1] (0 = deterministic); ignored by the other schedulers. @default 0 */
  eta?: number;
  /**
   * The scheduler. `undefined` uses the repository's `scheduler/scheduler_config.json` as is; a name builds that
   * scheduler from the repository's config as diffusers' `from_config` does (keys the source config only had as
   * defaults are dropped, so the new class uses its own defaults).
   */
  scheduler?: SchedulerName;
  /**
   * Extra scheduler config keys in diffusers' snake_case, applied over the repository's config (e.g.
   * `{ skip_prk_steps: true }` for PNDM, `{ use_karras_sigmas: true }`), like keyword arguments to `from_config`.
   */
  schedulerConfig?: Readonly<Record<string, unknown>>;
  /**
   * Seed of the torch-compatible CPU {@linkcode Generator} that draws the initial latents and then each step's noise
   * (DDIM with η > 0, Euler-ancestral), in diffusers' order: a seed reproduces diffusers called with
   * `generator=torch.manual_seed(seed)`. Without `seed` and `generator` a random seed is drawn and reported in the
   * result. Integer in [0, 2^53).
   */
  seed?: number;
  /** An existing generator instead of `seed` (it is advanced). Mutually exclusive with `seed`. */
  generator?: Generator;
  /** Stops the run between steps (and before decoding); the returned promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Called after every denoising step. Exceptions thrown here abort the run. */
  onProgress?: (progress: StepProgress) => void;
  /**
   * Decode a preview every this many steps (0 = never). Each preview is one decoder run over every image of the run,
   * on the loop's thread, before the next step (built-in model: ~3 ms per image against ~7 ms per guided step;
   * CompVis size on CPU: 2.3–2.7 s per image against ~1.9 s per step, so `previewEvery: 10` adds ~13%).
   * @default 0
   */
  previewEvery?: number;
  /**
   * Receives the previews. The loop does not wait for a returned promise: it goes on with the next step while the
   * callback works (encodes, sends), and a preview that falls due while the previous callback's promise is still
   * pending is skipped, not decoded. The run waits for a pending callback before it resolves; a callback that throws
   * or rejects aborts the run (at the next step boundary for a rejection).
   */
  onPreview?: (preview: PreviewImages) => void | Promise<void>;
}

/** Options of `LDMTextToImagePipeline.generate` (diffusers' `LDMTextToImagePipeline.__call__`). */
export interface TextToImageOptions extends RunOptions {
  /** One prompt or several (one batch). Tokenised to 77 tokens ([CLS] … [SEP] [PAD]…), longer ones truncated. */
  prompt: string | readonly string[];
  /**
   * What to steer away from: the unconditional branch of classifier-free guidance encodes this instead of `""`.
   * One string for every prompt or one per prompt. Ignored (with a log line) when `guidanceScale <= 1`.
   * @default ""
   */
  negativePrompt?: string | readonly string[];
  /**
   * Classifier-free guidance weight w: `uncond + w · (cond − uncond)`. At w ≤ 1 the unconditional pass is skipped
   * (the output is the conditional prediction), as in diffusers' Stable Diffusion pipelines. Finite, in [0, 100].
   * @default 1 (diffusers' default for this pipeline; the built-in model works best around 5)
   */
  guidanceScale?: number;
  /** Image height in pixels, a multiple of the VAE scale factor (8 for the CompVis and built-in models). @default unet sample_size × VAE scale factor */
  height?: number;
  /** Image width in pixels (same rule as `height`). @default unet sample_size × VAE scale factor */
  width?: number;
  /** Images per prompt (batch = prompts × this, ordered prompt 0 images, prompt 1 images, …). @default 1 */
  numImagesPerPrompt?: number;
  /**
   * Initial latents `[batch, C, height / f, width / f]` (N(0, 1) noise, before `initNoiseSigma` scaling) instead of
   * drawing them; they fix the image size when `height`/`width` are omitted.
   */
  latents?: Tensor;
}

/** One request inside a `generateBatch` call. */
export interface TextToImageBatchItem {
  /** The prompt. */
  prompt: string;
  /** Its negative prompt. @default "" */
  negativePrompt?: string;
  /** Seed of this item's own generator (latents and step noise); random when omitted, reported in the result. */
  seed?: number;
  /** Images for this item. @default 1 */
  numImages?: number;
  /** Explicit initial latents `[numImages, C, h, w]` for this item. */
  latents?: Tensor;
  /**
   * Cancels this item only: it leaves the batch at the next step boundary and its result has `status: "aborted"`;
   * the other items go on.
   */
  signal?: AbortSignal;
}

/** Options of `LDMTextToImagePipeline.generateBatch`: items with their own prompts/seeds, everything else shared. */
export interface TextToImageBatchOptions
  extends
    Omit<TextToImageOptions, "prompt" | "negativePrompt" | "seed" | "generator" | "latents" | "numImagesPerPrompt"> {
  /** The requests, run together in one UNet batch per step. At least one. */
  items: readonly TextToImageBatchItem[];
}

/** Wall-clock breakdown of one run, in milliseconds. */
export interface RunTimings {
  /** Whole run. */
  totalMs: number;
  /** Text encoder (0 for super-resolution). */
  textEncoderMs: number;
  /** All UNet calls together. */
  unetMs: number;
  /** UNet calls made (per tile for tiled super-resolution). */
  unetCalls: number;
  /** Final decode (previews excluded). */
  decodeMs: number;
  /** Decoder runs for previews (0 without previews). */
  previewMs: number;
  /** Denoising steps run. */
  steps: number;
  /** Texts whose embeddings came from the text-encoder cache instead of the encoder (0 for super-resolution). */
  textCacheHits: number;
}

/** What `generate` and `upscale` return. */
export interface ImageResult {
  /** `[N, H, W, 3]` float32 in [0, 1] (diffusers' `output_type="np"`); `toRgbImages` in `@ldm/core/image` converts. */
  images: Tensor;
  /** The seed used (given or drawn); `undefined` when a `generator` was passed. */
  seed: number | undefined;
  /** The scheduler that ran (diffusers class name). */
  scheduler: string;
  /** Timings of this run. */
  timings: RunTimings;
}

/** Result of one item of `generateBatch`. */
export type BatchItemResult =
  | { status: "done"; images: Tensor; seed: number }
  | { status: "aborted"; reason: unknown };

/** What `generateBatch` returns: one entry per item, in order. */
export interface BatchResult {
  /** Per-item outcome. */
  items: BatchItemResult[];
  /** The scheduler that ran. */
  scheduler: string;
  /** Timings of the whole batch. */
  timings: RunTimings;
}

/** Options of `LDMSuperResolutionPipeline.upscale` (diffusers' `LDMSuperResolutionPipeline.__call__`). */
export interface SuperResolutionOptions extends RunOptions {
  /**
   * The low-resolution input. An {@linkcode RgbImage} takes diffusers' PIL path: floored to a multiple of 32 per side,
   * resized with Pillow-exact Lanczos when that changed the size, mapped to [-1, 1]. A `Tensor` `[B, 3, h, w]` takes
   * the tensor path: used as is (values expected in [-1, 1], h and w multiples of the UNet's down-sampling factor).
   */
  image: RgbImage | Tensor;
  /**
   * Tile edge in low-resolution pixels. Inputs larger than a tile are processed in overlapping tiles: the UNet per
   * tile at every step, with the noise predictions blended by a smooth window before the one scheduler step on the
   * whole latent, and the VQ decoder per tile, blended the same way. A number sets the edge for both (rounded down to
   * a multiple of the UNet's down-sampling factor); `0` never tiles; `"auto"` picks, per component, the largest edge
   * whose self-attention matrix stays within 1 GiB (CompVis checkpoint: 480 px UNet, 128 px decoder), so inputs
   * below that run untiled. Tiles see only their own region, so GroupNorm statistics and attention are per tile:
   * small tiles drift from the untiled result (a 64 px tile of the built-in model: mean |Δ| ≈ 0.01).
   * @default "auto"
   */
  tileSize?: number | "auto";
  /** Overlap between neighbouring tiles in low-resolution pixels, in [0, tile − down-sampling factor]. @default tile / 4 */
  tileOverlap?: number;
}

/** What `upscale` returns: {@linkcode ImageResult} plus the tiling used. */
export interface SuperResolutionResult extends ImageResult {
  /** UNet tiles per step (1 = untiled). */
  tiles: number;
  /** VQ decoder tiles (1 = untiled). */
  decoderTiles: number;
}

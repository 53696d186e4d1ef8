/**
 * Parameter and result types of the client: the shared schemas' fields (`sdk/schemas.ts`) in camelCase, with
 * images as bytes instead of base64. `tests/sdk_types_test.ts` checks at compile time that each type is exactly the
 * schema's, so the client and the server cannot drift apart.
 *
 * @module
 */
import type { OutputFormat, SchedulerName, Task } from "./schemas.ts";

/**
 * Parameters of {@linkcode LdmClient.textToImage}: diffusers' `LDMTextToImagePipeline.__call__` arguments in
 * camelCase. Omitted fields take the server's defaults.
 *
 * @example
 * ```ts
 * import type { TextToImageInput } from "@ldm/sdk";
 *
 * const params: TextToImageInput = { prompt: "a painting of a squirrel", guidanceScale: 6, seed: 42 };
 * ```
 */
export interface TextToImageInput {
  /** The prompt, or one prompt per batch entry (1–64 of them). */
  prompt: string | string[];
  /** Replaces the empty unconditional prompt of classifier-free guidance (used only when `guidanceScale > 1`); a
   * list must be as long as the prompt list. */
  negativePrompt?: string | string[];
  /** Denoising steps, 1–1000 (and at most the server's limit). Default 50. */
  numInferenceSteps?: number;
  /** Classifier-free guidance weight, 0–100; 1 disables guidance. Default 1. */
  guidanceScale?: number;
  /** DDIM's η in [0, 1] (0 = deterministic); only the `ddim` scheduler uses it. Default 0. */
  eta?: number;
  /** Seed of the torch-compatible generator, 0–2^53−1; image i uses `seed + i`. Random when omitted. */
  seed?: number;
  /** Width in pixels, a multiple of the model's `sizeMultiple`. Default: the model's native size. */
  width?: number;
  /** Height in pixels, a multiple of the model's `sizeMultiple`. Default: the model's native size. */
  height?: number;
  /** Images per prompt, 1–64 (prompts × images at most the server's limit). Default 1. */
  numImagesPerPrompt?: number;
  /** Sampler; default: the model's own. */
  scheduler?: SchedulerName;
  /** Encoding of the returned images. Default png. */
  outputFormat?: OutputFormat;
}

/**
 * An image to upscale: its encoded bytes (PNG or JPEG) as a `Uint8Array`, an `ArrayBuffer`, a `Blob` (a
 * `File` too) or a `ReadableStream` of bytes. A stream is read once, before the first attempt, so retries can
 * resend it.
 *
 * @example
 * ```ts
 * import type { ImageInput } from "@ldm/sdk";
 *
 * const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
 * const fromBytes: ImageInput = bytes;
 * const fromBlob: ImageInput = new Blob([bytes], { type: "image/png" });
 * const fromStream: ImageInput = fromBlob.stream();
 * ```
 */
export type ImageInput = Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>;

/**
 * Parameters of {@linkcode LdmClient.superResolve}: the image plus diffusers' `LDMSuperResolutionPipeline.__call__`
 * arguments in camelCase.
 *
 * @example
 * ```ts
 * import type { SuperResolutionInput } from "@ldm/sdk";
 *
 * const params: SuperResolutionInput = { image: new Blob([]), numInferenceSteps: 100, tileSize: 128 };
 * ```
 */
export interface SuperResolutionInput {
  /** The low-resolution image. */
  image: ImageInput;
  /** Denoising steps, 1–1000 (and at most the server's limit). Default 100. */
  numInferenceSteps?: number;
  /** DDIM's η in [0, 1]. Default 0. */
  eta?: number;
  /** Seed of the torch-compatible generator, 0–2^53−1. Random when omitted. */
  seed?: number;
  /** Denoise and decode in overlapping tiles of this many input pixels per side (rounded down to the UNet's
   * multiple) to bound memory: 0 never tiles, otherwise at least 32 (at most 8192). When omitted the server tiles
   * images larger than 128 pixels per side by itself. */
  tileSize?: number;
  /** Sampler; default: the model's own. */
  scheduler?: SchedulerName;
  /** Encoding of the returned image. Default png. */
  outputFormat?: OutputFormat;
}

/**
 * One generated image.
 *
 * @example Saving an image in Deno
 * ```ts ignore
 * const { images } = await client.textToImage({ prompt: "a squirrel" });
 * await Deno.writeFile(`squirrel-${images[0]!.seed}.png`, images[0]!.data);
 * ```
 */
export interface OutputImage {
  /** The encoded image. */
  data: Uint8Array<ArrayBuffer>;
  /** Its media type. */
  contentType: "image/png" | "image/jpeg" | "image/webp";
  /** Seed that reproduces this image alone (with `numImagesPerPrompt: 1`). */
  seed: number;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/**
 * Where the request's time went on the server, in milliseconds.
 *
 * @example
 * ```ts
 * import type { ResultTimings } from "@ldm/sdk";
 *
 * const overhead = (t: ResultTimings) => t.totalMs - t.inferenceMs;
 * ```
 */
export interface ResultTimings {
  /** Waiting for a free generation slot. */
  queueMs: number;
  /** Running the pipeline (shared by every request of a batch). */
  inferenceMs: number;
  /** Encoding the output images. */
  encodeMs: number;
  /** From the request's arrival to the response. */
  totalMs: number;
  /** Requests that ran together in one pipeline call. */
  batchSize: number;
}

/**
 * What {@linkcode LdmClient.textToImage} and {@linkcode LdmClient.superResolve} return.
 *
 * @example
 * ```ts
 * import type { ImageResult } from "@ldm/sdk";
 *
 * const describe = (r: ImageResult) => `${r.images.length} images from ${r.model} (${r.requestId})`;
 * ```
 */
export interface ImageResult {
  /** The images, in request order (prompt-major for several prompts). */
  images: OutputImage[];
  /** Server-side timings. */
  timings: ResultTimings;
  /** Identifier of the model that produced the images. */
  model: string;
  /** The server's request id. */
  requestId: string;
}

/**
 * Progress of a generation, from the server's event stream.
 *
 * @example
 * ```ts
 * import type { GenerationProgress } from "@ldm/sdk";
 *
 * const percent = (p: GenerationProgress) => Math.round((100 * p.step) / p.total);
 * ```
 */
export interface GenerationProgress {
  /** Denoising steps done. */
  step: number;
  /** Denoising steps in all. */
  total: number;
  /** Milliseconds since the server received the request. */
  elapsedMs: number;
}

/**
 * One model a server hosts (`GET /v1/models`).
 *
 * @example
 * ```ts
 * import type { ModelDescription } from "@ldm/sdk";
 *
 * const upscalers = (models: ModelDescription[]) => models.filter((m) => m.task === "super-resolution");
 * ```
 */
export interface ModelDescription {
  /** Identifier returned in results as `model`. */
  id: string;
  /** The function it serves. */
  task: Task;
  /** Whether it is loaded. */
  status: "loading" | "ready" | "failed";
  /** The onnxruntime execution provider its sessions run on. */
  executionProvider: string | null;
  /** Default output width (text-to-image), or `null`. */
  defaultWidth: number | null;
  /** Default output height (text-to-image), or `null`. */
  defaultHeight: number | null;
  /** Width and height (text-to-image) or input sides (super-resolution) must be multiples of this. */
  sizeMultiple: number;
  /** Output side ÷ input side (super-resolution), or `null`. */
  upscaleFactor: number | null;
  /** The scheduler the model uses unless asked for another, or `null`. */
  defaultScheduler: SchedulerName | null;
}

/**
 * The server's readiness (`GET /readyz`).
 *
 * @example
 * ```ts
 * import type { HealthStatus } from "@ldm/sdk";
 *
 * const line = (h: HealthStatus) => (h.ready ? "ready" : `${h.status}: ${h.reason ?? ""}`);
 * ```
 */
export interface HealthStatus {
  /** Whether the server accepts generation requests now. */
  ready: boolean;
  /** `ready`, or why not: `loading`, `failed`, `shutting_down` (`ok` from a liveness-only server). */
  status: "ok" | "ready" | "loading" | "failed" | "shutting_down";
  /** Why the server is not ready, when it says. */
  reason?: string;
}

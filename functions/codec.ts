/**
 * Images in and out of the functions, apart from the pipelines: encoding generated images to PNG, JPEG or WebP
 * ({@linkcode encodeGenerated}) and decoding super-resolution uploads ({@linkcode decodeUpload}), in the current
 * thread, with the functions' error codes; and {@linkcode ImageCodec}, the port through which the worker pool hands
 * both to its encoder workers (`worker/codec_pool.ts`) so that neither holds a generation slot.
 *
 * @module
 */
import { decodeImage, encodeImage, toRgbImages } from "@ldm/core/image";
import { Tensor } from "@ldm/core/tensor";
import type { OutputFormat } from "@ldm/sdk/schemas";
import { type DecodedImage, type EncodedImage, type GeneratedResult, RunnerError, type RunResult } from "./runner.ts";

/** The media type of each output format. */
export const CONTENT_TYPES: Readonly<Record<OutputFormat, EncodedImage["contentType"]>> = {
  png: "image/png",
  jpeg: "image/jpeg",
  webp: "image/webp",
};

/**
 * Encodes a job's generated images: 8-bit conversion exactly as diffusers' `numpy_to_pil` (float32 `x · 255`,
 * round half to even, through `toRgbImages`), then PNG, JPEG or WebP (quality 90) through `@ldm/core/image`.
 *
 * @returns one encoded image per generated one, in order; each `data` owns its buffer (transferable).
 * @throws {RunnerError} `internal` naming the image when an image is malformed or cannot be encoded: an encoding
 * failure is the server's fault, never the request's.
 */
export async function encodeGenerated(result: GeneratedResult): Promise<EncodedImage[]> {
  const contentType = CONTENT_TYPES[result.outputFormat];
  if (!contentType) {
    throw new RunnerError("internal", `image encoding failed: unknown output format ${String(result.outputFormat)}`);
  }
  const out: EncodedImage[] = [];
  for (const [i, image] of result.images.entries()) {
    try {
      const rgb = toRgbImages(new Tensor(image.pixels, [1, image.height, image.width, 3]))[0]!;
      const bytes = await encodeImage(rgb, result.outputFormat);
      out.push({
        data: new Uint8Array(bytes),
        contentType,
        width: image.width,
        height: image.height,
        seed: image.seed,
      });
    } catch (e) {
      throw new RunnerError("internal", `image encoding failed for image ${i}: ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * Encodes a result in the current thread ({@linkcode encodeGenerated}) into what a runner's `textToImage` and
 * `superResolution` return, with the time the encoding took.
 */
export async function encodeRunResult(result: GeneratedResult): Promise<RunResult> {
  const e0 = performance.now();
  const images = await encodeGenerated(result);
  return { images, inferenceMs: result.inferenceMs, encodeMs: performance.now() - e0 };
}

/**
 * Decodes a super-resolution upload (PNG or JPEG) into 8-bit RGB.
 *
 * @param maxPixels largest width × height accepted (checked on the header before decoding).
 * @throws {RunnerError} `invalid_image` (param `image`) when the bytes are no PNG/JPEG, corrupt, or too large.
 */
export async function decodeUpload(bytes: Uint8Array, maxPixels: number): Promise<DecodedImage> {
  try {
    const image = await decodeImage(bytes, { maxPixels });
    return { width: image.width, height: image.height, data: new Uint8Array(image.data) };
  } catch (e) {
    throw new RunnerError("invalid_image", `image could not be decoded: ${(e as Error).message}`, "image");
  }
}

/**
 * Encodes generated images and decodes uploads, somewhere other than the generation slot (the worker pool's
 * encoder workers: {@linkcode CodecPool}; tests inject their own).
 */
export interface ImageCodec {
  /**
   * Encodes one job's images ({@linkcode encodeGenerated}). It takes ownership of the pixel buffers (they may be
   * transferred to another thread and detached here).
   * @throws {RunnerError} `internal` when encoding fails, `cancelled` when `signal` aborts or the codec closes.
   */
  encode(result: GeneratedResult, signal?: AbortSignal): Promise<EncodedImage[]>;
  /**
   * Decodes an upload ({@linkcode decodeUpload}); `bytes` are copied, the caller keeps them.
   * @throws {RunnerError} `invalid_image`, `cancelled`, or `internal` when the codec itself failed.
   */
  decode(bytes: Uint8Array<ArrayBuffer>, options: { maxPixels: number }, signal?: AbortSignal): Promise<DecodedImage>;
  /** Stops the codec: pending work is rejected (`cancelled`), its threads end. */
  close(): Promise<void>;
}

/**
 * The distinct buffers behind `results`' pixels: what to transfer when posting them (a buffer may back several
 * images of one job, and must appear once in a transfer list).
 */
export function pixelBuffers(results: readonly (GeneratedResult | null)[]): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const r of results) for (const image of r?.images ?? []) set.add(image.pixels.buffer);
  return [...set];
}

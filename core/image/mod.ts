/**
 * Images in and out of the pipelines.
 *
 * - {@linkcode decodeImage}: PNG or JPEG bytes → 8-bit {@linkcode RgbImage}, with size limits and clear errors for
 *   unsupported, truncated or oversized files (checked on the header, before decoding).
 * - {@linkcode encodeImage}: {@linkcode RgbImage} → PNG, JPEG or WebP bytes (imagescript).
 * - {@linkcode toRgbImages} / {@linkcode fromRgbImages}: the pipelines' `[N, H, W, 3]` float32 images in [0, 1] ↔
 *   8-bit images, rounding as diffusers' `numpy_to_pil` (round half to even of `x · 255`).
 * - {@linkcode encodeNpy} / {@linkcode decodeNpy}: numpy `.npy` for exact float exchange.
 * - {@linkcode resizeLanczos}: Pillow's Lanczos resize, bit for bit (diffusers' super-resolution preprocessing).
 *
 * @module
 */
export { assertRgbImage, floatToByte, fromRgbImages, toRgbImages } from "./rgb.ts";
export type { RgbImage } from "./rgb.ts";
export { decodeImage, encodeImage, imageFormatFromPath, sniffImageFormat } from "./codec.ts";
export type { DecodeImageOptions, EncodeImageOptions, InputImageFormat, OutputImageFormat } from "./codec.ts";
export { decodeNpy, encodeNpy } from "./npy.ts";
export type { DecodeNpyOptions } from "./npy.ts";
export { resizeLanczos } from "./resample.ts";

/**
 * `@ldm/core`: tensors, torch-compatible random numbers, schedulers, tokenizer and the Latent Diffusion pipelines.
 *
 * @module
 */
export { shapeSize, Tensor } from "./tensor/mod.ts";
export { LDMSuperResolutionPipeline, LDMTextToImagePipeline, loadPipeline } from "./pipelines/mod.ts";
export { decodeImage, decodeNpy, encodeImage, encodeNpy, resizeLanczos, toRgbImages } from "./image/mod.ts";
export type { RgbImage } from "./image/mod.ts";

/**
 * `@ldm/core`: tensors, torch-compatible random numbers, schedulers, tokenizer and the Latent Diffusion pipelines.
 *
 * @module
 */
export { shapeSize, Tensor } from "./tensor/mod.ts";

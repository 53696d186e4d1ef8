/**
 * Reading diffusers checkpoints without Python: safetensors (single or sharded), PyTorch `.bin` zips through a
 * restricted unpickler, `model_index.json` pipeline folders and per-component `config.json`. Every reader exposes the
 * same {@linkcode WeightStore}, reading tensors by byte range so a multi-gigabyte checkpoint never sits in memory.
 *
 * @example Listing a UNet's tensors
 * ```ts ignore
 * import { openWeights } from "@ldm/models/checkpoint";
 *
 * const weights = await openWeights("unet/diffusion_pytorch_model.safetensors");
 * try {
 *   for (const name of weights.names()) console.log(name, weights.info(name));
 *   const w = await weights.readFloat32("conv_in.weight");
 * } finally {
 *   weights.close();
 * }
 * ```
 *
 * @module
 */
export type { CheckpointWeights, DType, TensorInfo, WeightStore } from "./types.ts";
export { openWeights } from "./weights.ts";
export { openSafetensors, writeSafetensors } from "./safetensors.ts";
export type { SafetensorsTensor, WriteSafetensorsOptions } from "./safetensors.ts";
export { openTorchBin } from "./torch_bin.ts";
export { findWeightsFile, openComponent, openPipelineFolder } from "./pipeline.ts";
export type { ModelComponent, OpenComponentOptions, PipelineComponentSpec, PipelineFolder } from "./pipeline.ts";

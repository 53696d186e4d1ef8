/**
 * `@ldm/models`: everything between a diffusers checkpoint and the ONNX graphs the pipelines run.
 *
 * - `@ldm/models/checkpoint`: read diffusers checkpoints without Python ({@linkcode openWeights},
 *   {@linkcode openPipelineFolder}): safetensors (single or sharded) and PyTorch `.bin` through a restricted
 *   unpickler, tensors read by byte range.
 * - `@ldm/models/onnx`: the ONNX graph builder and the UNet, AutoencoderKL, VQModel and LDMBert graphs.
 * - `@ldm/models/convert`: {@linkcode convertPipeline} and `deno task convert`, writing a converted repository with an
 *   `ldm_onnx.json` manifest ({@linkcode readManifest}, {@linkcode verifyRepository}).
 * - `@ldm/models/builtin`: the two committed tiny models ({@linkcode builtinModelDir}).
 *
 * This root module re-exports the entry points of each; import the subpaths for the rest.
 *
 * @example Converting, then locating a graph through the manifest
 * ```ts ignore
 * import { convertPipeline, readManifest } from "@ldm/models";
 * await convertPipeline("checkpoints/ldm-super-resolution-4x-openimages", "models/ldm-sr", { dtype: "fp16" });
 * const m = await readManifest("models/ldm-sr");
 * console.log(m.components.vqvae?.graphs?.decoder?.file); // "vqvae/decoder.onnx"
 * ```
 *
 * @module
 */
export { openComponent, openPipelineFolder, openWeights } from "./checkpoint/mod.ts";
export type { CheckpointWeights, ModelComponent, PipelineFolder, WeightStore } from "./checkpoint/mod.ts";
export { convertPipeline, readManifest, verifyRepository } from "./convert/mod.ts";
export type { ConvertOptions, ConvertProgress, ConvertResult, LdmOnnxManifest } from "./convert/mod.ts";
export { BUILTIN_MODELS, builtinModelDir } from "./builtin/mod.ts";
export type { BuiltinModel, BuiltinModelName } from "./builtin/mod.ts";

/**
 * The converter: a diffusers Latent Diffusion pipeline folder (`save_pretrained` layout, safetensors or `.bin`) →
 * this project's repository of ONNX graphs, with an `ldm_onnx.json` manifest. Also the CLI behind
 * `deno task convert <diffusers-dir> <out-dir> [--dtype fp32|fp16] [--components bert,unet,vqvae]` (`cli.ts`).
 *
 * | path | inputs → outputs |
 * | --- | --- |
 * | `bert/model.onnx` | `input_ids` int64 [B, 77] → `last_hidden_state` float32 [B, 77, d_model] |
 * | `unet/model.onnx` (text-to-image) | `sample` [B, C, h, w], `timestep` [B], `encoder_hidden_states` [B, L, D] → `out_sample` |
 * | `unet/model.onnx` (super-resolution) | `sample` [B, 6, h, w], `timestep` [B] → `out_sample` |
 * | `vqvae/decoder.onnx` | `latent_sample` → `sample` (VQModel: snapped to the codebook first, as `VQModel.decode`) |
 * | `vqvae/encoder.onnx` | `sample` → `latent_mean`, `latent_std` (AutoencoderKL) / `latents` (VQModel) |
 *
 * @example Converting a checkpoint in fp16
 * ```ts ignore
 * import { convertPipeline, readManifest } from "@ldm/models/convert";
 * await convertPipeline("checkpoints/ldm-text2im-large-256", "models/ldm-text2im-large-256", { dtype: "fp16" });
 * const manifest = await readManifest("models/ldm-text2im-large-256");
 * console.log(manifest.components.unet?.graphs?.model?.file); // "unet/model.onnx"
 * ```
 *
 * @module
 */
export { convertPipeline, DEFAULT_EXTERNAL_DATA_THRESHOLD } from "./convert.ts";
export type { ConvertLogger, ConvertOptions, ConvertProgress, ConvertResult } from "./convert.ts";
export {
  CONVERTER_VERSION,
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  readManifest,
  verifyRepository,
} from "./manifest.ts";
export type {
  LdmOnnxManifest,
  ManifestComponent,
  ManifestFile,
  ManifestGraph,
  ManifestTensor,
  VerifyProblem,
} from "./manifest.ts";

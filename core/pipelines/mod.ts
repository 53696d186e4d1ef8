/**
 * The two Latent Diffusion pipelines of diffusers over ONNX Runtime, with the denoising loops written out:
 *
 * - {@linkcode LDMTextToImagePipeline} (`generate`, `generateBatch`): LDMBert + UNet2DConditionModel +
 *   AutoencoderKL, classifier-free guidance with negative prompts, any of the six schedulers.
 * - {@linkcode LDMSuperResolutionPipeline} (`upscale`): UNet2DModel on latents ‖ low-res image + VQModel, with
 *   Pillow-exact preprocessing and overlapping tiles for large inputs.
 * - {@linkcode loadPipeline}: whichever one a converted repository's `model_index.json` names.
 *
 * Seeds reproduce diffusers' `generator=torch.manual_seed(seed)` on CPU. Every run takes progress and preview
 * callbacks and an `AbortSignal`. Images come back as `[N, H, W, 3]` float32 in [0, 1]; `@ldm/core/image` encodes
 * them. `API.md` in this folder is the guide for callers.
 *
 * @module
 */
export { LDMTextToImagePipeline } from "./text_to_image.ts";
export type { PromptTokenizer, TextToImageComponents, TextToImageInfo } from "./text_to_image.ts";
export { LDMSuperResolutionPipeline } from "./super_resolution.ts";
export type { SuperResolutionComponents, SuperResolutionInfo } from "./super_resolution.ts";
export { loadPipeline } from "./load.ts";
export type { AnyPipeline } from "./load.ts";
export { SCHEDULER_NAME_LIST } from "./_checks.ts";
export type {
  BatchItemResult,
  BatchResult,
  ImageResult,
  Logger,
  PipelineLoadOptions,
  PreviewImages,
  RgbImage,
  RunOptions,
  RunTimings,
  SchedulerName,
  StepProgress,
  SuperResolutionOptions,
  SuperResolutionResult,
  TextToImageBatchItem,
  TextToImageBatchOptions,
  TextToImageOptions,
} from "./types.ts";

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
 * callbacks and an `AbortSignal`. The loops keep their overheads out of the steps: classifier-free guidance is one
 * batch-2 UNet call, the UNet's inputs are built once per run and rewritten in place, guidance is computed in the
 * UNet's output, previews do not wait for their consumer, and text embeddings (the empty prompt and recent prompts)
 * are cached per pipeline. Images come back as `[N, H, W, 3]` float32 in [0, 1]; `@ldm/core/image` encodes
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
export { DEFAULT_TEXT_CACHE_BYTES, DEFAULT_TEXT_CACHE_ENTRIES } from "./_text_cache.ts";
export type { TextEmbeddingCacheStats } from "./_text_cache.ts";
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
  TextEmbeddingCacheOptions,
  TextToImageBatchItem,
  TextToImageBatchOptions,
  TextToImageOptions,
} from "./types.ts";

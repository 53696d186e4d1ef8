/**
 * ONNX graphs of the Latent Diffusion networks, built in TypeScript from diffusers `config.json` files and
 * checkpoint weights (no Python, no exporter).
 *
 * - {@linkcode GraphBuilder}: a typed DSL over ONNX (default domain, opset 17) with lazily read, shape-checked
 *   weights, fp16 decided per op, and streaming serialisation (external data above 2 GB).
 * - Blocks ported from `diffusers/models`: {@linkcode resnetBlock2D}, {@linkcode attention},
 *   {@linkcode downsample2D}, {@linkcode upsample2D}, {@linkcode timestepProjection}, {@linkcode timestepEmbedding},
 *   {@linkcode unetMidBlock2D}, {@linkcode feedForward} and the layers they use.
 * - Graph builders: {@linkcode buildAutoencoderKLEncoder} / {@linkcode buildAutoencoderKLDecoder},
 *   {@linkcode buildVQModelEncoder} / {@linkcode buildVQModelDecoder}, {@linkcode buildLDMBertModel},
 *   {@linkcode buildUNet2DConditionModel} and {@linkcode buildUNet2DModel} (each with a `resolve…Config` that only
 *   validates a config).
 *
 * - Variants for inference speed, as builder options ({@linkcode GraphVariantOptions}): `optimize: { target }`
 *   emits the onnxruntime contrib operators that provider implements (`MultiHeadAttention`, `BiasGelu`,
 *   `BiasSplitGelu`, `SkipLayerNormalization`, `GroupNorm`; see {@linkcode CONTRIB_OP_PROVIDERS}) and sub-pixel
 *   upsampling; `fixedDims` fixes input sizes. Without them the builders emit the plain, portable reference graph.
 *   Measurements: bench/PERFORMANCE.md.
 * - Weight sources without a checkpoint: {@linkcode SyntheticWeights} and {@linkcode LazyZeroWeights} over the state
 *   dicts {@linkcode unet2DConditionParams}, {@linkcode unet2DParams} and {@linkcode vaeParameterSpec} enumerate.
 * - The real checkpoints' configurations, for work at real size without them: {@linkcode LDM_TEXT2IM_LARGE_256} and
 *   {@linkcode LDM_SUPER_RESOLUTION_4X_OPENIMAGES}.
 *
 * Graph inputs and outputs are float32 (int64 for token ids) in every precision, because onnxruntime-node cannot take
 * float16 tensors from Deno; run graphs through `loadOnnxModel` from `@ldm/core/onnx`.
 *
 * @example Convert the VAE decoder of a diffusers checkpoint
 * ```ts ignore
 * import { openWeights } from "@ldm/models/checkpoint";
 * import { buildAutoencoderKLDecoder } from "@ldm/models/onnx";
 * const config = JSON.parse(await Deno.readTextFile("vqvae/config.json"));
 * using weights = await openWeights("vqvae/diffusion_pytorch_model.safetensors");
 * await buildAutoencoderKLDecoder(config, weights, { dtype: "fp16" }).save("out/vqvae/decoder.onnx");
 * ```
 *
 * @module
 */
export { GraphBuilder, MS_DOMAIN } from "./builder.ts";
export type {
  Attributes,
  AttributeValue,
  Dim,
  ElementType,
  FloatType,
  GraphBuilderOptions,
  GraphSignature,
  GraphStats,
  GraphValueSpec,
  ModelDtype,
  OpOptions,
  SaveOptions,
  SaveResult,
  Value,
  WeightInfo,
  WeightOptions,
  WeightSource,
} from "./builder.ts";
export {
  activation,
  ACTIVATIONS,
  attention,
  conv2d,
  downsample2D,
  FEED_FORWARD_ACTIVATIONS,
  feedForward,
  gelu,
  geluTanh,
  groupNorm,
  groupNormActivation,
  layerNorm,
  linear,
  multiHeadAttention,
  resnetBlock2D,
  skipLayerNorm,
  timestepEmbedding,
  timestepFrequencies,
  timestepProjection,
  unetMidBlock2D,
  upsample2D,
} from "./blocks.ts";
export type {
  ActivationOptions,
  AttentionOptions,
  Conv2dOptions,
  Downsample2DOptions,
  FeedForwardOptions,
  GroupNormActivationOptions,
  GroupNormOptions,
  LayerNormOptions,
  LinearOptions,
  MultiHeadAttentionOptions,
  ResnetBlock2DOptions,
  SkipLayerNormResult,
  TimestepEmbeddingOptions,
  TimestepProjectionOptions,
  UNetMidBlock2DOptions,
  Upsample2DOptions,
} from "./blocks.ts";
export { buildAutoencoderKLDecoder, buildAutoencoderKLEncoder, resolveAutoencoderKLConfig } from "./autoencoder_kl.ts";
export type { AutoencoderGraphOptions, AutoencoderKLConfig } from "./autoencoder_kl.ts";
export { buildVQModelDecoder, buildVQModelEncoder, resolveVQModelConfig, vectorQuantize } from "./vq_model.ts";
export type { VQModelConfig } from "./vq_model.ts";
export { buildLDMBertModel, LDM_BERT_ACTIVATIONS, resolveLDMBertConfig } from "./ldm_bert.ts";
export type { LDMBertConfig, LDMBertGraphOptions } from "./ldm_bert.ts";
export { DECODER_BLOCK_TYPES, ENCODER_BLOCK_TYPES } from "./_vae.ts";
export type { VaeConfig } from "./_vae.ts";
export {
  buildUNet2DConditionModel,
  resolveUNet2DConditionConfig,
  UNET_2D_CONDITION_DOWN_BLOCKS,
  UNET_2D_CONDITION_MID_BLOCKS,
  UNET_2D_CONDITION_UP_BLOCKS,
} from "./unet_2d_condition.ts";
export type {
  BuildUNetOptions,
  UNet2DConditionConfig,
  UNet2DConditionDownBlock,
  UNet2DConditionMidBlock,
  UNet2DConditionUpBlock,
} from "./unet_2d_condition.ts";
export { buildUNet2DModel, resolveUNet2DConfig, UNET_2D_DOWN_BLOCKS, UNET_2D_UP_BLOCKS } from "./unet_2d.ts";
export type { UNet2DConfig, UNet2DDownBlock, UNet2DUpBlock } from "./unet_2d.ts";
export { basicTransformerBlock, transformer2D } from "./transformer_2d.ts";
export type { BasicTransformerBlockOptions, Transformer2DOptions } from "./transformer_2d.ts";
export {
  checkFixedDims,
  CONTRIB_OP_PROVIDERS,
  CUDA_BIAS_SPLIT_GELU_SIZES,
  isPlain,
  OPTIMIZATION_TARGETS,
  parseFixedSize,
  PLAIN_GRAPH,
  resolveOptimizations,
} from "./optimize.ts";
export type {
  FusionChoice,
  GraphOptimizations,
  GraphVariantOptions,
  OptimizationTarget,
  OptimizeOptions,
} from "./optimize.ts";
export {
  countParams,
  LazyZeroWeights,
  SyntheticWeights,
  transformer2DParams,
  unet2DConditionParams,
  unet2DParams,
  vaeParameterSpec,
} from "./parameters.ts";
export type { ParamSpec, TransformerParamsOptions } from "./parameters.ts";
export { LDM_SUPER_RESOLUTION_4X_OPENIMAGES, LDM_TEXT2IM_LARGE_256 } from "./real_configs.ts";

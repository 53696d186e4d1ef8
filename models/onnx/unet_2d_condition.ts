/**
 * The text-to-image UNet as an ONNX graph: diffusers' `UNet2DConditionModel`
 * (`src/diffusers/models/unets/unet_2d_condition.py`, commit 58eb52c0), built from its `config.json` and weights.
 *
 * Graph interface (fixed; the text-to-image pipeline uses it): inputs `sample` float32 `[batch, in_channels, height,
 * width]`, `timestep` float32 `[batch]` (float because LMS/Euler use fractional timesteps; a `[1]` timestep is
 * broadcast to the batch as diffusers does) and `encoder_hidden_states` float32 `[batch, sequence, cross_attention_dim]`;
 * output `out_sample` float32 `[batch, out_channels, height, width]`. Batch, sequence length, height and width are
 * dynamic; like diffusers, sizes that are not multiples of 2^(number of upsamplers) are handled by resizing each
 * upsampler's output to the next skip connection's size.
 *
 * @module
 */
import type { GraphVariantOptions } from "./optimize.ts";
import { GraphBuilder, type ModelDtype, type Value, type WeightSource } from "./builder.ts";
import {
  activation,
  ACTIVATIONS,
  conv2d,
  groupNormActivation,
  resnetBlock2D,
  timestepEmbedding,
  timestepProjection,
} from "./blocks.ts";
import { checkGroups, ConfigReader, readSampleSize } from "./_unet_config.ts";
import {
  type BlockAttention,
  type CrossAttnSettings,
  downBlock,
  exactDoubling,
  midBlockCrossAttn,
  type ResnetSettings,
  upBlock,
} from "./_unet_blocks.ts";

/** Down block types {@linkcode buildUNet2DConditionModel} supports. */
export const UNET_2D_CONDITION_DOWN_BLOCKS = ["CrossAttnDownBlock2D", "DownBlock2D"] as const;
/** Up block types {@linkcode buildUNet2DConditionModel} supports. */
export const UNET_2D_CONDITION_UP_BLOCKS = ["CrossAttnUpBlock2D", "UpBlock2D"] as const;
/** Mid block types {@linkcode buildUNet2DConditionModel} supports (`null`: no mid block). */
export const UNET_2D_CONDITION_MID_BLOCKS = ["UNetMidBlock2DCrossAttn", "UNetMidBlock2D", null] as const;

/** A supported down block type. */
export type UNet2DConditionDownBlock = typeof UNET_2D_CONDITION_DOWN_BLOCKS[number];
/** A supported up block type. */
export type UNet2DConditionUpBlock = typeof UNET_2D_CONDITION_UP_BLOCKS[number];
/** A supported mid block type. */
export type UNet2DConditionMidBlock = typeof UNET_2D_CONDITION_MID_BLOCKS[number];

/**
 * A validated `UNet2DConditionModel` config with diffusers' defaults applied and per-block options expanded to one
 * entry per down block (index `i` of the up blocks uses entry `n - 1 - i`, as diffusers reverses them).
 */
export interface UNet2DConditionConfig {
  /** Marks a resolved config. */
  readonly className: "UNet2DConditionModel";
  /** `sample_size` (not used by the graph, whose sizes are dynamic). */
  readonly sampleSize: number | readonly [number, number] | null;
  /** `in_channels`: channels of `sample`. */
  readonly inChannels: number;
  /** `out_channels`: channels of `out_sample`. */
  readonly outChannels: number;
  /** `center_input_sample`: map the input to `2·x − 1` first. */
  readonly centerInputSample: boolean;
  /** `flip_sin_to_cos`: timestep embedding ordered `[cos, sin]`. */
  readonly flipSinToCos: boolean;
  /** `freq_shift`: `downscale_freq_shift` of the timestep embedding. */
  readonly freqShift: number;
  /** `down_block_types`. */
  readonly downBlockTypes: readonly UNet2DConditionDownBlock[];
  /** `mid_block_type`. */
  readonly midBlockType: UNet2DConditionMidBlock;
  /** `up_block_types`. */
  readonly upBlockTypes: readonly UNet2DConditionUpBlock[];
  /** Per down block. */
  readonly onlyCrossAttention: readonly boolean[];
  /** `block_out_channels`: output channels of each down block. */
  readonly blockOutChannels: readonly number[];
  /** Per down block (up blocks have one more resnet). */
  readonly layersPerBlock: readonly number[];
  /** `downsample_padding` of the stride-2 convolutions (0: pad right/bottom by one). */
  readonly downsamplePadding: number;
  /** `mid_block_scale_factor`: the mid block resnets' `output_scale_factor`. */
  readonly midBlockScaleFactor: number;
  /** `act_fn` of the resnets and the time embedding. */
  readonly actFn: string;
  /** `norm_num_groups` of every GroupNorm. */
  readonly normNumGroups: number;
  /** `norm_eps` of the resnets' and `conv_norm_out`'s GroupNorms. */
  readonly normEps: number;
  /** Per down block. */
  readonly crossAttentionDim: readonly number[];
  /** Per down block. */
  readonly transformerLayersPerBlock: readonly number[];
  /**
   * Heads per down block: `num_attention_heads or attention_head_dim`. In UNet2DConditionModel `attention_head_dim`
   * historically means the number of heads (diffusers issue 2011); the head size is `channels // heads`.
   */
  readonly numAttentionHeads: readonly number[];
  /** `use_linear_projection`: Linear instead of 1×1 conv `proj_in`/`proj_out`. */
  readonly useLinearProjection: boolean;
  /** `upcast_attention`: attention scores in float32 in fp16 graphs. */
  readonly upcastAttention: boolean;
  /** Width of the time embedding: `time_embedding_dim` or `4 · block_out_channels[0]`. */
  readonly timeEmbedDim: number;
  /** `time_embedding_act_fn`, applied once to the time embedding. */
  readonly timeEmbeddingActFn: string | null;
  /** `timestep_post_act` of TimestepEmbedding. */
  readonly timestepPostAct: string | null;
  /** `conv_in_kernel`. */
  readonly convInKernel: number;
  /** `conv_out_kernel`. */
  readonly convOutKernel: number;
  /** Keys of the input config this builder does not know (diffusers ignores unknown keys too). */
  readonly ignoredKeys: readonly string[];
}

const CLS = "UNet2DConditionModel" as const;

/**
 * Validates a diffusers `UNet2DConditionModel` `config.json` and applies diffusers' `__init__` defaults.
 *
 * Supported: the block types in {@linkcode UNET_2D_CONDITION_DOWN_BLOCKS}, {@linkcode UNET_2D_CONDITION_UP_BLOCKS} and
 * {@linkcode UNET_2D_CONDITION_MID_BLOCKS}; positional time embedding; `resnet_time_scale_shift: "default"`; integer
 * or per-block `attention_head_dim`, `cross_attention_dim`, `layers_per_block`, `transformer_layers_per_block` and
 * `only_cross_attention`; `use_linear_projection`, `upcast_attention`, `center_input_sample`, `time_embedding_dim`,
 * `time_embedding_act_fn`, `timestep_post_act`, odd `conv_in_kernel`/`conv_out_kernel`. Refused with a message naming
 * the key: class/addition embeddings, `encoder_hid_dim`, `time_cond_proj_dim`, `dual_cross_attention`, GLIGEN
 * `attention_type`, Fourier time embedding, `scale_shift`, `norm_num_groups: null`, per-layer
 * `transformer_layers_per_block` lists and a set `num_attention_heads` (which diffusers refuses too).
 *
 * @throws {TypeError} on a value of the wrong kind; {@linkcode RangeError} on an unsupported or inconsistent value.
 */
export function resolveUNet2DConditionConfig(config: unknown): UNet2DConditionConfig {
  const r = new ConfigReader(config, CLS);
  r.checkClassName(CLS);
  const sampleSize = readSampleSize(r);
  const inChannels = r.integer("in_channels", 4);
  const outChannels = r.integer("out_channels", 4);
  const centerInputSample = r.boolean("center_input_sample", false);
  const flipSinToCos = r.boolean("flip_sin_to_cos", true);
  const freqShift = r.number("freq_shift", 0);
  const downBlockTypes = r.stringList("down_block_types", UNET_2D_CONDITION_DOWN_BLOCKS, [
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "DownBlock2D",
  ]);
  const upBlockTypes = r.stringList("up_block_types", UNET_2D_CONDITION_UP_BLOCKS, [
    "UpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
  ]);
  const midBlockType = r.oneOf("mid_block_type", UNET_2D_CONDITION_MID_BLOCKS, "UNetMidBlock2DCrossAttn");
  const n = downBlockTypes.length;
  if (upBlockTypes.length !== n) {
    r.fail("up_block_types", `a list as long as down_block_types (${n})`, upBlockTypes);
  }
  const blockOutChannels = r.integerList("block_out_channels", [320, 640, 1280, 1280]);
  if (blockOutChannels.length !== n) {
    r.fail("block_out_channels", `a list as long as down_block_types (${n})`, blockOutChannels);
  }
  const layersPerBlock = r.perBlockInteger("layers_per_block", n, 2);
  const onlyCrossAttention = r.perBlockBoolean("only_cross_attention", n, false);
  const downsamplePadding = r.integer("downsample_padding", 1, 0);
  const midBlockScaleFactor = r.number("mid_block_scale_factor", 1, { min: 0, exclusiveMin: true });
  r.number("dropout", 0); // inference graph: dropout is the identity
  const actFn = r.oneOf("act_fn", ACTIVATIONS, "silu");
  const normNumGroups = r.get("norm_num_groups") === null
    ? r.fail(
      "norm_num_groups",
      "an integer (null, which drops conv_norm_out, is not supported: diffusers' resnets need groups too)",
      null,
    )
    : r.integer("norm_num_groups", 32);
  const normEps = r.number("norm_eps", 1e-5, { min: 0, exclusiveMin: true });
  const crossAttentionDim = r.perBlockInteger("cross_attention_dim", n, 1280);
  const transformerLayersPerBlock = r.perBlockInteger("transformer_layers_per_block", n, 1);
  r.refuseUnless("reverse_transformer_layers_per_block", [], "per-layer transformer depths are not supported");
  if (r.isSet("num_attention_heads")) {
    // unet_2d_condition.py raises here too (the attention_head_dim naming issue, diffusers #2011).
    r.fail(
      "num_attention_heads",
      "null (diffusers refuses it; set attention_head_dim to the head count)",
      r.get("num_attention_heads"),
    );
  }
  const numAttentionHeads = r.perBlockInteger("attention_head_dim", n, 8);
  r.refuseUnless("dual_cross_attention", [false], "DualTransformer2DModel is not supported");
  const useLinearProjection = r.boolean("use_linear_projection", false);
  r.refuseUnless("class_embed_type", [], "class embeddings are not supported");
  r.refuseUnless("num_class_embeds", [], "class embeddings are not supported");
  r.refuseUnless("class_embeddings_concat", [false], "class embeddings are not supported");
  r.refuseUnless("projection_class_embeddings_input_dim", [], "class embeddings are not supported");
  r.refuseUnless("addition_embed_type", [], "addition embeddings are not supported");
  r.refuseUnless("addition_time_embed_dim", [], "addition embeddings are not supported");
  r.refuseUnless("encoder_hid_dim", [], "encoder_hid_proj is not supported");
  r.refuseUnless("encoder_hid_dim_type", [], "encoder_hid_proj is not supported");
  r.refuseUnless("time_cond_proj_dim", [], "timestep_cond is not a graph input");
  const upcastAttention = r.boolean("upcast_attention", false);
  r.oneOf("resnet_time_scale_shift", ["default"], "default", '"scale_shift" and "spatial" are not supported');
  r.oneOf("time_embedding_type", ["positional"], "positional", '"fourier" is not supported');
  const timeEmbedDim = r.nullableInteger("time_embedding_dim", null) ?? 4 * blockOutChannels[0]!;
  const timeEmbeddingActFn = r.oneOf("time_embedding_act_fn", [null, ...ACTIVATIONS], null);
  const timestepPostAct = r.oneOf("timestep_post_act", [null, ...ACTIVATIONS], null);
  const convInKernel = r.integer("conv_in_kernel", 3);
  const convOutKernel = r.integer("conv_out_kernel", 3);
  if (convInKernel % 2 === 0) r.fail("conv_in_kernel", "an odd integer (same-size padding)", convInKernel);
  if (convOutKernel % 2 === 0) r.fail("conv_out_kernel", "an odd integer (same-size padding)", convOutKernel);
  r.oneOf("attention_type", ["default"], "default", "GLIGEN attention is not supported");
  // Only SimpleCrossAttn/ResnetDownsample blocks read these; diffusers ignores them for the supported block types.
  r.get("resnet_skip_time_act");
  r.get("resnet_out_scale_factor");
  r.get("cross_attention_norm");
  r.get("mid_block_only_cross_attention");
  r.get("addition_embed_type_num_heads");

  for (let i = 0; i < n; i++) {
    const c = blockOutChannels[i]!;
    const heads = numAttentionHeads[i]!;
    const needsHeads = downBlockTypes[i] === "CrossAttnDownBlock2D" ||
      upBlockTypes[n - 1 - i] === "CrossAttnUpBlock2D" || (i === n - 1 && midBlockType === "UNetMidBlock2DCrossAttn");
    if (needsHeads && heads > c) {
      r.fail(`attention_head_dim[${i}]`, `at most block_out_channels[${i}] (${c}): it is the number of heads`, heads);
    }
  }
  checkGroups(r, "norm_num_groups", normNumGroups, blockOutChannels);
  if (new Set(crossAttentionDim).size > 1) {
    // One encoder_hidden_states input feeds every transformer, so they must all take the same width.
    r.fail("cross_attention_dim", "the same for every block (one encoder_hidden_states input)", crossAttentionDim);
  }
  return Object.freeze({
    className: CLS,
    sampleSize,
    inChannels,
    outChannels,
    centerInputSample,
    flipSinToCos,
    freqShift,
    downBlockTypes: Object.freeze(downBlockTypes),
    midBlockType,
    upBlockTypes: Object.freeze(upBlockTypes),
    onlyCrossAttention: Object.freeze(onlyCrossAttention),
    blockOutChannels: Object.freeze(blockOutChannels),
    layersPerBlock: Object.freeze(layersPerBlock),
    downsamplePadding,
    midBlockScaleFactor,
    actFn,
    normNumGroups,
    normEps,
    crossAttentionDim: Object.freeze(crossAttentionDim),
    transformerLayersPerBlock: Object.freeze(transformerLayersPerBlock),
    numAttentionHeads: Object.freeze(numAttentionHeads),
    useLinearProjection,
    upcastAttention,
    timeEmbedDim,
    timeEmbeddingActFn,
    timestepPostAct,
    convInKernel,
    convOutKernel,
    ignoredKeys: Object.freeze(r.unusedKeys()),
  });
}

/** Options of {@linkcode buildUNet2DConditionModel}. */
export interface BuildUNetOptions extends GraphVariantOptions {
  /** Weight and compute precision; inputs and outputs stay float32. @default "fp32" */
  dtype?: ModelDtype;
  /** Graph name. @default "unet" */
  name?: string;
}

/**
 * Builds `UNet2DConditionModel.forward(sample, timestep, encoder_hidden_states).sample` as an ONNX graph whose
 * weights are read lazily from `weights` (diffusers state-dict names) when the graph is saved.
 *
 * Steps, as in diffusers: 0. `center_input_sample`; 1. sinusoidal `time_proj` (float32) → `time_embedding`
 * (→ `time_embedding_act_fn`); 2. `conv_in`; 3. down blocks, collecting skips; 4. mid block; 5. up blocks, consuming
 * skips from the end; 6. `conv_norm_out` → act → `conv_out`.
 *
 * @example Convert the text-to-image UNet of a diffusers checkpoint to fp16
 * ```ts ignore
 * import { openWeights } from "@ldm/models/checkpoint";
 * import { buildUNet2DConditionModel } from "@ldm/models/onnx";
 * const config = JSON.parse(await Deno.readTextFile("unet/config.json"));
 * using weights = await openWeights("unet/diffusion_pytorch_model.safetensors");
 * await buildUNet2DConditionModel(config, weights, { dtype: "fp16" }).save("out/unet/model.onnx");
 * ```
 *
 * @param config the parsed `unet/config.json`, or a config resolved by {@linkcode resolveUNet2DConditionConfig}.
 * @throws {TypeError | RangeError} on an unsupported config (see {@linkcode resolveUNet2DConditionConfig});
 *   {@linkcode Error} naming the weight when one is missing or has the wrong shape.
 */
export function buildUNet2DConditionModel(
  config: unknown,
  weights: WeightSource,
  options: BuildUNetOptions = {},
): GraphBuilder {
  const c = isResolved(config) ? config : resolveUNet2DConditionConfig(config);
  const { dtype = "fp32", name = "unet" } = options;
  const n = c.blockOutChannels.length;
  const c0 = c.blockOutChannels[0]!;
  const b = new GraphBuilder({
    name,
    weights,
    dtype,
    docString: "diffusers UNet2DConditionModel: (sample, timestep, encoder_hidden_states) -> out_sample",
    metadata: {
      diffusers_class: CLS,
      config: JSON.stringify(c),
    },
    optimize: options.optimize,
    fixedDims: options.fixedDims,
  });
  const sampleIn = b.input("sample", "float32", ["batch", c.inChannels, "height", "width"]);
  const timestep = b.input("timestep", "float32", ["batch"]);
  const contextIn = b.input("encoder_hidden_states", "float32", ["batch", "sequence", c.crossAttentionDim[0]!]);
  const context = b.toCompute(contextIn);

  // 0. center input
  let sample = b.toCompute(sampleIn);
  if (c.centerInputSample) {
    sample = b.op("Sub", [b.op("Mul", [sample, b.scalar(2)]), b.scalar(1)], {}, { name: "center_input_sample" });
  }

  // 1. time: broadcast the timestep to the batch (`timesteps.expand(sample.shape[0])`), float32 sinusoids, MLP.
  const temb = b.scope("time", () => {
    const batch = b.op("Slice", [b.shape(sampleIn), b.constInt64([0]), b.constInt64([1])]);
    const t = b.op("Expand", [timestep, batch]);
    const tProj = timestepProjection(b, t, {
      numChannels: c0,
      flipSinToCos: c.flipSinToCos,
      downscaleFreqShift: c.freqShift,
    });
    let emb = timestepEmbedding(b, b.toCompute(tProj), {
      inChannels: c0,
      timeEmbedDim: c.timeEmbedDim,
      actFn: c.actFn,
      postActFn: c.timestepPostAct,
    });
    if (c.timeEmbeddingActFn !== null) emb = activation(b, emb, { fn: c.timeEmbeddingActFn });
    return emb;
  });
  const resnet: ResnetSettings = {
    temb,
    tembChannels: c.timeEmbedDim,
    eps: c.normEps,
    groups: c.normNumGroups,
    actFn: c.actFn,
    timeScaleShift: "default",
  };
  const crossSettings = (i: number, onlyCrossAttention: boolean): CrossAttnSettings => ({
    encoderHiddenStates: context,
    crossAttentionDim: c.crossAttentionDim[i]!,
    numAttentionHeads: c.numAttentionHeads[i]!,
    transformerLayers: c.transformerLayersPerBlock[i]!,
    useLinearProjection: c.useLinearProjection,
    onlyCrossAttention,
    upcastAttention: c.upcastAttention,
  });
  const cross = (i: number, onlyCrossAttention: boolean): BlockAttention => ({
    kind: "cross",
    ...crossSettings(i, onlyCrossAttention),
  });

  // 2. pre-process
  const pad = (c.convInKernel - 1) / 2;
  let h = conv2d(b, sample, {
    name: "conv_in",
    inChannels: c.inChannels,
    outChannels: c0,
    kernelSize: c.convInKernel,
    padding: pad,
  });

  // 3. down
  const skips: Value[] = [h];
  let outC = c0;
  for (let i = 0; i < n; i++) {
    const inC = outC;
    outC = c.blockOutChannels[i]!;
    const out = downBlock(b, h, {
      name: `down_blocks.${i}`,
      inChannels: inC,
      outChannels: outC,
      numLayers: c.layersPerBlock[i]!,
      addDownsample: i < n - 1,
      downsamplePadding: c.downsamplePadding,
      resnet,
      attention: c.downBlockTypes[i] === "CrossAttnDownBlock2D" ? cross(i, c.onlyCrossAttention[i]!) : { kind: "none" },
    });
    h = out.hidden;
    skips.push(...out.skips);
  }

  // 4. mid
  const last = c.blockOutChannels[n - 1]!;
  if (c.midBlockType === "UNetMidBlock2DCrossAttn") {
    // UNetMidBlock2DCrossAttn takes no only_cross_attention: its transformer always self-attends first.
    h = midBlockCrossAttn(b, h, {
      channels: last,
      outputScaleFactor: c.midBlockScaleFactor,
      resnet,
      attention: crossSettings(n - 1, false),
    });
  } else if (c.midBlockType === "UNetMidBlock2D") {
    // get_mid_block builds UNetMidBlock2D with num_layers=0 and add_attention=False: a single resnet.
    h = resnetBlock2D(b, h, {
      name: "mid_block.resnets.0",
      inChannels: last,
      outChannels: last,
      temb,
      tembChannels: c.timeEmbedDim,
      eps: c.normEps,
      groups: c.normNumGroups,
      nonLinearity: c.actFn,
      outputScaleFactor: c.midBlockScaleFactor,
    });
  }

  // 5. up
  const exact = exactDoubling(b, n, c.downsamplePadding);
  const reversed = [...c.blockOutChannels].reverse();
  outC = reversed[0]!;
  for (let i = 0; i < n; i++) {
    const prevOutC = outC;
    outC = reversed[i]!;
    const inC = reversed[Math.min(i + 1, n - 1)]!;
    const d = n - 1 - i; // per-block options are reversed for the up path
    const numLayers = c.layersPerBlock[d]! + 1;
    const addUpsample = i < n - 1;
    h = upBlock(b, h, skips, {
      name: `up_blocks.${i}`,
      inChannels: inC,
      prevOutputChannels: prevOutC,
      outChannels: outC,
      numLayers,
      addUpsample,
      // diffusers forwards `upsample_size = down_block_res_samples[-1].shape[2:]` when the input is not a multiple of
      // the upsampling factor; resizing to the next skip's size always is the same thing for multiples.
      ...(addUpsample && !exact[i] ? { upsampleSizeOf: skips[skips.length - numLayers - 1]! } : {}),
      resnet,
      attention: c.upBlockTypes[i] === "CrossAttnUpBlock2D" ? cross(d, c.onlyCrossAttention[d]!) : { kind: "none" },
    });
  }

  // 6. post-process
  h = groupNormActivation(b, h, {
    name: "conv_norm_out",
    channels: c0,
    groups: c.normNumGroups,
    eps: c.normEps,
    fn: c.actFn,
  });
  h = conv2d(b, h, {
    name: "conv_out",
    inChannels: c0,
    outChannels: c.outChannels,
    kernelSize: c.convOutKernel,
    padding: (c.convOutKernel - 1) / 2,
  });
  b.output(h, "out_sample", ["batch", c.outChannels, "height", "width"]);
  return b;
}

function isResolved(config: unknown): config is UNet2DConditionConfig {
  return typeof config === "object" && config !== null && (config as { className?: unknown }).className === CLS &&
    Object.isFrozen(config);
}

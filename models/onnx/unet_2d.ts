/**
 * The super-resolution UNet as an ONNX graph: diffusers' `UNet2DModel` (`src/diffusers/models/unets/unet_2d.py`,
 * commit 58eb52c0), built from its `config.json` and weights.
 *
 * Graph interface (fixed; the super-resolution pipeline uses it): inputs `sample` float32 `[batch, in_channels, height,
 * width]` (for LDM super-resolution: latents ‖ low-resolution image, 6 channels) and `timestep` float32 `[batch]` (a
 * `[1]` timestep is broadcast to the batch); output `out_sample` float32 `[batch, out_channels, height, width]`. Batch,
 * height and width are dynamic. Sizes that are not multiples of 2^(number of downsamplings) get each upsampler's
 * output resized to the next skip connection's size, as UNet2DConditionModel does (diffusers' UNet2DModel fails on
 * them).
 *
 * @module
 */
import { GraphBuilder, type Value, type WeightSource } from "./builder.ts";
import {
  ACTIVATIONS,
  conv2d,
  groupNormActivation,
  timestepEmbedding,
  timestepProjection,
  unetMidBlock2D,
} from "./blocks.ts";
import { checkGroups, ConfigReader, readSampleSize } from "./_unet_config.ts";
import { type BlockAttention, downBlock, exactDoubling, type ResnetSettings, upBlock } from "./_unet_blocks.ts";
import type { BuildUNetOptions } from "./unet_2d_condition.ts";

/** Down block types {@linkcode buildUNet2DModel} supports. */
export const UNET_2D_DOWN_BLOCKS = ["DownBlock2D", "AttnDownBlock2D"] as const;
/** Up block types {@linkcode buildUNet2DModel} supports. */
export const UNET_2D_UP_BLOCKS = ["AttnUpBlock2D", "UpBlock2D"] as const;

/** A supported down block type. */
export type UNet2DDownBlock = typeof UNET_2D_DOWN_BLOCKS[number];
/** A supported up block type. */
export type UNet2DUpBlock = typeof UNET_2D_UP_BLOCKS[number];

/** A validated `UNet2DModel` config with diffusers' defaults applied. */
export interface UNet2DConfig {
  /** Marks a resolved config. */
  readonly className: "UNet2DModel";
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
  /** Width of the time embedding: `time_embedding_dim` or `4 · block_out_channels[0]`. */
  readonly timeEmbedDim: number;
  /** `down_block_types`. */
  readonly downBlockTypes: readonly UNet2DDownBlock[];
  /** `"UNetMidBlock2D"`, or `null` for no mid block. */
  readonly midBlockType: "UNetMidBlock2D" | null;
  /** `up_block_types`. */
  readonly upBlockTypes: readonly UNet2DUpBlock[];
  /** `block_out_channels`: output channels of each down block. */
  readonly blockOutChannels: readonly number[];
  /** `layers_per_block`: resnets per down block (up blocks have one more). */
  readonly layersPerBlock: number;
  /** `mid_block_scale_factor`: the mid block's `output_scale_factor` (resnets and attention). */
  readonly midBlockScaleFactor: number;
  /** `downsample_padding` of the stride-2 convolutions (0: pad right/bottom by one). */
  readonly downsamplePadding: number;
  /** Activation of the resnets (the time embedding and `conv_act` are always SiLU in UNet2DModel). */
  readonly actFn: string;
  /**
   * Channels per attention head (in UNet2DModel `attention_head_dim` really is the head size); `null` means one head
   * spanning all channels.
   */
  readonly attentionHeadDim: number | null;
  /** `norm_num_groups` of the resnets, the block attentions and `conv_norm_out`. */
  readonly normNumGroups: number;
  /** Groups of the mid block's attention GroupNorm (`null`: `norm_num_groups`). */
  readonly attnNormNumGroups: number | null;
  /** `norm_eps` of every GroupNorm. */
  readonly normEps: number;
  /** Whether the mid block has its attention layer. */
  readonly addAttention: boolean;
  /** Keys of the input config this builder does not know (diffusers ignores unknown keys too). */
  readonly ignoredKeys: readonly string[];
}

const CLS = "UNet2DModel" as const;

/**
 * Validates a diffusers `UNet2DModel` `config.json` and applies diffusers' `__init__` defaults.
 *
 * Supported: the block types in {@linkcode UNET_2D_DOWN_BLOCKS} and {@linkcode UNET_2D_UP_BLOCKS}, `UNetMidBlock2D` or
 * no mid block, positional time embedding, `resnet_time_scale_shift: "default"`, `downsample_type`/`upsample_type`
 * `"conv"`, `attention_head_dim` (head size) or `null`, `attn_norm_num_groups`, `add_attention`, `time_embedding_dim`,
 * `center_input_sample`. Refused with a message naming the key: Fourier/learned time embeddings, class embeddings,
 * `scale_shift`, resnet down/upsamplers.
 *
 * @throws {TypeError} on a value of the wrong kind; {@linkcode RangeError} on an unsupported or inconsistent value.
 */
export function resolveUNet2DConfig(config: unknown): UNet2DConfig {
  const r = new ConfigReader(config, CLS);
  r.checkClassName(CLS);
  const sampleSize = readSampleSize(r);
  const inChannels = r.integer("in_channels", 3);
  const outChannels = r.integer("out_channels", 3);
  const centerInputSample = r.boolean("center_input_sample", false);
  r.oneOf("time_embedding_type", ["positional"], "positional", '"fourier" and "learned" are not supported');
  r.get("num_train_timesteps"); // only used by the "learned" embedding
  const freqShift = r.number("freq_shift", 0);
  const flipSinToCos = r.boolean("flip_sin_to_cos", true);
  const downBlockTypes = r.stringList("down_block_types", UNET_2D_DOWN_BLOCKS, [
    "DownBlock2D",
    "AttnDownBlock2D",
    "AttnDownBlock2D",
    "AttnDownBlock2D",
  ]);
  const midBlockType = r.oneOf("mid_block_type", ["UNetMidBlock2D", null], "UNetMidBlock2D");
  const upBlockTypes = r.stringList("up_block_types", UNET_2D_UP_BLOCKS, [
    "AttnUpBlock2D",
    "AttnUpBlock2D",
    "AttnUpBlock2D",
    "UpBlock2D",
  ]);
  const n = downBlockTypes.length;
  if (upBlockTypes.length !== n) r.fail("up_block_types", `a list as long as down_block_types (${n})`, upBlockTypes);
  const blockOutChannels = r.integerList("block_out_channels", [224, 448, 672, 896]);
  if (blockOutChannels.length !== n) {
    r.fail("block_out_channels", `a list as long as down_block_types (${n})`, blockOutChannels);
  }
  const timeEmbedDim = r.nullableInteger("time_embedding_dim", null) ?? 4 * blockOutChannels[0]!;
  const layersPerBlock = r.integer("layers_per_block", 2);
  const midBlockScaleFactor = r.number("mid_block_scale_factor", 1, { min: 0, exclusiveMin: true });
  const downsamplePadding = r.integer("downsample_padding", 1, 0);
  r.oneOf("downsample_type", ["conv"], "conv", '"resnet" downsamplers are not supported');
  r.oneOf("upsample_type", ["conv"], "conv", '"resnet" upsamplers are not supported');
  r.number("dropout", 0); // inference graph: dropout is the identity
  const actFn = r.oneOf("act_fn", ACTIVATIONS, "silu");
  const attentionHeadDim = r.nullableInteger("attention_head_dim", 8);
  const normNumGroups = r.integer("norm_num_groups", 32);
  const attnNormNumGroups = r.nullableInteger("attn_norm_num_groups", null);
  const normEps = r.number("norm_eps", 1e-5, { min: 0, exclusiveMin: true });
  r.oneOf("resnet_time_scale_shift", ["default"], "default", '"scale_shift" and "spatial" are not supported');
  const addAttention = r.boolean("add_attention", true);
  r.refuseUnless("class_embed_type", [], "class embeddings are not supported");
  r.refuseUnless("num_class_embeds", [], "class embeddings are not supported");

  checkGroups(r, "norm_num_groups", normNumGroups, blockOutChannels);
  if (attnNormNumGroups !== null) checkGroups(r, "attn_norm_num_groups", attnNormNumGroups, [blockOutChannels.at(-1)!]);
  if (attentionHeadDim !== null) {
    for (let i = 0; i < n; i++) {
      const c = blockOutChannels[i]!;
      const attn = downBlockTypes[i] === "AttnDownBlock2D" || upBlockTypes[n - 1 - i] === "AttnUpBlock2D" ||
        (i === n - 1 && midBlockType !== null && addAttention);
      // heads = channels // attention_head_dim (attention_processor.py); a remainder only narrows to_q/to_k/to_v.
      if (attn && attentionHeadDim > c) {
        r.fail(
          "attention_head_dim",
          `at most block_out_channels[${i}] (${c}): it is the size of one head`,
          attentionHeadDim,
        );
      }
    }
  }
  return Object.freeze({
    className: CLS,
    sampleSize,
    inChannels,
    outChannels,
    centerInputSample,
    flipSinToCos,
    freqShift,
    timeEmbedDim,
    downBlockTypes: Object.freeze(downBlockTypes),
    midBlockType,
    upBlockTypes: Object.freeze(upBlockTypes),
    blockOutChannels: Object.freeze(blockOutChannels),
    layersPerBlock,
    midBlockScaleFactor,
    downsamplePadding,
    actFn,
    attentionHeadDim,
    normNumGroups,
    attnNormNumGroups,
    normEps,
    addAttention,
    ignoredKeys: Object.freeze(r.unusedKeys()),
  });
}

/**
 * Builds `UNet2DModel.forward(sample, timestep).sample` as an ONNX graph whose weights are read lazily from
 * `weights` (diffusers state-dict names; the deprecated attention names `query`/`key`/`value`/`proj_attn` of old
 * checkpoints are accepted) when the graph is saved.
 *
 * Steps, as in diffusers: `center_input_sample`; sinusoidal `time_proj` (float32) → `time_embedding` (SiLU);
 * `conv_in`; down blocks collecting skips; `UNetMidBlock2D`; up blocks consuming skips from the end;
 * `conv_norm_out` → SiLU → `conv_out`.
 *
 * @example Convert the super-resolution UNet of a diffusers checkpoint
 * ```ts ignore
 * import { openWeights } from "@ldm/models/checkpoint";
 * import { buildUNet2DModel } from "@ldm/models/onnx";
 * const config = JSON.parse(await Deno.readTextFile("unet/config.json"));
 * using weights = await openWeights("unet/diffusion_pytorch_model.safetensors");
 * await buildUNet2DModel(config, weights).save("out/unet/model.onnx");
 * ```
 *
 * @param config the parsed `unet/config.json`, or a config resolved by {@linkcode resolveUNet2DConfig}.
 * @throws {TypeError | RangeError} on an unsupported config (see {@linkcode resolveUNet2DConfig});
 *   {@linkcode Error} naming the weight when one is missing or has the wrong shape.
 */
export function buildUNet2DModel(config: unknown, weights: WeightSource, options: BuildUNetOptions = {}): GraphBuilder {
  const c = isResolved(config) ? config : resolveUNet2DConfig(config);
  const { dtype = "fp32", name = "unet" } = options;
  const n = c.blockOutChannels.length;
  const c0 = c.blockOutChannels[0]!;
  const b = new GraphBuilder({
    name,
    weights,
    dtype,
    docString: "diffusers UNet2DModel: (sample, timestep) -> out_sample",
    metadata: { diffusers_class: CLS, config: JSON.stringify(c) },
    optimize: options.optimize,
    fixedDims: options.fixedDims,
  });
  const sampleIn = b.input("sample", "float32", ["batch", c.inChannels, "height", "width"]);
  const timestep = b.input("timestep", "float32", ["batch"]);

  let sample = b.toCompute(sampleIn);
  if (c.centerInputSample) {
    sample = b.op("Sub", [b.op("Mul", [sample, b.scalar(2)]), b.scalar(1)], {}, { name: "center_input_sample" });
  }

  // time: `timesteps * torch.ones(batch)` broadcasts a [1] timestep; sinusoids in float32; TimestepEmbedding with its
  // default SiLU (UNet2DModel does not pass act_fn to it).
  const temb = b.scope("time", () => {
    const batch = b.op("Slice", [b.shape(sampleIn), b.constInt64([0]), b.constInt64([1])]);
    const t = b.op("Expand", [timestep, batch]);
    const tProj = timestepProjection(b, t, {
      numChannels: c0,
      flipSinToCos: c.flipSinToCos,
      downscaleFreqShift: c.freqShift,
    });
    return timestepEmbedding(b, b.toCompute(tProj), { inChannels: c0, timeEmbedDim: c.timeEmbedDim, actFn: "silu" });
  });
  const resnet: ResnetSettings = {
    temb,
    tembChannels: c.timeEmbedDim,
    eps: c.normEps,
    groups: c.normNumGroups,
    actFn: c.actFn,
    timeScaleShift: "default",
  };
  // get_down_block/get_up_block get `attention_head_dim if not None else output_channel`.
  const spatial = (channels: number): BlockAttention => ({ kind: "spatial", headDim: c.attentionHeadDim ?? channels });

  let h = conv2d(b, sample, { name: "conv_in", inChannels: c.inChannels, outChannels: c0, kernelSize: 3, padding: 1 });

  const skips: Value[] = [h];
  let outC = c0;
  for (let i = 0; i < n; i++) {
    const inC = outC;
    outC = c.blockOutChannels[i]!;
    const out = downBlock(b, h, {
      name: `down_blocks.${i}`,
      inChannels: inC,
      outChannels: outC,
      numLayers: c.layersPerBlock,
      addDownsample: i < n - 1,
      downsamplePadding: c.downsamplePadding,
      resnet,
      attention: c.downBlockTypes[i] === "AttnDownBlock2D" ? spatial(outC) : { kind: "none" },
    });
    h = out.hidden;
    skips.push(...out.skips);
  }

  const last = c.blockOutChannels[n - 1]!;
  if (c.midBlockType !== null) {
    h = unetMidBlock2D(b, h, {
      inChannels: last,
      temb,
      tembChannels: c.timeEmbedDim,
      resnetEps: c.normEps,
      resnetActFn: c.actFn,
      outputScaleFactor: c.midBlockScaleFactor,
      resnetTimeScaleShift: "default",
      attentionHeadDim: c.attentionHeadDim ?? last,
      resnetGroups: c.normNumGroups,
      attnGroups: c.attnNormNumGroups,
      addAttention: c.addAttention,
    });
  }

  const exact = exactDoubling(b, n, c.downsamplePadding);
  const reversed = [...c.blockOutChannels].reverse();
  outC = reversed[0]!;
  for (let i = 0; i < n; i++) {
    const prevOutC = outC;
    outC = reversed[i]!;
    const numLayers = c.layersPerBlock + 1;
    const addUpsample = i < n - 1;
    h = upBlock(b, h, skips, {
      name: `up_blocks.${i}`,
      inChannels: reversed[Math.min(i + 1, n - 1)]!,
      prevOutputChannels: prevOutC,
      outChannels: outC,
      numLayers,
      addUpsample,
      ...(addUpsample && !exact[i] ? { upsampleSizeOf: skips[skips.length - numLayers - 1]! } : {}),
      resnet,
      attention: c.upBlockTypes[i] === "AttnUpBlock2D" ? spatial(outC) : { kind: "none" },
    });
  }

  // conv_norm_out has norm_num_groups groups and conv_act is nn.SiLU() whatever act_fn says.
  h = groupNormActivation(b, h, {
    name: "conv_norm_out",
    channels: c0,
    groups: c.normNumGroups,
    eps: c.normEps,
    fn: "silu",
  });
  h = conv2d(b, h, { name: "conv_out", inChannels: c0, outChannels: c.outChannels, kernelSize: 3, padding: 1 });
  b.output(h, "out_sample", ["batch", c.outChannels, "height", "width"]);
  return b;
}

function isResolved(config: unknown): config is UNet2DConfig {
  return typeof config === "object" && config !== null && (config as { className?: unknown }).className === CLS &&
    Object.isFrozen(config);
}

/**
 * The down, up and cross-attention mid blocks of diffusers' UNets (`src/diffusers/models/unets/unet_2d_blocks.py`,
 * commit 58eb52c0) that the Latent Diffusion checkpoints use: `DownBlock2D`, `CrossAttnDownBlock2D`,
 * `AttnDownBlock2D`, `UpBlock2D`, `CrossAttnUpBlock2D`, `AttnUpBlock2D` and `UNetMidBlock2DCrossAttn`.
 * (`UNetMidBlock2D` lives in blocks.ts, shared with the VAEs.) Private to the two UNet builders.
 *
 * @module
 */
import type { GraphBuilder, Value } from "./builder.ts";
import { attention, downsample2D, resnetBlock2D, upsample2D } from "./blocks.ts";
import { transformer2D } from "./transformer_2d.ts";

/** ResnetBlock2D settings every block of one UNet shares. */
export interface ResnetSettings {
  /** Time embedding `[N, tembChannels]` in the compute type. */
  temb: Value;
  tembChannels: number;
  /** `resnet_eps` (the UNet's `norm_eps`). */
  eps: number;
  /** `resnet_groups` (the UNet's `norm_num_groups`). */
  groups: number;
  /** `resnet_act_fn`. */
  actFn: string;
  /** `resnet_time_scale_shift`. */
  timeScaleShift: "default";
}

/** Transformer2DModel settings of one cross-attention block. */
export interface CrossAttnSettings {
  /** Context `[N, L, crossAttentionDim]` in the compute type. */
  encoderHiddenStates: Value;
  crossAttentionDim: number;
  numAttentionHeads: number;
  /** BasicTransformerBlocks per Transformer2DModel. */
  transformerLayers: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
  upcastAttention: boolean;
}

/** What the spatial attention of AttnDownBlock2D/AttnUpBlock2D needs. */
export interface SpatialAttnSettings {
  /** Channels per head (`attention_head_dim` of UNet2DModel). */
  headDim: number;
}

/** The block's kind: plain resnets, resnets + Transformer2DModel, or resnets + spatial self-attention. */
export type BlockAttention =
  | { readonly kind: "none" }
  | ({ readonly kind: "cross" } & CrossAttnSettings)
  | ({ readonly kind: "spatial" } & SpatialAttnSettings);

/** Options of {@linkcode downBlock}. */
export interface DownBlockOptions {
  /** Module path (`"down_blocks.0"`). */
  name: string;
  inChannels: number;
  outChannels: number;
  numLayers: number;
  addDownsample: boolean;
  downsamplePadding: number;
  resnet: ResnetSettings;
  attention: BlockAttention;
}

/** Output of a down block: the hidden state and the skip connections it contributes, in order. */
export interface DownBlockOutput {
  hidden: Value;
  skips: Value[];
}

/** Transformer2DModel's head size: `out_channels // num_attention_heads` (unet_2d_blocks.py). */
function crossHeadDim(name: string, channels: number, heads: number): number {
  const headDim = Math.floor(channels / heads);
  if (headDim < 1) {
    throw new RangeError(`${name}: ${heads} attention heads do not fit in ${channels} channels`);
  }
  return headDim;
}

/** The attention layer after the resnet of layer `i` (Transformer2DModel or spatial Attention), or identity. */
function blockAttention(
  b: GraphBuilder,
  h: Value,
  name: string,
  channels: number,
  resnet: ResnetSettings,
  attn: BlockAttention,
): Value {
  switch (attn.kind) {
    case "none":
      return h;
    case "cross":
      return transformer2D(b, h, {
        name,
        inChannels: channels,
        numAttentionHeads: attn.numAttentionHeads,
        attentionHeadDim: crossHeadDim(name, channels, attn.numAttentionHeads),
        numLayers: attn.transformerLayers,
        normNumGroups: resnet.groups,
        crossAttentionDim: attn.crossAttentionDim,
        encoderHiddenStates: attn.encoderHiddenStates,
        useLinearProjection: attn.useLinearProjection,
        onlyCrossAttention: attn.onlyCrossAttention,
        upcastAttention: attn.upcastAttention,
      });
    case "spatial": {
      // AttnDownBlock2D / AttnUpBlock2D: Attention(out_channels, heads=out_channels // attention_head_dim,
      // dim_head=attention_head_dim, eps=resnet_eps, norm_num_groups=resnet_groups, residual_connection=True,
      // bias=True, upcast_softmax=True, _from_deprecated_attn_block=True).
      const heads = Math.floor(channels / attn.headDim);
      if (heads < 1) throw new RangeError(`${name}: attention head size ${attn.headDim} exceeds ${channels} channels`);
      return attention(b, h, {
        name,
        queryDim: channels,
        inputRank: 4,
        heads,
        dimHead: attn.headDim,
        eps: resnet.eps,
        normNumGroups: resnet.groups,
        residualConnection: true,
        bias: true,
      });
    }
  }
}

function resnet(
  b: GraphBuilder,
  x: Value,
  name: string,
  inC: number,
  outC: number,
  r: ResnetSettings,
  outputScaleFactor?: number,
): Value {
  return resnetBlock2D(b, x, {
    name,
    inChannels: inC,
    outChannels: outC,
    temb: r.temb,
    tembChannels: r.tembChannels,
    eps: r.eps,
    groups: r.groups,
    nonLinearity: r.actFn,
    timeEmbeddingNorm: r.timeScaleShift,
    outputScaleFactor,
  });
}

/**
 * `DownBlock2D` / `CrossAttnDownBlock2D` / `AttnDownBlock2D` `.forward`: per layer `resnets.i` (+ `attentions.i`),
 * each output saved as a skip connection, then `downsamplers.0` (stride-2 convolution, also saved).
 */
export function downBlock(b: GraphBuilder, x: Value, options: DownBlockOptions): DownBlockOutput {
  const { name, inChannels, outChannels, numLayers, resnet: r, attention: attn } = options;
  const skips: Value[] = [];
  let h = x;
  for (let i = 0; i < numLayers; i++) {
    h = resnet(b, h, `${name}.resnets.${i}`, i === 0 ? inChannels : outChannels, outChannels, r);
    h = blockAttention(b, h, `${name}.attentions.${i}`, outChannels, r, attn);
    skips.push(h);
  }
  if (options.addDownsample) {
    h = downsample2D(b, h, {
      name: `${name}.downsamplers.0`,
      channels: outChannels,
      useConv: true,
      outChannels,
      padding: options.downsamplePadding,
    });
    skips.push(h);
  }
  return { hidden: h, skips };
}

/** Options of {@linkcode upBlock}. */
export interface UpBlockOptions {
  /** Module path (`"up_blocks.1"`). */
  name: string;
  /** Channels of the skip that the last layer consumes (the matching down block's input). */
  inChannels: number;
  /** Channels of the previous up block's output (or of the mid block). */
  prevOutputChannels: number;
  outChannels: number;
  /** Resnets in the block (`layers_per_block + 1`). */
  numLayers: number;
  /**
   * Upsample (nearest ×2 to the size of `upsampleSizeOf` when given, then a 3×3 convolution) after the last layer.
   */
  addUpsample: boolean;
  /** The next skip connection, whose height and width the upsampled output must have (diffusers' `upsample_size`). */
  upsampleSizeOf?: Value;
  resnet: ResnetSettings;
  attention: BlockAttention;
}

/**
 * `UpBlock2D` / `CrossAttnUpBlock2D` / `AttnUpBlock2D` `.forward`: per layer, concatenate the last remaining skip
 * on channels, `resnets.i` (+ `attentions.i`); then `upsamplers.0`. Consumes `numLayers` skips from the end of `skips`
 * (the array is shortened in place, as diffusers slices `down_block_res_samples`).
 *
 * @throws {RangeError} when fewer than `numLayers` skips remain.
 */
export function upBlock(b: GraphBuilder, x: Value, skips: Value[], options: UpBlockOptions): Value {
  const { name, inChannels, prevOutputChannels, outChannels, numLayers, resnet: r, attention: attn } = options;
  if (skips.length < numLayers) {
    throw new RangeError(`${name}: needs ${numLayers} skip connections but only ${skips.length} remain`);
  }
  let h = x;
  for (let i = 0; i < numLayers; i++) {
    const skip = skips.pop()!;
    const skipChannels = i === numLayers - 1 ? inChannels : outChannels;
    const resnetIn = i === 0 ? prevOutputChannels : outChannels;
    h = b.op("Concat", [h, skip], { axis: 1 }, { name: `${name}.cat${i}` });
    h = resnet(b, h, `${name}.resnets.${i}`, resnetIn + skipChannels, outChannels, r);
    h = blockAttention(b, h, `${name}.attentions.${i}`, outChannels, r, attn);
  }
  if (options.addUpsample) {
    h = upsample2D(b, h, {
      name: `${name}.upsamplers.0`,
      channels: outChannels,
      useConv: true,
      outChannels,
      ...(options.upsampleSizeOf ? { outputSizeOf: options.upsampleSizeOf } : {}),
    });
  }
  return h;
}

/** Options of {@linkcode midBlockCrossAttn}. */
export interface MidBlockCrossAttnOptions {
  /** Module path. @default "mid_block" */
  name?: string;
  channels: number;
  /** `output_scale_factor` of the resnets (the UNet's `mid_block_scale_factor`). */
  outputScaleFactor: number;
  resnet: ResnetSettings;
  attention: CrossAttnSettings;
}

/**
 * `UNetMidBlock2DCrossAttn.forward` (num_layers 1): `resnets.0` → `attentions.0` (Transformer2DModel) → `resnets.1`.
 * The transformer's GroupNorm uses the resnets' groups; only the resnets are divided by `output_scale_factor`.
 */
export function midBlockCrossAttn(b: GraphBuilder, x: Value, options: MidBlockCrossAttnOptions): Value {
  const { name = "mid_block", channels, outputScaleFactor, resnet: r, attention: attn } = options;
  const res = (v: Value, i: number) => resnet(b, v, `${name}.resnets.${i}`, channels, channels, r, outputScaleFactor);
  let h = res(x, 0);
  h = blockAttention(b, h, `${name}.attentions.0`, channels, r, { kind: "cross", ...attn });
  return res(h, 1);
}

/**
 * For each up block `i` (0 = the deepest) whether its upsampler is known to double the size exactly, so that it
 * can drop the resize-to-skip-size (diffusers' `upsample_size`) and use a plain ×2 upsampling (and the sub-pixel
 * form): only in graphs with `fixedDims` height and width, and only with the `upsample: "subpixel"` optimisation
 * (plain graphs keep the resize to the skip's size, byte for byte). The down path's stride-2 3×3 convolutions map a
 * size `s` to `floor((s + 2p - 3) / 2) + 1` (`p = downsample_padding`; 0 pads right/bottom by one).
 */
export function exactDoubling(b: GraphBuilder, levels: number, downsamplePadding: number): boolean[] {
  const h = b.fixedDims["height"];
  const w = b.fixedDims["width"];
  if (b.optimizations.upsample !== "subpixel" || h === undefined || w === undefined) {
    return new Array(levels).fill(false);
  }
  const down = (s: number) =>
    downsamplePadding === 0 ? Math.floor((s - 2) / 2) + 1 : Math.floor((s + 2 * downsamplePadding - 3) / 2) + 1;
  const sizes: [number, number][] = [[h, w]];
  for (let k = 1; k < levels; k++) sizes.push([down(sizes[k - 1]![0]), down(sizes[k - 1]![1])]);
  return Array.from({ length: levels }, (_, i) => {
    const from = sizes[levels - 1 - i];
    const to = sizes[levels - 2 - i];
    return from !== undefined && to !== undefined && to[0] === 2 * from[0] && to[1] === 2 * from[1];
  });
}

/**
 * The spatial transformer of the text-conditioned UNet: diffusers' `Transformer2DModel` on continuous inputs
 * (`src/diffusers/models/transformers/transformer_2d.py`, commit 58eb52c0) and its `BasicTransformerBlock`
 * (`src/diffusers/models/attention.py`) with `norm_type="layer_norm"`, as `CrossAttnDownBlock2D`,
 * `CrossAttnUpBlock2D` and `UNetMidBlock2DCrossAttn` build them (Rombach et al. 2022, "High-Resolution Image Synthesis
 * with Latent Diffusion Models", §3.3: cross-attention conditioning).
 *
 * Layers come from `blocks.ts` (GroupNorm, LayerNorm, Linear, Conv2d, Attention, FeedForward), so fp16 graphs keep the
 * normalisation statistics and the softmax in float32 as those blocks do.
 *
 * @module
 */
import type { GraphBuilder, Value } from "./builder.ts";
import {
  attention,
  conv2d,
  FEED_FORWARD_ACTIVATIONS,
  feedForward,
  groupNorm,
  layerNorm,
  linear,
  skipLayerNorm,
  type SkipLayerNormResult,
} from "./blocks.ts";

function checkInt(value: unknown, field: string, min = 1): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${field} must be an integer >= ${min}: got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Options of {@linkcode basicTransformerBlock}; defaults are diffusers' `BasicTransformerBlock.__init__` defaults. */
export interface BasicTransformerBlockOptions {
  /** Module path (`"down_blocks.1.attentions.0.transformer_blocks.0"`). */
  name: string;
  /** Width of the token sequence (`dim`, = heads · headDim in the UNets). */
  dim: number;
  /** Number of attention heads. */
  numAttentionHeads: number;
  /** Channels per head. */
  attentionHeadDim: number;
  /**
   * Width of `encoderHiddenStates`. `null` builds a block without `attn2`/`norm2` (no cross-attention), as diffusers
   * does when `cross_attention_dim` is None.
   */
  crossAttentionDim: number | null;
  /** Context `[N, L, crossAttentionDim]` in the compute type; required when `crossAttentionDim` is set. */
  encoderHiddenStates?: Value | null;
  /** `attn1` attends to the context too (no self-attention). @default false */
  onlyCrossAttention?: boolean;
  /** `q·kᵀ` in float32 in fp16 graphs. @default false */
  upcastAttention?: boolean;
  /** Bias of to_q/to_k/to_v. @default false */
  attentionBias?: boolean;
  /** FeedForward activation, one of blocks.ts' `FEED_FORWARD_ACTIVATIONS`. @default "geglu" */
  activationFn?: string;
  /** LayerNorm eps. @default 1e-5 */
  normEps?: number;
  /** LayerNorm `elementwise_affine`. @default true */
  normElementwiseAffine?: boolean;
}

/**
 * `BasicTransformerBlock.forward` with layer norms (attention.py): on a sequence `x` `[N, L, dim]`,
 * `x += attn1(norm1(x))` (self-attention, or cross-attention with `onlyCrossAttention`),
 * `x += attn2(norm2(x), context)` (when `crossAttentionDim` is set) and `x += ff(norm3(x))`.
 *
 * @throws {RangeError} on inconsistent sizes, an unknown activation, or a missing context.
 */
export function basicTransformerBlock(b: GraphBuilder, x: Value, options: BasicTransformerBlockOptions): Value {
  const {
    name,
    encoderHiddenStates = null,
    onlyCrossAttention = false,
    upcastAttention = false,
    attentionBias = false,
    activationFn = "geglu",
    normEps = 1e-5,
    normElementwiseAffine = true,
  } = options;
  const dim = checkInt(options.dim, `${name}: dim`);
  const heads = checkInt(options.numAttentionHeads, `${name}: numAttentionHeads`);
  const headDim = checkInt(options.attentionHeadDim, `${name}: attentionHeadDim`);
  const crossDim = options.crossAttentionDim === null
    ? null
    : checkInt(options.crossAttentionDim, `${name}: crossAttentionDim`);
  if (!FEED_FORWARD_ACTIVATIONS.includes(activationFn)) {
    throw new RangeError(
      `${name}: activationFn must be one of ${FEED_FORWARD_ACTIVATIONS.join(", ")}: got ${
        JSON.stringify(activationFn)
      }`,
    );
  }
  if (crossDim !== null && !encoderHiddenStates) {
    throw new RangeError(`${name}: crossAttentionDim is ${crossDim} but no encoderHiddenStates is given`);
  }
  if (onlyCrossAttention && crossDim === null) {
    throw new RangeError(`${name}: onlyCrossAttention needs a crossAttentionDim`);
  }
  const normOptions = (i: number) => ({ name: `${name}.norm${i}`, dim, eps: normEps, affine: normElementwiseAffine });
  const norm = (v: Value, i: number) => layerNorm(b, v, normOptions(i));
  // residual Add + the next LayerNorm: one SkipLayerNormalization in fused graphs.
  const addNorm = (v: Value, residual: Value, i: number): SkipLayerNormResult =>
    skipLayerNorm(b, v, residual, normOptions(i));
  const attn = (v: Value, i: number, context: Value | null) =>
    attention(b, v, {
      name: `${name}.attn${i}`,
      queryDim: dim,
      inputRank: 3,
      heads,
      dimHead: headDim,
      bias: attentionBias,
      upcastAttention,
      ...(context ? { encoderHiddenStates: context, crossAttentionDim: crossDim! } : {}),
    });
  return b.scope(name, () => {
    // 1. self-attention (or cross-attention when only_cross_attention)
    let r = addNorm(attn(norm(x, 1), 1, onlyCrossAttention ? encoderHiddenStates : null), x, crossDim !== null ? 2 : 3);
    // 2. cross-attention
    if (crossDim !== null) r = addNorm(attn(r.normed, 2, encoderHiddenStates), r.sum, 3);
    // 3. feed-forward
    const ff = feedForward(b, r.normed, { name: `${name}.ff`, dim, activationFn });
    return b.op("Add", [ff, r.sum]);
  });
}

/** Options of {@linkcode transformer2D}; defaults are diffusers' `Transformer2DModel.__init__` defaults. */
export interface Transformer2DOptions {
  /** Module path (`"down_blocks.1.attentions.0"`, `"mid_block.attentions.0"`). */
  name: string;
  /** Channels of the `[N, C, H, W]` input (and of the output). */
  inChannels: number;
  /** Number of attention heads. */
  numAttentionHeads: number;
  /** Channels per head. */
  attentionHeadDim: number;
  /** Number of `BasicTransformerBlock`s. @default 1 */
  numLayers?: number;
  /** Groups of the input GroupNorm (its eps is diffusers' fixed 1e-6). @default 32 */
  normNumGroups?: number;
  /** Width of the context; `null` for self-attention only. @default null */
  crossAttentionDim?: number | null;
  /** Context `[N, L, crossAttentionDim]` in the compute type. */
  encoderHiddenStates?: Value | null;
  /** `proj_in`/`proj_out` are Linear layers on the tokens instead of 1×1 convolutions. @default false */
  useLinearProjection?: boolean;
  /** `attn1` attends to the context too (no self-attention). @default false */
  onlyCrossAttention?: boolean;
  /** `q·kᵀ` in float32 in fp16 graphs. @default false */
  upcastAttention?: boolean;
  /** Bias of to_q/to_k/to_v. @default false */
  attentionBias?: boolean;
  /** FeedForward activation, one of blocks.ts' `FEED_FORWARD_ACTIVATIONS`. @default "geglu" */
  activationFn?: string;
  /** Eps of the blocks' LayerNorms. @default 1e-5 */
  normEps?: number;
  /** LayerNorm `elementwise_affine`. @default true */
  normElementwiseAffine?: boolean;
}

/**
 * `Transformer2DModel.forward` on continuous inputs (transformer_2d.py `_operate_on_continuous_inputs`,
 * `_get_output_for_continuous_inputs`): GroupNorm (eps 1e-6) → `proj_in` → `[N, H·W, inner]` tokens →
 * `transformer_blocks.*` → `proj_out` → `[N, C, H, W]` + input. `inner = numAttentionHeads · attentionHeadDim`;
 * height and width stay dynamic.
 *
 * @throws {RangeError} on inconsistent sizes (e.g. `inChannels` not divisible by `normNumGroups`).
 */
export function transformer2D(b: GraphBuilder, x: Value, options: Transformer2DOptions): Value {
  const {
    name,
    numLayers = 1,
    normNumGroups = 32,
    crossAttentionDim = null,
    encoderHiddenStates = null,
    useLinearProjection = false,
    onlyCrossAttention = false,
    upcastAttention = false,
    attentionBias = false,
    activationFn = "geglu",
    normEps = 1e-5,
    normElementwiseAffine = true,
  } = options;
  const inC = checkInt(options.inChannels, `${name}: inChannels`);
  const heads = checkInt(options.numAttentionHeads, `${name}: numAttentionHeads`);
  const headDim = checkInt(options.attentionHeadDim, `${name}: attentionHeadDim`);
  checkInt(numLayers, `${name}: numLayers`);
  const inner = heads * headDim;
  return b.scope(name, () => {
    const residual = x;
    // GroupNorm eps is hard-coded to 1e-6 in diffusers (`_init_continuous_input`), whatever the UNet's norm_eps.
    let h = groupNorm(b, x, { name: `${name}.norm`, channels: inC, groups: normNumGroups, eps: 1e-6 });
    // [N, C, H, W] → [N, H·W, C]: `permute(0, 2, 3, 1).reshape(N, H·W, C)`.
    const toTokens = (v: Value, channels: number) =>
      b.op("Transpose", [b.op("Reshape", [v, b.constInt64([0, channels, -1])])], { perm: [0, 2, 1] });
    let spatialShape: Value;
    if (useLinearProjection) {
      spatialShape = b.shape(x);
      h = linear(b, toTokens(h, inC), { name: `${name}.proj_in`, inFeatures: inC, outFeatures: inner });
    } else {
      h = conv2d(b, h, { name: `${name}.proj_in`, inChannels: inC, outChannels: inner, kernelSize: 1 });
      spatialShape = b.shape(h);
      h = toTokens(h, inner);
    }
    for (let i = 0; i < numLayers; i++) {
      h = basicTransformerBlock(b, h, {
        name: `${name}.transformer_blocks.${i}`,
        dim: inner,
        numAttentionHeads: heads,
        attentionHeadDim: headDim,
        crossAttentionDim,
        encoderHiddenStates,
        onlyCrossAttention,
        upcastAttention,
        attentionBias,
        activationFn,
        normEps,
        normElementwiseAffine,
      });
    }
    // [N, H·W, C] → [N, C, H, W]: `reshape(N, H, W, C).permute(0, 3, 1, 2)`.
    const toSpatial = (v: Value) => b.op("Reshape", [b.op("Transpose", [v], { perm: [0, 2, 1] }), spatialShape]);
    if (useLinearProjection) {
      h = toSpatial(linear(b, h, { name: `${name}.proj_out`, inFeatures: inner, outFeatures: inC }));
    } else {
      h = conv2d(b, toSpatial(h), { name: `${name}.proj_out`, inChannels: inner, outChannels: inC, kernelSize: 1 });
    }
    return b.op("Add", [h, residual]);
  });
}

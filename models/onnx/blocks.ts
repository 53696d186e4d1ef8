/**
 * Network blocks shared by the diffusers graphs, ported from `src/diffusers/models/` (commit 58eb52c0): layers
 * (`torch.nn` Conv2d/Linear/GroupNorm/LayerNorm), `activations.py`, `resnet.py` ResnetBlock2D, `attention_processor.py`
 * Attention (AttnProcessor2_0), `downsampling.py` Downsample2D, `upsampling.py` Upsample2D, `embeddings.py`
 * Timesteps/TimestepEmbedding, `attention.py` FeedForward and `unets/unet_2d_blocks.py` UNetMidBlock2D.
 *
 * Every block takes the builder, its main input and an options object whose `name` is the diffusers module path
 * (`"down_blocks.0.resnets.1"`): weights are read as `<name>.<param>` and nodes are named after it.
 *
 * fp16: blocks compute in `b.computeType`; normalisation statistics (GroupNorm via InstanceNormalization, LayerNorm),
 * softmax and the sinusoidal timestep projection run in float32 and cast back, as the per-op policy of this project
 * (shared/notes/gpu.md: post-hoc fp16 conversion broke Resize scales and the timestep projection).
 *
 * Fused variants: when the builder was created with `optimize` (see optimize.ts), {@linkcode multiHeadAttention},
 * {@linkcode feedForward} (GEGLU), {@linkcode skipLayerNorm} and {@linkcode groupNormActivation} emit onnxruntime
 * contrib operators (com.microsoft domain) that the target provider implements; without it they emit the plain
 * default-domain graph, which stays the reference.
 *
 * @module
 */
import { type GraphBuilder, MS_DOMAIN, type Value } from "./builder.ts";
import { CUDA_BIAS_SPLIT_GELU_SIZES } from "./optimize.ts";

// ------------------------------------------------------------------------------------------------ helpers

function checkInt(value: unknown, field: string, min = 1): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${field} must be an integer >= ${min}: got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkPositive(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${field} must be a finite number > 0: got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkDivisible(channels: number, groups: number, field: string): void {
  if (channels % groups !== 0) {
    throw new RangeError(`${field}: ${channels} channels cannot be split into ${groups} groups`);
  }
}

// ------------------------------------------------------------------------------------------------ activations

/** Activation names diffusers' `get_activation` accepts (`activations.py` ACT2CLS). */
export const ACTIVATIONS: readonly string[] = ["swish", "silu", "mish", "gelu", "relu"];

/** Options of {@linkcode activation}. */
export interface ActivationOptions {
  /** One of {@linkcode ACTIVATIONS} (case-insensitive, as `get_activation` lowercases). */
  fn: string;
}

/**
 * `get_activation(fn)(x)` (diffusers `activations.py`): SiLU/swish = x·σ(x), Mish = x·tanh(softplus(x)), GELU exact
 * (erf form, torch's default `approximate="none"`), ReLU.
 *
 * @throws {RangeError} for an unknown activation, listing the supported ones.
 */
export function activation(b: GraphBuilder, x: Value, options: ActivationOptions): Value {
  const fn = typeof options.fn === "string" ? options.fn.toLowerCase() : options.fn;
  switch (fn) {
    case "swish":
    case "silu":
      return b.op("Mul", [x, b.op("Sigmoid", [x])]);
    case "mish":
      return b.op("Mul", [x, b.op("Tanh", [b.op("Softplus", [x])])]);
    case "gelu":
      return gelu(b, x);
    case "relu":
      return b.op("Relu", [x]);
    default:
      throw new RangeError(`activation must be one of ${ACTIVATIONS.join(", ")}: got ${JSON.stringify(options.fn)}`);
  }
}

/** Exact GELU, `0.5·x·(1 + erf(x/√2))` (torch `F.gelu(approximate="none")`); opset 17 has no Gelu operator. */
export function gelu(b: GraphBuilder, x: Value): Value {
  const t = x.type;
  const erf = b.op("Erf", [b.op("Mul", [x, b.scalar(Math.SQRT1_2, t)])]);
  return b.op("Mul", [b.op("Mul", [x, b.scalar(0.5, t)]), b.op("Add", [erf, b.scalar(1, t)])]);
}

/** tanh-approximated GELU (torch `F.gelu(approximate="tanh")`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. */
export function geluTanh(b: GraphBuilder, x: Value): Value {
  const t = x.type;
  const cube = b.op("Mul", [b.op("Mul", [x, x]), x]);
  const inner = b.op("Mul", [
    b.op("Add", [x, b.op("Mul", [cube, b.scalar(0.044715, t)])]),
    b.scalar(Math.sqrt(2 / Math.PI), t),
  ]);
  return b.op("Mul", [b.op("Mul", [x, b.scalar(0.5, t)]), b.op("Add", [b.op("Tanh", [inner]), b.scalar(1, t)])]);
}

// ------------------------------------------------------------------------------------------------ layers

/** Options of {@linkcode conv2d}. */
export interface Conv2dOptions {
  /** Module path; weights `<name>.weight` `[out, in, k, k]` and `<name>.bias` `[out]`. */
  name: string;
  inChannels: number;
  outChannels: number;
  /** @default 3 */
  kernelSize?: number;
  /** @default 1 */
  stride?: number;
  /** Symmetric padding, or ONNX pads `[top, left, bottom, right]`. @default 0 */
  padding?: number | readonly [number, number, number, number];
  /** @default true */
  bias?: boolean;
}

/** `torch.nn.Conv2d` (square kernel, no dilation or groups) as an ONNX Conv named `name`. */
export function conv2d(b: GraphBuilder, x: Value, options: Conv2dOptions): Value {
  const { name, kernelSize = 3, stride = 1, padding = 0, bias = true } = options;
  const inC = checkInt(options.inChannels, `${name}: inChannels`);
  const outC = checkInt(options.outChannels, `${name}: outChannels`);
  checkInt(kernelSize, `${name}: kernelSize`);
  checkInt(stride, `${name}: stride`);
  const pads = typeof padding === "number" ? [padding, padding, padding, padding] : [...padding];
  for (const p of pads) checkInt(p, `${name}: padding`, 0);
  const w = b.weight(`${name}.weight`, [outC, inC, kernelSize, kernelSize]);
  const bs = bias ? b.weight(`${name}.bias`, [outC]) : null;
  return b.op("Conv", bs ? [x, w, bs] : [x, w], {
    kernel_shape: [kernelSize, kernelSize],
    strides: [stride, stride],
    pads,
    dilations: [1, 1],
    group: 1,
  }, { name });
}

/** Options of {@linkcode linear}. */
export interface LinearOptions {
  /** Module path; weights `<name>.weight` `[out, in]` (stored transposed) and `<name>.bias` `[out]`. */
  name: string;
  inFeatures: number;
  outFeatures: number;
  /** @default true */
  bias?: boolean;
  /** Checkpoint names to try when `<name>.weight` / `<name>.bias` are absent (deprecated module names). */
  aliases?: readonly string[];
}

/**
 * `torch.nn.Linear` on the last axis: `MatMul(x, Wᵀ) + b`, with `Wᵀ` stored pre-transposed. A `[out, in, 1, 1]`
 * checkpoint weight (a 1×1 convolution saved by older conversions) is accepted too.
 */
export function linear(b: GraphBuilder, x: Value, options: LinearOptions): Value {
  const { name, bias = true, aliases = [] } = options;
  const inF = checkInt(options.inFeatures, `${name}: inFeatures`);
  const outF = checkInt(options.outFeatures, `${name}: outFeatures`);
  const w = b.weight(`${name}.weight`, [outF, inF], {
    transpose: true,
    acceptShapes: [[outF, inF, 1, 1]],
    aliases: aliases.map((a) => `${a}.weight`),
  });
  const y = b.op("MatMul", [x, w], {}, { name });
  if (!bias) return y;
  const bs = b.weight(`${name}.bias`, [outF], { aliases: aliases.map((a) => `${a}.bias`) });
  return b.op("Add", [y, bs], {}, { name: `${name}/Add` });
}

/** Options of {@linkcode groupNorm}. */
export interface GroupNormOptions {
  /** Module path; weights `<name>.weight` and `<name>.bias` `[channels]` when affine. */
  name: string;
  channels: number;
  groups: number;
  eps: number;
  /** @default true */
  affine?: boolean;
  /** Rank of `x`: 4 for `[N, C, H, W]`, 3 for `[N, C, L]`. @default 4 */
  rank?: 3 | 4;
}

/**
 * `torch.nn.GroupNorm` the way torch's ONNX exporter writes it: Reshape to `[N, G, -1]` → InstanceNormalization
 * (unit scale, zero bias) → Reshape back → per-channel Mul/Add. Portable across opsets and providers, unlike
 * GroupNormalization whose semantics changed in opset 21. Statistics and the affine map run in float32.
 *
 * @throws {RangeError} when `channels` is not divisible by `groups`.
 */
export function groupNorm(b: GraphBuilder, x: Value, options: GroupNormOptions): Value {
  const { name, affine = true, rank = 4 } = options;
  const channels = checkInt(options.channels, `${name}: channels`);
  const groups = checkInt(options.groups, `${name}: groups`);
  checkPositive(options.eps, `${name}: eps`);
  checkDivisible(channels, groups, name);
  return b.scope(name, () => {
    const xf = b.cast(x, "float32");
    const grouped = b.op("Reshape", [xf, b.constInt64([0, groups, -1])]);
    const ones = b.constant(new Float32Array(groups).fill(1), [groups], "float32");
    const zeros = b.constant(new Float32Array(groups), [groups], "float32");
    const normed = b.op("InstanceNormalization", [grouped, ones, zeros], { epsilon: options.eps }, { name });
    let y = b.op("Reshape", [normed, b.shape(xf)]);
    if (affine) {
      const storeAs = rank === 4 ? [channels, 1, 1] : [channels, 1];
      const w = b.weight(`${name}.weight`, [channels], { type: "float32", storeAs });
      const bias = b.weight(`${name}.bias`, [channels], { type: "float32", storeAs });
      y = b.op("Add", [b.op("Mul", [y, w]), bias]);
    }
    return b.cast(y, x.type);
  });
}

/** Options of {@linkcode layerNorm}. */
export interface LayerNormOptions {
  /** Module path; weights `<name>.weight` and `<name>.bias` `[dim]`. */
  name: string;
  /** Size of the last axis. */
  dim: number;
  /** @default 1e-5 (torch's default) */
  eps?: number;
  /** `elementwise_affine`. @default true */
  affine?: boolean;
  /** Whether the affine map has a bias (`bias=` of `nn.LayerNorm`). @default true */
  bias?: boolean;
}

/** `torch.nn.LayerNorm(dim)` over the last axis: ONNX LayerNormalization, computed in float32. */
export function layerNorm(b: GraphBuilder, x: Value, options: LayerNormOptions): Value {
  const { name, eps = 1e-5, affine = true, bias = true } = options;
  const dim = checkInt(options.dim, `${name}: dim`);
  checkPositive(eps, `${name}: eps`);
  return b.scope(name, () => {
    const xf = b.cast(x, "float32");
    const scale = affine
      ? b.weight(`${name}.weight`, [dim], { type: "float32" })
      : b.constant(new Float32Array(dim).fill(1), [dim], "float32");
    const shift = affine && bias ? b.weight(`${name}.bias`, [dim], { type: "float32" }) : null;
    const y = b.op("LayerNormalization", shift ? [xf, scale, shift] : [xf, scale], { axis: -1, epsilon: eps }, {
      name,
    });
    return b.cast(y, x.type);
  });
}

/** Options of {@linkcode groupNormActivation}. */
export interface GroupNormActivationOptions extends GroupNormOptions {
  /** The activation that follows the norm, one of {@linkcode ACTIVATIONS}. */
  fn: string;
}

/**
 * `act(GroupNorm(x))`, the pair every resnet and the UNets'/VAEs' `conv_norm_out` use. Plain: {@linkcode groupNorm}
 * then {@linkcode activation}. With the `groupNorm` fusion (CUDA only) and SiLU/swish on a rank-4 input: one
 * `com.microsoft.GroupNorm` (activation 1 = swish, float32 γ/β), which reads NHWC, between two Transposes.
 */
export function groupNormActivation(b: GraphBuilder, x: Value, options: GroupNormActivationOptions): Value {
  const fn = typeof options.fn === "string" ? options.fn.toLowerCase() : options.fn;
  const { name, affine = true, rank = 4 } = options;
  if (!b.optimizations.groupNorm || rank !== 4 || !affine || (fn !== "silu" && fn !== "swish")) {
    return activation(b, groupNorm(b, x, options), { fn: options.fn });
  }
  const channels = checkInt(options.channels, `${name}: channels`);
  const groups = checkInt(options.groups, `${name}: groups`);
  checkPositive(options.eps, `${name}: eps`);
  checkDivisible(channels, groups, name);
  return b.scope(name, () => {
    const w = b.weight(`${name}.weight`, [channels], { type: "float32" });
    const bias = b.weight(`${name}.bias`, [channels], { type: "float32" });
    const nhwc = b.op("Transpose", [x], { perm: [0, 2, 3, 1] });
    const y = b.op("GroupNorm", [nhwc, w, bias], {
      epsilon: options.eps,
      groups,
      activation: 1,
      channels_last: 1,
    }, { name, domain: MS_DOMAIN });
    return b.op("Transpose", [y], { perm: [0, 3, 1, 2] });
  });
}

/** What {@linkcode skipLayerNorm} returns. */
export interface SkipLayerNormResult {
  /** `LayerNorm(x + skip)`. */
  normed: Value;
  /** `x + skip`, the residual stream the next block adds to. */
  sum: Value;
}

/**
 * `s = x + skip; LayerNorm(s)` for the residual stream of the transformer blocks. Plain: Add then
 * {@linkcode layerNorm} (float32 inside). With the `skipLayerNorm` fusion: one `com.microsoft.SkipLayerNormalization`
 * (outputs 0, the normed value, and 3, the sum), γ/β in the compute type (its kernels accumulate in float32).
 */
export function skipLayerNorm(b: GraphBuilder, x: Value, skip: Value, options: LayerNormOptions): SkipLayerNormResult {
  const { name, eps = 1e-5, affine = true, bias = true } = options;
  if (!b.optimizations.skipLayerNorm) {
    const sum = b.op("Add", [x, skip]);
    return { normed: layerNorm(b, sum, options), sum };
  }
  const dim = checkInt(options.dim, `${name}: dim`);
  checkPositive(eps, `${name}: eps`);
  return b.scope(name, () => {
    const t = x.type;
    const gamma = affine ? b.weight(`${name}.weight`, [dim], { type: b.computeType }) : b.constant(
      new Float32Array(dim).fill(1),
      [dim],
      t,
    );
    const beta = affine && bias ? b.weight(`${name}.bias`, [dim], { type: b.computeType }) : null;
    const [normed, , , sum] = b.opMulti("SkipLayerNormalization", beta ? [x, skip, gamma, beta] : [x, skip, gamma], 4, {
      epsilon: eps,
    }, { name, domain: MS_DOMAIN, omitOutputs: [1, 2], outputTypes: [t, "float32", "float32", t] });
    return { normed: normed!, sum: sum! };
  });
}

// ------------------------------------------------------------------------------------------------ resampling

/** Options of {@linkcode downsample2D}. */
export interface Downsample2DOptions {
  /** Module path; the convolution is `<name>.conv`. */
  name: string;
  channels: number;
  /** Strided convolution (true) or 2×2 average pooling (false). @default false */
  useConv?: boolean;
  /** @default channels */
  outChannels?: number;
  /**
   * Convolution padding. 0 means diffusers' asymmetric `F.pad(x, (0, 1, 0, 1))` before the convolution, as the VAE
   * encoder uses. @default 1
   */
  padding?: number;
  /** @default 3 */
  kernelSize?: number;
  /** @default true */
  bias?: boolean;
}

/** `Downsample2D` (diffusers `downsampling.py`): stride-2 convolution or 2×2 average pooling. */
export function downsample2D(b: GraphBuilder, x: Value, options: Downsample2DOptions): Value {
  const { name, useConv = false, padding = 1, kernelSize = 3, bias = true } = options;
  const channels = checkInt(options.channels, `${name}: channels`);
  const outChannels = checkInt(options.outChannels ?? channels, `${name}: outChannels`);
  checkInt(padding, `${name}: padding`, 0);
  if (!useConv) {
    if (outChannels !== channels) {
      throw new RangeError(`${name}: average pooling needs outChannels == channels: got ${outChannels} != ${channels}`);
    }
    return b.op("AveragePool", [x], { kernel_shape: [2, 2], strides: [2, 2] }, { name: `${name}.conv` });
  }
  // padding == 0: F.pad (0, 1, 0, 1) pads right and bottom by one; ONNX pads are [top, left, bottom, right].
  const pads: [number, number, number, number] = padding === 0 ? [0, 0, 1, 1] : [padding, padding, padding, padding];
  return conv2d(b, x, {
    name: `${name}.conv`,
    inChannels: channels,
    outChannels,
    kernelSize,
    stride: 2,
    padding: pads,
    bias,
  });
}

/** Options of {@linkcode upsample2D}. */
export interface Upsample2DOptions {
  /** Module path; the convolution is `<name>.conv`. */
  name: string;
  channels: number;
  /** 3×3 convolution after the nearest-neighbour ×2. @default false */
  useConv?: boolean;
  /** ConvTranspose2d (kernel 4, stride 2) instead of interpolation + conv. @default false */
  useConvTranspose?: boolean;
  /** @default channels */
  outChannels?: number;
  /** @default 3 (4 for the transposed convolution) */
  kernelSize?: number;
  /** @default 1 */
  padding?: number;
  /** @default true */
  bias?: boolean;
  /** @default true */
  interpolate?: boolean;
  /**
   * Interpolate to the spatial size of this `[N, C, H, W]` value instead of ×2 (diffusers' `output_size`, used by
   * UNets when the input is not a multiple of the total downsampling factor).
   */
  outputSizeOf?: Value;
}

/**
 * `Upsample2D` (diffusers `upsampling.py`): `F.interpolate(scale_factor=2, mode="nearest")` as ONNX Resize (nearest,
 * asymmetric, floor, which is torch's legacy nearest), then an optional 3×3 convolution. Resize scales are float32
 * whatever the compute type.
 */
export function upsample2D(b: GraphBuilder, x: Value, options: Upsample2DOptions): Value {
  const { name, useConv = false, useConvTranspose = false, padding = 1, bias = true, interpolate = true } = options;
  const channels = checkInt(options.channels, `${name}: channels`);
  const outChannels = checkInt(options.outChannels ?? channels, `${name}: outChannels`);
  if (useConvTranspose) {
    const k = checkInt(options.kernelSize ?? 4, `${name}: kernelSize`);
    const w = b.weight(`${name}.conv.weight`, [channels, outChannels, k, k]);
    const bs = bias ? b.weight(`${name}.conv.bias`, [outChannels]) : null;
    return b.op("ConvTranspose", bs ? [x, w, bs] : [x, w], {
      kernel_shape: [k, k],
      strides: [2, 2],
      pads: [padding, padding, padding, padding],
    }, { name: `${name}.conv` });
  }
  const kernel = options.kernelSize ?? 3;
  if (
    b.optimizations.upsample === "subpixel" && interpolate && useConv && !options.outputSizeOf && kernel === 3 &&
    padding === 1
  ) {
    return subpixelUpsampleConv(b, x, { name, channels, outChannels, bias });
  }
  let y = x;
  if (interpolate) {
    y = b.scope(name, () => {
      const attrs = { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" };
      if (options.outputSizeOf) {
        const batchChannels = b.op("Slice", [b.shape(x), b.constInt64([0]), b.constInt64([2])]);
        const spatial = b.op("Slice", [b.shape(options.outputSizeOf), b.constInt64([2]), b.constInt64([4])]);
        const sizes = b.op("Concat", [batchChannels, spatial], { axis: 0 });
        return b.op("Resize", [x, null, null, sizes], attrs, { name: `${name}/Resize` });
      }
      const scales = b.constant([1, 1, 2, 2], [4], "float32");
      return b.op("Resize", [x, null, scales], attrs, { name: `${name}/Resize` });
    });
  }
  if (!useConv) return y;
  return conv2d(b, y, {
    name: `${name}.conv`,
    inChannels: channels,
    outChannels,
    kernelSize: options.kernelSize ?? 3,
    padding,
    bias,
  });
}

/**
 * Which 3×3 taps (along one axis) fold into each of the two taps of a 2×2 phase kernel: after nearest ×2
 * upsampling, output row `2i + a` reads upsampled rows `2i + a - 1 .. 2i + a + 1`, i.e. input rows `i - 1, i, i` for
 * `a = 0` and `i, i, i + 1` for `a = 1`.
 */
const PHASE_TAPS: readonly (readonly (readonly number[])[])[] = [[[0], [1, 2]], [[0, 1], [2]]];

/** The 2×2 kernel of output phase `(a, c)` from a `[out, in, 3, 3]` kernel (taps summed per {@linkcode PHASE_TAPS}). */
export function subpixelPhaseKernel(w: Float32Array, outC: number, inC: number, a: number, c: number): Float32Array {
  if (w.length !== outC * inC * 9) {
    throw new RangeError(`subpixelPhaseKernel: ${w.length} values for [${outC}, ${inC}, 3, 3]`);
  }
  const rows = PHASE_TAPS[a]!;
  const cols = PHASE_TAPS[c]!;
  const out = new Float32Array(outC * inC * 4);
  for (let oi = 0; oi < outC * inC; oi++) {
    for (let r = 0; r < 2; r++) {
      for (let q = 0; q < 2; q++) {
        let sum = 0;
        for (const kr of rows[r]!) for (const kc of cols[q]!) sum += w[oi * 9 + kr * 3 + kc]!;
        out[oi * 4 + r * 2 + q] = sum;
      }
    }
  }
  return out;
}

/**
 * `Conv3×3(pad 1)(Upsample×2 nearest(x))` computed on the low-resolution input: four 2×2 convolutions (one per output
 * phase `(a, c)`, padded `[1 - a, 1 - c, a, c]`), concatenated on channels and interleaved by `DepthToSpace` (DCR).
 * Exactly the same sums regrouped (16 instead of 36 multiply-adds per output pixel and channel pair), so only float
 * rounding differs. Weights `<name>.conv.weight` / `.bias` are read once per phase kernel at serialisation.
 */
function subpixelUpsampleConv(
  b: GraphBuilder,
  x: Value,
  o: { name: string; channels: number; outChannels: number; bias: boolean },
): Value {
  const { name, channels, outChannels } = o;
  return b.scope(name, () => {
    const bs = o.bias ? b.weight(`${name}.conv.bias`, [outChannels]) : null;
    const phases: Value[] = [];
    for (const a of [0, 1]) {
      for (const c of [0, 1]) {
        const w = b.weight(`${name}.conv.weight`, [outChannels, channels, 3, 3], {
          derive: {
            name: `phase${a}${c}`,
            shape: [outChannels, channels, 2, 2],
            fn: (v) => subpixelPhaseKernel(v, outChannels, channels, a, c),
          },
        });
        phases.push(b.op("Conv", bs ? [x, w, bs] : [x, w], {
          kernel_shape: [2, 2],
          strides: [1, 1],
          pads: [1 - a, 1 - c, a, c],
          dilations: [1, 1],
          group: 1,
        }, { name: `${name}.conv/phase${a}${c}` }));
      }
    }
    // Channel block 2a + c holds phase (a, c): DCR puts it at output pixel (2i + a, 2j + c).
    return b.op("DepthToSpace", [b.op("Concat", phases, { axis: 1 })], { blocksize: 2, mode: "DCR" }, {
      name: `${name}/DepthToSpace`,
    });
  });
}

// ------------------------------------------------------------------------------------------------ resnet

/** Options of {@linkcode resnetBlock2D}; defaults are diffusers' `ResnetBlock2D.__init__` defaults. */
export interface ResnetBlock2DOptions {
  /** Module path (`"down_blocks.0.resnets.1"`). */
  name: string;
  inChannels: number;
  /** @default inChannels */
  outChannels?: number;
  /** Time embedding `[N, tembChannels]` in the compute type, or null/undefined for none (VAE blocks). */
  temb?: Value | null;
  /** Width of `temb`; required with `temb`, and `temb` is required with it (as in diffusers). */
  tembChannels?: number | null;
  /** @default 32 */
  groups?: number;
  /** @default groups */
  groupsOut?: number;
  /** @default 1e-6 */
  eps?: number;
  /** @default "swish" */
  nonLinearity?: string;
  /** Skip the activation on `temb` before `time_emb_proj`. @default false */
  skipTimeAct?: boolean;
  /** `"default"` (add) or `"scale_shift"` (`h·(1 + scale) + shift`). @default "default" */
  timeEmbeddingNorm?: "default" | "scale_shift";
  /** Output is `(shortcut + h) / outputScaleFactor`. @default 1 */
  outputScaleFactor?: number;
  /** Force or suppress the shortcut convolution. @default inChannels != conv2dOutChannels */
  useInShortcut?: boolean;
  /** @default true */
  convShortcutBias?: boolean;
  /** @default outChannels */
  conv2dOutChannels?: number;
  /** Nearest ×2 upsampling of both paths after the first activation (no FIR kernel support). @default false */
  up?: boolean;
  /** 2×2 average-pool downsampling of both paths after the first activation. @default false */
  down?: boolean;
}

/**
 * `ResnetBlock2D` (diffusers `resnet.py`): norm1 → act → [up/down] → conv1 → (+ time_emb_proj(act(temb))) → norm2 →
 * act → conv2, plus the (1×1 convolution) shortcut, divided by `output_scale_factor`.
 *
 * @throws {RangeError} on inconsistent channel/group settings or when `scale_shift` has no `temb`.
 */
export function resnetBlock2D(b: GraphBuilder, x: Value, options: ResnetBlock2DOptions): Value {
  const {
    name,
    temb = null,
    groups = 32,
    eps = 1e-6,
    nonLinearity = "swish",
    skipTimeAct = false,
    timeEmbeddingNorm = "default",
    outputScaleFactor = 1,
    convShortcutBias = true,
    up = false,
    down = false,
  } = options;
  const inC = checkInt(options.inChannels, `${name}: inChannels`);
  const outC = checkInt(options.outChannels ?? inC, `${name}: outChannels`);
  const groupsOut = options.groupsOut ?? groups;
  const conv2OutC = checkInt(options.conv2dOutChannels ?? outC, `${name}: conv2dOutChannels`);
  const tembChannels = options.tembChannels ?? null;
  checkPositive(outputScaleFactor, `${name}: outputScaleFactor`);
  if (timeEmbeddingNorm !== "default" && timeEmbeddingNorm !== "scale_shift") {
    throw new RangeError(
      `${name}: timeEmbeddingNorm must be "default" or "scale_shift": got ${JSON.stringify(timeEmbeddingNorm)}`,
    );
  }
  if (temb && tembChannels === null) throw new RangeError(`${name}: temb is given but tembChannels is not`);
  // diffusers applies time_emb_proj whenever temb_channels is set; it fails on a missing temb, and so do we.
  if (!temb && tembChannels !== null) {
    throw new RangeError(`${name}: tembChannels is ${tembChannels} but no temb is given`);
  }
  if (timeEmbeddingNorm === "scale_shift" && !temb) {
    throw new RangeError(`${name}: temb is required when timeEmbeddingNorm is "scale_shift"`);
  }
  if (up && down) throw new RangeError(`${name}: up and down cannot both be set`);
  const act = (v: Value) => activation(b, v, { fn: nonLinearity });
  return b.scope(name, () => {
    let input = x;
    let h = groupNormActivation(b, x, { name: `${name}.norm1`, channels: inC, groups, eps, fn: nonLinearity });
    if (up) {
      input = upsample2D(b, input, { name: `${name}.upsample_input`, channels: inC });
      h = upsample2D(b, h, { name: `${name}.upsample`, channels: inC });
    } else if (down) {
      input = downsample2D(b, input, { name: `${name}.downsample_input`, channels: inC });
      h = downsample2D(b, h, { name: `${name}.downsample`, channels: inC });
    }
    h = conv2d(b, h, { name: `${name}.conv1`, inChannels: inC, outChannels: outC, kernelSize: 3, padding: 1 });
    let t: Value | null = null;
    if (tembChannels !== null) {
      checkInt(tembChannels, `${name}: tembChannels`);
      const projOut = timeEmbeddingNorm === "scale_shift" ? 2 * outC : outC;
      const tin = skipTimeAct ? temb! : act(temb!);
      const proj = linear(b, tin, { name: `${name}.time_emb_proj`, inFeatures: tembChannels, outFeatures: projOut });
      // [:, :, None, None]
      t = b.op("Unsqueeze", [proj, b.constInt64([2, 3])]);
    }
    if (timeEmbeddingNorm === "default") {
      if (t) h = b.op("Add", [h, t]);
      h = groupNormActivation(b, h, {
        name: `${name}.norm2`,
        channels: outC,
        groups: groupsOut,
        eps,
        fn: nonLinearity,
      });
    } else {
      const [scale, shift] = b.opMulti("Split", [t!, b.constInt64([outC, outC])], 2, { axis: 1 });
      h = groupNorm(b, h, { name: `${name}.norm2`, channels: outC, groups: groupsOut, eps });
      h = b.op("Add", [b.op("Mul", [h, b.op("Add", [scale!, b.scalar(1, scale!.type)])]), shift!]);
      h = act(h);
    }
    h = conv2d(b, h, { name: `${name}.conv2`, inChannels: outC, outChannels: conv2OutC, kernelSize: 3, padding: 1 });
    const useInShortcut = options.useInShortcut ?? inC !== conv2OutC;
    if (useInShortcut) {
      input = conv2d(b, input, {
        name: `${name}.conv_shortcut`,
        inChannels: inC,
        outChannels: conv2OutC,
        kernelSize: 1,
        bias: convShortcutBias,
      });
    }
    let out = b.op("Add", [input, h]);
    if (outputScaleFactor !== 1) out = b.op("Div", [out, b.scalar(outputScaleFactor, out.type)]);
    return out;
  });
}

// ------------------------------------------------------------------------------------------------ attention

/** Options of {@linkcode multiHeadAttention}. */
export interface MultiHeadAttentionOptions {
  /** Keys `[N, Lk, heads·headDim]`. */
  key: Value;
  /** Values `[N, Lk, heads·headDim]`. */
  value: Value;
  heads: number;
  headDim: number;
  /** Score scale. @default headDim^-0.5 */
  scale?: number;
  /** Compute `q·kᵀ` in float32 in an fp16 graph (diffusers' `upcast_attention`). @default false */
  upcastAttention?: boolean;
}

/**
 * Scaled dot-product attention over heads: `[N, Lq, h·d]` queries → `[N, Lq, h·d]`, i.e.
 * `softmax(q·kᵀ·scale)·v` per head (`F.scaled_dot_product_attention` without mask or dropout). Softmax runs in
 * float32. In fp16, q and k are each scaled by √scale before the product so that the scores do not overflow.
 */
export function multiHeadAttention(b: GraphBuilder, query: Value, options: MultiHeadAttentionOptions): Value {
  const heads = checkInt(options.heads, "multiHeadAttention: heads");
  const headDim = checkInt(options.headDim, "multiHeadAttention: headDim");
  const scale = options.scale ?? headDim ** -0.5;
  // Fused: onnxruntime's MultiHeadAttention takes [N, L, heads·d] q/k/v as they are (no head transposes) and its
  // kernels keep the softmax in float32. upcast_attention in fp16 stays plain: it asks for float32 q·kᵀ explicitly.
  if (b.optimizations.attention && !(query.type === "float16" && options.upcastAttention)) {
    return b.op("MultiHeadAttention", [query, options.key, options.value], {
      num_heads: heads,
      scale: { float: scale },
    }, { domain: MS_DOMAIN });
  }
  const split = (v: Value, perm: number[]) =>
    b.op("Transpose", [b.op("Reshape", [v, b.constInt64([0, 0, heads, headDim])])], { perm });
  let q = split(query, [0, 2, 1, 3]); // [N, h, Lq, d]
  let kT = split(options.key, [0, 2, 3, 1]); // [N, h, d, Lk]
  const v = split(options.value, [0, 2, 1, 3]); // [N, h, Lk, d]
  let scores: Value;
  if (q.type === "float16" && !options.upcastAttention) {
    const s = Math.sqrt(scale);
    q = b.op("Mul", [q, b.scalar(s, "float16")]);
    kT = b.op("Mul", [kT, b.scalar(s, "float16")]);
    scores = b.cast(b.op("MatMul", [q, kT]), "float32");
  } else {
    q = b.op("Mul", [b.cast(q, "float32"), b.scalar(scale, "float32")]);
    scores = b.op("MatMul", [q, b.cast(kT, "float32")]);
  }
  const probs = b.cast(b.op("Softmax", [scores], { axis: -1 }), v.type);
  const out = b.op("MatMul", [probs, v]); // [N, h, Lq, d]
  return b.op("Reshape", [b.op("Transpose", [out], { perm: [0, 2, 1, 3] }), b.constInt64([0, 0, heads * headDim])]);
}

/** Options of {@linkcode attention}; defaults are diffusers' `Attention.__init__` defaults. */
export interface AttentionOptions {
  /** Module path (`"mid_block.attentions.0"`, `"...transformer_blocks.0.attn2"`). */
  name: string;
  /** Channels of the query input. */
  queryDim: number;
  /** 4 for `[N, C, H, W]` feature maps (flattened to `[N, H·W, C]` and back), 3 for `[N, L, C]` sequences. */
  inputRank: 3 | 4;
  /** @default 8 */
  heads?: number;
  /** @default 64 */
  dimHead?: number;
  /** Cross-attention context `[N, Lk, crossAttentionDim]` in the compute type; self-attention when absent. */
  encoderHiddenStates?: Value;
  /** @default queryDim */
  crossAttentionDim?: number;
  /** Bias of to_q/to_k/to_v. @default false */
  bias?: boolean;
  /** Bias of to_out.0. @default true */
  outBias?: boolean;
  /** GroupNorm `<name>.group_norm` before the projections (VAE/UNet2DModel attention). @default none */
  normNumGroups?: number | null;
  /** GroupNorm eps. @default 1e-5 */
  eps?: number;
  /** Add the input back. @default false */
  residualConnection?: boolean;
  /** Divide the output by this. @default 1 */
  rescaleOutputFactor?: number;
  /** Scale scores by dimHead^-0.5 (otherwise 1). @default true */
  scaleQk?: boolean;
  /** @default false */
  upcastAttention?: boolean;
  /** `out_dim`: heads = outDim / dimHead and to_out maps to outDim. @default queryDim */
  outDim?: number;
}

/**
 * diffusers `Attention` with `AttnProcessor2_0` (attention_processor.py): optional group norm, q/k/v projections,
 * multi-head scaled dot-product attention, `to_out.0`, optional residual and `rescale_output_factor`. Old checkpoints'
 * names (`query`, `key`, `value`, `proj_attn`) are accepted, as diffusers' `_convert_deprecated_attention_blocks`
 * does. Spatial norm, qk-norm, cross-attention norm and added KV projections are not supported.
 */
export function attention(b: GraphBuilder, x: Value, options: AttentionOptions): Value {
  const {
    name,
    inputRank,
    heads: headsOpt = 8,
    dimHead = 64,
    encoderHiddenStates,
    bias = false,
    outBias = true,
    normNumGroups = null,
    eps = 1e-5,
    residualConnection = false,
    rescaleOutputFactor = 1,
    scaleQk = true,
    upcastAttention = false,
  } = options;
  const queryDim = checkInt(options.queryDim, `${name}: queryDim`);
  checkInt(dimHead, `${name}: dimHead`);
  if (inputRank !== 3 && inputRank !== 4) throw new RangeError(`${name}: inputRank must be 3 or 4: got ${inputRank}`);
  const crossDim = checkInt(options.crossAttentionDim ?? queryDim, `${name}: crossAttentionDim`);
  const outDim = options.outDim ?? queryDim;
  const heads = options.outDim !== undefined ? Math.floor(outDim / dimHead) : checkInt(headsOpt, `${name}: heads`);
  const innerDim = options.outDim !== undefined ? outDim : dimHead * heads;
  checkPositive(rescaleOutputFactor, `${name}: rescaleOutputFactor`);
  return b.scope(name, () => {
    const residual = x;
    let h = x;
    if (normNumGroups !== null) {
      // diffusers normalises hidden_states.transpose(1, 2), i.e. [N, C, L]: the same groups as on [N, C, H, W].
      h = groupNorm(b, h, {
        name: `${name}.group_norm`,
        channels: queryDim,
        groups: normNumGroups,
        eps,
        rank: inputRank,
      });
    }
    if (inputRank === 4) {
      // view(N, C, H·W).transpose(1, 2)
      h = b.op("Transpose", [b.op("Reshape", [h, b.constInt64([0, queryDim, -1])])], { perm: [0, 2, 1] });
    }
    const context = encoderHiddenStates ?? h;
    const kvDim = encoderHiddenStates ? crossDim : queryDim;
    const q = linear(b, h, {
      name: `${name}.to_q`,
      inFeatures: queryDim,
      outFeatures: innerDim,
      bias,
      aliases: [`${name}.query`],
    });
    const k = linear(b, context, {
      name: `${name}.to_k`,
      inFeatures: kvDim,
      outFeatures: innerDim,
      bias,
      aliases: [`${name}.key`],
    });
    const v = linear(b, context, {
      name: `${name}.to_v`,
      inFeatures: kvDim,
      outFeatures: innerDim,
      bias,
      aliases: [`${name}.value`],
    });
    const scale = scaleQk ? dimHead ** -0.5 : 1;
    let out = multiHeadAttention(b, q, { key: k, value: v, heads, headDim: dimHead, scale, upcastAttention });
    out = linear(b, out, {
      name: `${name}.to_out.0`,
      inFeatures: innerDim,
      outFeatures: outDim,
      bias: outBias,
      aliases: [`${name}.proj_attn`],
    });
    if (inputRank === 4) {
      // transpose(-1, -2).reshape(N, C, H, W)
      out = b.op("Reshape", [b.op("Transpose", [out], { perm: [0, 2, 1] }), b.shape(residual)]);
    }
    if (residualConnection) out = b.op("Add", [out, residual]);
    if (rescaleOutputFactor !== 1) out = b.op("Div", [out, b.scalar(rescaleOutputFactor, out.type)]);
    return out;
  });
}

// ------------------------------------------------------------------------------------------------ feed-forward

/** FeedForward activations diffusers supports (`attention.py`). */
export const FEED_FORWARD_ACTIVATIONS: readonly string[] = [
  "geglu",
  "gelu",
  "gelu-approximate",
  "geglu-approximate",
  "swiglu",
  "linear-silu",
];

/** Options of {@linkcode feedForward}; defaults are diffusers' `FeedForward.__init__` defaults. */
export interface FeedForwardOptions {
  /** Module path; weights `<name>.net.0.proj.*` and `<name>.net.2.*`. */
  name: string;
  dim: number;
  /** @default dim */
  dimOut?: number;
  /** @default 4 */
  mult?: number;
  /** One of {@linkcode FEED_FORWARD_ACTIVATIONS}. @default "geglu" */
  activationFn?: string;
  /** @default floor(dim·mult) */
  innerDim?: number;
  /** @default true */
  bias?: boolean;
}

/**
 * diffusers `FeedForward` (attention.py) on `[N, L, dim]`: `net.0` (GELU/GEGLU/... projection) → `net.2` Linear.
 * GEGLU splits the projection into `hidden, gate` and returns `hidden·gelu(gate)` (activations.py).
 *
 * With the `geglu` fusion: `BiasSplitGelu` after a bias-free projection (webgpu, and cuda for the widths its kernel
 * has), or, on cpu, the projection stored as two weights (its hidden and gate rows) so that no Split runs and the
 * gate's bias and GELU are one `BiasGelu`.
 */
export function feedForward(b: GraphBuilder, x: Value, options: FeedForwardOptions): Value {
  const { name, mult = 4, activationFn = "geglu", bias = true } = options;
  const dim = checkInt(options.dim, `${name}: dim`);
  const dimOut = checkInt(options.dimOut ?? dim, `${name}: dimOut`);
  const inner = checkInt(options.innerDim ?? Math.trunc(dim * mult), `${name}: innerDim`);
  const proj = `${name}.net.0.proj`;
  return b.scope(name, () => {
    let h: Value;
    const gated = (fn: (g: Value) => Value) => {
      const p = linear(b, x, { name: proj, inFeatures: dim, outFeatures: 2 * inner, bias });
      const [hidden, gate] = b.opMulti("Split", [p, b.constInt64([inner, inner])], 2, { axis: -1 });
      return b.op("Mul", [hidden!, fn(gate!)]);
    };
    const fused = activationFn === "geglu" ? b.optimizations.geglu : "plain";
    const splitGeluOk = fused === "bias-split-gelu" &&
      (b.optimizations.target !== "cuda" || CUDA_BIAS_SPLIT_GELU_SIZES.includes(2 * inner));
    if (splitGeluOk) {
      const p = linear(b, x, { name: proj, inFeatures: dim, outFeatures: 2 * inner, bias: false });
      const pb = bias
        ? b.weight(`${proj}.bias`, [2 * inner])
        : b.constant(new Float32Array(2 * inner), [2 * inner], b.computeType);
      h = b.op("BiasSplitGelu", [p, pb], {}, { name: `${proj}/BiasSplitGelu`, domain: MS_DOMAIN });
      return linear(b, h, { name: `${name}.net.2`, inFeatures: inner, outFeatures: dimOut, bias });
    }
    if (fused !== "plain") {
      // hidden = x·W[:inner]ᵀ + b[:inner]; gate = gelu(x·W[inner:]ᵀ + b[inner:]) as BiasGelu.
      const half = (rows: [number, number]) =>
        b.weight(`${proj}.weight`, [2 * inner, dim], { transpose: true, rows, acceptShapes: [[2 * inner, dim, 1, 1]] });
      let hidden = b.op("MatMul", [x, half([0, inner])], {}, { name: `${proj}/hidden` });
      const gateIn = b.op("MatMul", [x, half([inner, 2 * inner])], {}, { name: `${proj}/gate` });
      let gate: Value;
      if (bias) {
        hidden = b.op("Add", [hidden, b.weight(`${proj}.bias`, [2 * inner], { rows: [0, inner] })]);
        const gateBias = b.weight(`${proj}.bias`, [2 * inner], { rows: [inner, 2 * inner] });
        gate = b.op("BiasGelu", [gateIn, gateBias], {}, { name: `${proj}/BiasGelu`, domain: MS_DOMAIN });
      } else {
        gate = b.op("Gelu", [gateIn], {}, { name: `${proj}/Gelu`, domain: MS_DOMAIN });
      }
      h = b.op("Mul", [hidden, gate]);
      return linear(b, h, { name: `${name}.net.2`, inFeatures: inner, outFeatures: dimOut, bias });
    }
    switch (activationFn) {
      case "gelu":
        h = gelu(b, linear(b, x, { name: proj, inFeatures: dim, outFeatures: inner, bias }));
        break;
      case "gelu-approximate":
        h = geluTanh(b, linear(b, x, { name: proj, inFeatures: dim, outFeatures: inner, bias }));
        break;
      case "geglu":
        h = gated((g) => gelu(b, g));
        break;
      case "swiglu":
        h = gated((g) => activation(b, g, { fn: "silu" }));
        break;
      case "geglu-approximate": {
        // ApproximateGELU: x·σ(1.702·x)
        const p = linear(b, x, { name: proj, inFeatures: dim, outFeatures: inner, bias });
        h = b.op("Mul", [p, b.op("Sigmoid", [b.op("Mul", [p, b.scalar(1.702, p.type)])])]);
        break;
      }
      case "linear-silu":
        h = activation(b, linear(b, x, { name: proj, inFeatures: dim, outFeatures: inner, bias }), { fn: "silu" });
        break;
      default:
        throw new RangeError(
          `${name}: activationFn must be one of ${FEED_FORWARD_ACTIVATIONS.join(", ")}: got ${
            JSON.stringify(activationFn)
          }`,
        );
    }
    return linear(b, h, { name: `${name}.net.2`, inFeatures: inner, outFeatures: dimOut, bias });
  });
}

// ------------------------------------------------------------------------------------------------ time embedding

/** The float32 frequencies `exp(-ln(maxPeriod)·j / (half - shift))`, j < half, rounded as torch computes them. */
export function timestepFrequencies(numChannels: number, downscaleFreqShift: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(numChannels / 2);
  const f = Math.fround;
  // embeddings.py get_timestep_embedding: a float32 arange times the python float -ln(max_period), then divided by
  // (half_dim - downscale_freq_shift), then exp, all in float32.
  const negLog = f(-Math.log(maxPeriod));
  const denom = f(half - downscaleFreqShift);
  const out = new Float32Array(half);
  for (let j = 0; j < half; j++) out[j] = f(Math.exp(f(f(negLog * j) / denom)));
  return out;
}

/** Options of {@linkcode timestepProjection}; the fields of diffusers' `Timesteps`. */
export interface TimestepProjectionOptions {
  /** Node scope. @default "time_proj" */
  name?: string;
  /** Embedding width. */
  numChannels: number;
  /** Order `[cos, sin]` instead of `[sin, cos]`. */
  flipSinToCos: boolean;
  downscaleFreqShift: number;
  /** @default 1 */
  scale?: number;
  /** @default 10000 */
  maxPeriod?: number;
}

/**
 * `Timesteps` / `get_timestep_embedding` (embeddings.py): float32 timesteps `[N]` → float32 `[N, numChannels]`
 * sinusoidal embedding. Always float32 (fp16 cannot resolve `t·freq` for t up to 1000); cast the result with
 * `b.toCompute` before the linear layers.
 */
export function timestepProjection(b: GraphBuilder, timesteps: Value, options: TimestepProjectionOptions): Value {
  const { name = "time_proj", scale = 1, maxPeriod = 10000, flipSinToCos, downscaleFreqShift } = options;
  const numChannels = checkInt(options.numChannels, `${name}: numChannels`, 2);
  if (typeof downscaleFreqShift !== "number" || !Number.isFinite(downscaleFreqShift)) {
    throw new RangeError(`${name}: downscaleFreqShift must be a finite number: got ${downscaleFreqShift}`);
  }
  const half = Math.floor(numChannels / 2);
  if (half - downscaleFreqShift === 0) {
    throw new RangeError(`${name}: numChannels/2 - downscaleFreqShift must not be 0 (numChannels ${numChannels})`);
  }
  return b.scope(name, () => {
    const t = b.op("Unsqueeze", [b.cast(timesteps, "float32"), b.constInt64([1])]);
    const freqs = b.constant(timestepFrequencies(numChannels, downscaleFreqShift, maxPeriod), [1, half], "float32");
    let emb = b.op("Mul", [t, freqs]);
    if (scale !== 1) emb = b.op("Mul", [emb, b.scalar(scale, "float32")]);
    const sin = b.op("Sin", [emb]);
    const cos = b.op("Cos", [emb]);
    let out = b.op("Concat", flipSinToCos ? [cos, sin] : [sin, cos], { axis: -1 });
    if (numChannels % 2 === 1) out = b.op("Pad", [out, b.constInt64([0, 0, 0, 1])], { mode: "constant" });
    return out;
  });
}

/** Options of {@linkcode timestepEmbedding}; the fields of diffusers' `TimestepEmbedding`. */
export interface TimestepEmbeddingOptions {
  /** Module path. @default "time_embedding" */
  name?: string;
  inChannels: number;
  timeEmbedDim: number;
  /** @default "silu" */
  actFn?: string | null;
  /** @default timeEmbedDim */
  outDim?: number;
  /** @default none */
  postActFn?: string | null;
  /** `cond_proj` input width; needs `condition`. */
  condProjDim?: number | null;
  /** Condition `[N, condProjDim]` added through `cond_proj` (no bias). */
  condition?: Value;
  /** @default true */
  sampleProjBias?: boolean;
}

/** `TimestepEmbedding` (embeddings.py): `linear_1 → act → linear_2 [→ post_act]`, in the compute type. */
export function timestepEmbedding(b: GraphBuilder, x: Value, options: TimestepEmbeddingOptions): Value {
  const { name = "time_embedding", actFn = "silu", postActFn = null, condProjDim = null, sampleProjBias = true } =
    options;
  const inC = checkInt(options.inChannels, `${name}: inChannels`);
  const dim = checkInt(options.timeEmbedDim, `${name}: timeEmbedDim`);
  const outDim = checkInt(options.outDim ?? dim, `${name}: outDim`);
  return b.scope(name, () => {
    let h = b.toCompute(x);
    if (condProjDim !== null) {
      if (!options.condition) throw new RangeError(`${name}: condProjDim is set but no condition is given`);
      const c = linear(b, b.toCompute(options.condition), {
        name: `${name}.cond_proj`,
        inFeatures: checkInt(condProjDim, `${name}: condProjDim`),
        outFeatures: inC,
        bias: false,
      });
      h = b.op("Add", [h, c]);
    }
    h = linear(b, h, { name: `${name}.linear_1`, inFeatures: inC, outFeatures: dim, bias: sampleProjBias });
    if (actFn !== null) h = activation(b, h, { fn: actFn });
    h = linear(b, h, { name: `${name}.linear_2`, inFeatures: dim, outFeatures: outDim, bias: sampleProjBias });
    if (postActFn !== null) h = activation(b, h, { fn: postActFn });
    return h;
  });
}

// ------------------------------------------------------------------------------------------------ mid block

/** Options of {@linkcode unetMidBlock2D}; defaults are diffusers' `UNetMidBlock2D.__init__` defaults. */
export interface UNetMidBlock2DOptions {
  /** Module path. @default "mid_block" */
  name?: string;
  inChannels: number;
  /** Time embedding in the compute type (UNet2DModel) or none (VAE). */
  temb?: Value | null;
  tembChannels: number | null;
  /** @default 1 */
  numLayers?: number;
  /** @default 1e-6 */
  resnetEps?: number;
  /** `"default"` or `"scale_shift"` ("spatial" is not supported). @default "default" */
  resnetTimeScaleShift?: "default" | "scale_shift";
  /** @default "swish" */
  resnetActFn?: string;
  /** null → min(inChannels / 4, 32). @default 32 */
  resnetGroups?: number | null;
  /** @default resnetGroups when resnetTimeScaleShift is "default", else no group norm */
  attnGroups?: number | null;
  /** @default true */
  addAttention?: boolean;
  /** Channels per head; null means inChannels. @default 1 */
  attentionHeadDim?: number | null;
  /** @default 1 */
  outputScaleFactor?: number;
}

/**
 * `UNetMidBlock2D` (unet_2d_blocks.py): `resnets.0`, then per layer `attentions.i` (group-norm attention with
 * residual, `heads = inChannels / attentionHeadDim`) and `resnets.i+1`.
 */
export function unetMidBlock2D(b: GraphBuilder, x: Value, options: UNetMidBlock2DOptions): Value {
  const {
    name = "mid_block",
    temb = null,
    tembChannels,
    numLayers = 1,
    resnetEps = 1e-6,
    resnetTimeScaleShift = "default",
    resnetActFn = "swish",
    addAttention = true,
    outputScaleFactor = 1,
  } = options;
  const inC = checkInt(options.inChannels, `${name}: inChannels`);
  checkInt(numLayers, `${name}: numLayers`, 0);
  const resnetGroups = options.resnetGroups ?? Math.min(Math.floor(inC / 4), 32);
  const attnGroups = options.attnGroups !== undefined && options.attnGroups !== null
    ? options.attnGroups
    : resnetTimeScaleShift === "default"
    ? resnetGroups
    : null;
  const headDim = checkInt(options.attentionHeadDim ?? inC, `${name}: attentionHeadDim`);
  const resnet = (v: Value, i: number) =>
    resnetBlock2D(b, v, {
      name: `${name}.resnets.${i}`,
      inChannels: inC,
      outChannels: inC,
      temb,
      tembChannels,
      eps: resnetEps,
      groups: resnetGroups,
      timeEmbeddingNorm: resnetTimeScaleShift,
      nonLinearity: resnetActFn,
      outputScaleFactor,
    });
  let h = resnet(x, 0);
  for (let i = 0; i < numLayers; i++) {
    if (addAttention) {
      h = attention(b, h, {
        name: `${name}.attentions.${i}`,
        queryDim: inC,
        inputRank: 4,
        heads: Math.floor(inC / headDim),
        dimHead: headDim,
        rescaleOutputFactor: outputScaleFactor,
        eps: resnetEps,
        normNumGroups: attnGroups,
        residualConnection: true,
        bias: true,
      });
    }
    h = resnet(h, i + 1);
  }
  return h;
}

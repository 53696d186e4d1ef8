/**
 * Test helpers for the UNet graphs: the diffusers state-dict (parameter names and shapes) a UNet config implies,
 * enumerated from the module constructors in `unet_2d_condition.py`, `unet_2d.py`, `unet_2d_blocks.py`,
 * `transformer_2d.py` and `attention.py` (checked against the tiny checkpoints' files by the tests), and weight
 * sources built from it: lazily zero (for real-size configurations, never read unless serialised) or seeded random.
 *
 * @module
 */
import type { WeightInfo, WeightSource } from "./builder.ts";
import type { UNet2DConditionConfig } from "./unet_2d_condition.ts";
import type { UNet2DConfig } from "./unet_2d.ts";
import { addRandomWeights, MemoryWeights, seededRandom } from "./_test_utils.ts";

/** Parameter names and torch shapes, in no particular order. */
export type ParamSpec = [string, number[]][];

class SpecWriter {
  readonly spec: ParamSpec = [];
  p(name: string, shape: number[]): void {
    this.spec.push([name, shape]);
  }
  conv(name: string, inC: number, outC: number, k: number): void {
    this.p(`${name}.weight`, [outC, inC, k, k]);
    this.p(`${name}.bias`, [outC]);
  }
  linear(name: string, inF: number, outF: number, bias = true): void {
    this.p(`${name}.weight`, [outF, inF]);
    if (bias) this.p(`${name}.bias`, [outF]);
  }
  norm(name: string, c: number): void {
    this.p(`${name}.weight`, [c]);
    this.p(`${name}.bias`, [c]);
  }
  /** ResnetBlock2D (resnet.py). */
  resnet(name: string, inC: number, outC: number, temb: number): void {
    this.norm(`${name}.norm1`, inC);
    this.conv(`${name}.conv1`, inC, outC, 3);
    this.linear(`${name}.time_emb_proj`, temb, outC);
    this.norm(`${name}.norm2`, outC);
    this.conv(`${name}.conv2`, outC, outC, 3);
    if (inC !== outC) this.conv(`${name}.conv_shortcut`, inC, outC, 1);
  }
  /** Attention (attention_processor.py); `qkvBias` for the deprecated spatial blocks. */
  attention(name: string, queryDim: number, kvDim: number, inner: number, qkvBias: boolean): void {
    this.linear(`${name}.to_q`, queryDim, inner, qkvBias);
    this.linear(`${name}.to_k`, kvDim, inner, qkvBias);
    this.linear(`${name}.to_v`, kvDim, inner, qkvBias);
    this.linear(`${name}.to_out.0`, inner, queryDim);
  }
  /** Transformer2DModel with BasicTransformerBlocks and a GEGLU FeedForward (mult 4). */
  transformer(
    name: string,
    c: number,
    heads: number,
    layers: number,
    cross: number | null,
    linearProj: boolean,
    onlyCross: boolean,
  ): void {
    const inner = heads * Math.floor(c / heads);
    this.norm(`${name}.norm`, c);
    if (linearProj) this.linear(`${name}.proj_in`, c, inner);
    else this.conv(`${name}.proj_in`, c, inner, 1);
    for (let l = 0; l < layers; l++) {
      const t = `${name}.transformer_blocks.${l}`;
      this.norm(`${t}.norm1`, inner);
      this.attention(`${t}.attn1`, inner, onlyCross ? cross! : inner, inner, false);
      if (cross !== null) {
        this.norm(`${t}.norm2`, inner);
        this.attention(`${t}.attn2`, inner, cross, inner, false);
      }
      this.norm(`${t}.norm3`, inner);
      this.linear(`${t}.ff.net.0.proj`, inner, inner * 8);
      this.linear(`${t}.ff.net.2`, inner * 4, inner);
    }
    if (linearProj) this.linear(`${name}.proj_out`, inner, c);
    else this.conv(`${name}.proj_out`, inner, c, 1);
  }
  /** The `_from_deprecated_attn_block` spatial attention of AttnDown/UpBlock2D and UNetMidBlock2D. */
  spatial(name: string, c: number, headDim: number): void {
    this.norm(`${name}.group_norm`, c);
    this.attention(name, c, c, Math.floor(c / headDim) * headDim, true);
  }
}

type Attn = (w: SpecWriter, name: string, c: number, block: number) => void;

/** The down path, mid block and up path shared by both UNets; `attn(i)` returns the block's attention or null. */
function unetSpec(
  w: SpecWriter,
  o: {
    inChannels: number;
    outChannels: number;
    channels: readonly number[];
    layers: readonly number[];
    temb: number;
    downAttn: (i: number) => Attn | null;
    upAttn: (i: number) => Attn | null;
    mid: (w: SpecWriter, c: number) => void;
  },
): void {
  const n = o.channels.length;
  const c0 = o.channels[0]!;
  w.conv("conv_in", o.inChannels, c0, 3);
  w.linear("time_embedding.linear_1", c0, o.temb);
  w.linear("time_embedding.linear_2", o.temb, o.temb);
  let out = c0;
  for (let i = 0; i < n; i++) {
    const inC = out;
    out = o.channels[i]!;
    const attn = o.downAttn(i);
    for (let j = 0; j < o.layers[i]!; j++) {
      w.resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? inC : out, out, o.temb);
      attn?.(w, `down_blocks.${i}.attentions.${j}`, out, i);
    }
    if (i < n - 1) w.conv(`down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  }
  o.mid(w, o.channels[n - 1]!);
  const rev = [...o.channels].reverse();
  const revLayers = [...o.layers].reverse();
  out = rev[0]!;
  for (let i = 0; i < n; i++) {
    const prev = out;
    out = rev[i]!;
    const inC = rev[Math.min(i + 1, n - 1)]!;
    const attn = o.upAttn(i);
    const L = revLayers[i]! + 1;
    for (let j = 0; j < L; j++) {
      const skip = j === L - 1 ? inC : out;
      w.resnet(`up_blocks.${i}.resnets.${j}`, (j === 0 ? prev : out) + skip, out, o.temb);
      attn?.(w, `up_blocks.${i}.attentions.${j}`, out, n - 1 - i);
    }
    if (i < n - 1) w.conv(`up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  }
  w.norm("conv_norm_out", c0);
  w.conv("conv_out", c0, o.outChannels, 3);
}

/** The state-dict names and shapes of a `UNet2DConditionModel` with config `c` (3×3 conv_in/conv_out only). */
export function unet2DConditionParams(c: UNet2DConditionConfig): ParamSpec {
  if (c.convInKernel !== 3 || c.convOutKernel !== 3) throw new Error("unet2DConditionParams: 3×3 conv_in/out only");
  const w = new SpecWriter();
  const cross = (onlyCross: (d: number) => boolean): Attn => (w, name, ch, d) =>
    w.transformer(
      name,
      ch,
      c.numAttentionHeads[d]!,
      c.transformerLayersPerBlock[d]!,
      c.crossAttentionDim[d]!,
      c.useLinearProjection,
      onlyCross(d),
    );
  const n = c.blockOutChannels.length;
  unetSpec(w, {
    inChannels: c.inChannels,
    outChannels: c.outChannels,
    channels: c.blockOutChannels,
    layers: c.layersPerBlock,
    temb: c.timeEmbedDim,
    downAttn: (i) => c.downBlockTypes[i] === "CrossAttnDownBlock2D" ? cross((d) => c.onlyCrossAttention[d]!) : null,
    upAttn: (i) => c.upBlockTypes[i] === "CrossAttnUpBlock2D" ? cross((d) => c.onlyCrossAttention[d]!) : null,
    mid: (w, ch) => {
      if (c.midBlockType === null) return;
      w.resnet("mid_block.resnets.0", ch, ch, c.timeEmbedDim);
      if (c.midBlockType === "UNetMidBlock2D") return;
      cross(() => false)(w, "mid_block.attentions.0", ch, n - 1);
      w.resnet("mid_block.resnets.1", ch, ch, c.timeEmbedDim);
    },
  });
  return w.spec;
}

/** The state-dict names and shapes of a `UNet2DModel` with config `c`. */
export function unet2DParams(c: UNet2DConfig): ParamSpec {
  const w = new SpecWriter();
  const spatial: Attn = (w, name, ch) => w.spatial(name, ch, c.attentionHeadDim ?? ch);
  unetSpec(w, {
    inChannels: c.inChannels,
    outChannels: c.outChannels,
    channels: c.blockOutChannels,
    layers: c.blockOutChannels.map(() => c.layersPerBlock),
    temb: c.timeEmbedDim,
    downAttn: (i) => c.downBlockTypes[i] === "AttnDownBlock2D" ? spatial : null,
    upAttn: (i) => c.upBlockTypes[i] === "AttnUpBlock2D" ? spatial : null,
    mid: (w, ch) => {
      if (c.midBlockType === null) return;
      w.resnet("mid_block.resnets.0", ch, ch, c.timeEmbedDim);
      if (c.addAttention) w.spatial("mid_block.attentions.0", ch, c.attentionHeadDim ?? ch);
      w.resnet("mid_block.resnets.1", ch, ch, c.timeEmbedDim);
    },
  });
  return w.spec;
}

/** Options of {@linkcode transformer2DParams}. */
export interface TransformerParamsOptions {
  channels: number;
  heads: number;
  layers: number;
  /** Context width, or null for no attn2. */
  cross: number | null;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
}

/** The state-dict names and shapes of one `Transformer2DModel` at module path `name`. */
export function transformer2DParams(name: string, o: TransformerParamsOptions): ParamSpec {
  const w = new SpecWriter();
  w.transformer(name, o.channels, o.heads, o.layers, o.cross, o.useLinearProjection, o.onlyCrossAttention);
  return w.spec;
}

/** Number of parameters (elements) in a spec. */
export function countParams(spec: ParamSpec): number {
  return spec.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * A weight source that knows the names and shapes of `spec` and returns zeros only when a tensor is actually read,
 * so a real-size graph can be built (and counted) without allocating its weights.
 */
export class LazyZeroWeights implements WeightSource {
  readonly #shapes: Map<string, number[]>;
  /** Number of `readFloat32` calls so far. */
  reads = 0;
  constructor(spec: ParamSpec) {
    this.#shapes = new Map(spec);
  }
  has(name: string): boolean {
    return this.#shapes.has(name);
  }
  info(name: string): WeightInfo {
    const shape = this.#shapes.get(name);
    if (!shape) throw new RangeError(`no tensor '${name}'`);
    return { dtype: "F32", shape, byteLength: 4 * shape.reduce((a, b) => a * b, 1) };
  }
  readFloat32(name: string): Promise<Float32Array> {
    this.reads++;
    const { shape } = this.info(name);
    return Promise.resolve(new Float32Array(shape.reduce((a, b) => a * b, 1)));
  }
}

/** Seeded random weights for every parameter of `spec` (norm scales near 1, others ±1/√fan-in). */
export function randomWeights(spec: ParamSpec, seed: number): MemoryWeights {
  return addRandomWeights(new MemoryWeights(), spec, seededRandom(seed));
}

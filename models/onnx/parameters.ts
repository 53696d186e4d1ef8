/**
 * The diffusers state dicts (parameter names and torch shapes) that UNet and VAE configs imply, enumerated from the
 * module constructors in `unet_2d_condition.py`, `unet_2d.py`, `unet_2d_blocks.py`, `transformer_2d.py`,
 * `attention.py` and `vae.py` (checked against the tiny checkpoints' files by the tests), and weight sources built from
 * them without a checkpoint: {@linkcode LazyZeroWeights} (zeros, for dry runs at real size) and
 * {@linkcode SyntheticWeights} (seeded values generated on read, for benchmarks at real size: `bench/graphs.ts` builds
 * `CompVis/ldm-text2im-large-256`'s UNet and VAE decoder this way).
 *
 * @module
 */
import type { WeightInfo, WeightSource } from "./builder.ts";
import type { UNet2DConditionConfig } from "./unet_2d_condition.ts";
import type { UNet2DConfig } from "./unet_2d.ts";
import type { VaeConfig } from "./_vae.ts";

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
  /** Channels of the feature map (= inner width). */
  channels: number;
  /** Attention heads. */
  heads: number;
  /** BasicTransformerBlocks. */
  layers: number;
  /** Context width, or null for no attn2. */
  cross: number | null;
  /** Linear instead of 1×1-conv `proj_in`/`proj_out`. */
  useLinearProjection: boolean;
  /** `attn1` attends to the context. */
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

/** `WeightSource.info` of the spec weight sources below: float32, torch shape. */
function specInfo(shapes: ReadonlyMap<string, number[]>, name: string): WeightInfo {
  const shape = shapes.get(name);
  if (!shape) throw new RangeError(`no tensor '${name}'`);
  return { dtype: "F32", shape, byteLength: 4 * shape.reduce((a, b) => a * b, 1) };
}

/**
 * A weight source that knows the names and shapes of `spec` and returns zeros only when a tensor is actually read,
 * so a real-size graph can be built (and counted) without allocating its weights.
 */
export class LazyZeroWeights implements WeightSource {
  readonly #shapes: Map<string, number[]>;
  /** Number of `readFloat32` calls so far. */
  reads = 0;
  /** A source over the names and torch shapes of `spec`. */
  constructor(spec: ParamSpec) {
    this.#shapes = new Map(spec);
  }
  /** Whether `name` is in the spec. */
  has(name: string): boolean {
    return this.#shapes.has(name);
  }
  /** Shape of `name` (dtype "F32"). @throws {RangeError} for a name not in the spec. */
  info(name: string): WeightInfo {
    return specInfo(this.#shapes, name);
  }
  readFloat32(name: string): Promise<Float32Array> {
    this.reads++;
    const { shape } = this.info(name);
    return Promise.resolve(new Float32Array(shape.reduce((a, b) => a * b, 1)));
  }
}

/** FNV-1a of a tensor name mixed with a seed: every tensor's values depend only on (seed, name). */
function hashName(name: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * A weight source of seeded random values for the names and shapes of `spec`, generated when a tensor is read (so
 * a real-size graph can be serialised tensor by tensor without a checkpoint). Values are scaled like an initialised
 * network so that activations stay finite in fp16: norm scales `1 ± 0.1`, other weights uniform in `±1/√fan_in`,
 * biases (1-D) in `±0.05`.
 */
export class SyntheticWeights implements WeightSource {
  readonly #shapes: Map<string, number[]>;
  readonly #seed: number;
  /** Number of `readFloat32` calls so far. */
  reads = 0;
  /** A source over the names and torch shapes of `spec`; another `seed` gives other values. */
  constructor(spec: ParamSpec, seed = 0) {
    this.#shapes = new Map(spec);
    this.#seed = seed >>> 0;
  }
  /** Whether `name` is in the spec. */
  has(name: string): boolean {
    return this.#shapes.has(name);
  }
  /** Shape of `name` (dtype "F32"). @throws {RangeError} for a name not in the spec. */
  info(name: string): WeightInfo {
    return specInfo(this.#shapes, name);
  }
  /** The tensor's values, generated now (the same on every call); rejects like `info` for an unknown name. */
  readFloat32(name: string): Promise<Float32Array> {
    const shape = this.#shapes.get(name);
    if (!shape) return Promise.reject(new RangeError(`no tensor '${name}'`));
    this.reads++;
    const n = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    let s = hashName(name, this.#seed);
    const isNormScale = /norm[^.]*\.weight$/.test(name);
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 0;
    const scale = shape.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.05;
    for (let i = 0; i < n; i++) {
      // mulberry32
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      out[i] = isNormScale ? 1 + (u - 0.5) * 0.2 : (u * 2 - 1) * scale;
    }
    return Promise.resolve(out);
  }
}

// ------------------------------------------------------------------------------------------------ VAEs

function vaeConv(name: string, o: number, i: number, k: number): ParamSpec {
  return [[`${name}.weight`, [o, i, k, k]], [`${name}.bias`, [o]]];
}
function vaeNorm(name: string, c: number): ParamSpec {
  return [[`${name}.weight`, [c]], [`${name}.bias`, [c]]];
}
function vaeResnet(name: string, i: number, o: number): ParamSpec {
  const s = [
    ...vaeNorm(`${name}.norm1`, i),
    ...vaeConv(`${name}.conv1`, o, i, 3),
    ...vaeNorm(`${name}.norm2`, o),
    ...vaeConv(`${name}.conv2`, o, o, 3),
  ];
  return i === o ? s : [...s, ...vaeConv(`${name}.conv_shortcut`, o, i, 1)];
}
function vaeAttn(name: string, c: number): ParamSpec {
  const s: ParamSpec = [...vaeNorm(`${name}.group_norm`, c)];
  for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) {
    s.push([`${name}.${p}.weight`, [c, c]], [`${name}.${p}.bias`, [c]]);
  }
  return s;
}
function vaeMid(name: string, c: number, withAttention: boolean): ParamSpec {
  return [
    ...vaeResnet(`${name}.resnets.0`, c, c),
    ...(withAttention ? vaeAttn(`${name}.attentions.0`, c) : []),
    ...vaeResnet(`${name}.resnets.1`, c, c),
  ];
}

/**
 * The state dict (names and torch shapes) of an AutoencoderKL (`kind: "kl"`) or VQModel (`"vq"`) for a resolved
 * config: Encoder, Decoder and the quantisation layers, listed from the module structure of diffusers' `vae.py` and
 * `unet_2d_blocks.py`.
 */
export function vaeParameterSpec(
  cfg: VaeConfig & { useQuantConv?: boolean; usePostQuantConv?: boolean },
  kind: "kl" | "vq",
  vq: { numEmbeddings: number; embedDim: number } = { numEmbeddings: 0, embedDim: 0 },
): ParamSpec {
  const boc = cfg.blockOutChannels;
  const s: ParamSpec = [...vaeConv("encoder.conv_in", boc[0]!, cfg.inChannels, 3)];
  let out = boc[0]!;
  cfg.downBlockTypes.forEach((type, i) => {
    const inC = out;
    out = boc[i]!;
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      s.push(...vaeResnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? inC : out, out));
      if (type.includes("Attn")) s.push(...vaeAttn(`encoder.down_blocks.${i}.attentions.${j}`, out));
    }
    if (i < boc.length - 1) s.push(...vaeConv(`encoder.down_blocks.${i}.downsamplers.0.conv`, out, out, 3));
  });
  const top = boc.at(-1)!;
  s.push(...vaeMid("encoder.mid_block", top, cfg.midBlockAddAttention), ...vaeNorm("encoder.conv_norm_out", top));
  const lc = cfg.latentChannels;
  s.push(...vaeConv("encoder.conv_out", kind === "kl" ? 2 * lc : lc, top, 3));
  s.push(...vaeConv("decoder.conv_in", top, lc, 3), ...vaeMid("decoder.mid_block", top, cfg.midBlockAddAttention));
  const rev = [...boc].reverse();
  out = rev[0]!;
  cfg.upBlockTypes.forEach((type, i) => {
    const inC = out;
    out = rev[i]!;
    for (let j = 0; j < cfg.layersPerBlock + 1; j++) {
      s.push(...vaeResnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? inC : out, out));
      if (type.includes("Attn")) s.push(...vaeAttn(`decoder.up_blocks.${i}.attentions.${j}`, out));
    }
    if (i < boc.length - 1) s.push(...vaeConv(`decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3));
  });
  s.push(...vaeNorm("decoder.conv_norm_out", boc[0]!), ...vaeConv("decoder.conv_out", cfg.outChannels, boc[0]!, 3));
  if (kind === "kl") {
    if (cfg.useQuantConv !== false) s.push(...vaeConv("quant_conv", 2 * lc, 2 * lc, 1));
    if (cfg.usePostQuantConv !== false) s.push(...vaeConv("post_quant_conv", lc, lc, 1));
  } else {
    s.push(...vaeConv("quant_conv", vq.embedDim, lc, 1), ...vaeConv("post_quant_conv", lc, vq.embedDim, 1));
    s.push(["quantize.embedding.weight", [vq.numEmbeddings, vq.embedDim]]);
  }
  return s;
}

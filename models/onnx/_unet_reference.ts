/**
 * Straightforward TypeScript references of the UNet graphs (float64 loops from `_test_reference.ts`), written from
 * diffusers' `forward` methods, to check the ONNX graphs numerically on configurations the fixtures do not cover:
 * `BasicTransformerBlock`, `Transformer2DModel`, `ResnetBlock2D`, the deprecated spatial `Attention`, and whole
 * `UNet2DConditionModel` / `UNet2DModel` forward passes.
 *
 * @module
 */
import { Tensor } from "@ldm/core/tensor";
import type { UNet2DConditionConfig } from "./unet_2d_condition.ts";
import type { UNet2DConfig } from "./unet_2d.ts";
import {
  activationRef,
  addChannelRef,
  conv2dRef,
  erf,
  fromSequenceRef,
  groupNormRef,
  layerNormRef,
  linearRef,
  mapRef,
  resizeNearestRef,
  sdpaRef,
  timestepEmbeddingRef,
  toSequenceRef,
  zipRef,
} from "./_test_reference.ts";
import type { MemoryWeights } from "./_test_utils.ts";

/** Weights by state-dict name, read once from a {@linkcode MemoryWeights}. */
export class RefWeights {
  readonly #map: Map<string, Float32Array>;
  private constructor(map: Map<string, Float32Array>) {
    this.#map = map;
  }
  /** Reads every tensor of `source`. */
  static async from(source: MemoryWeights): Promise<RefWeights> {
    const map = new Map<string, Float32Array>();
    for (const name of source.names()) map.set(name, await source.readFloat32(name));
    return new RefWeights(map);
  }
  /** The tensor `name`; throws when absent. */
  get(name: string): Float32Array {
    const t = this.#map.get(name);
    if (!t) throw new Error(`reference: no weight '${name}'`);
    return t;
  }
  /** The tensor `name` or null. */
  maybe(name: string): Float32Array | null {
    return this.#map.get(name) ?? null;
  }
}

const add = (a: Tensor, b: Tensor) => zipRef(a, b, (x, y) => x + y);

function linearNamed(x: Tensor, w: RefWeights, name: string): Tensor {
  const weight = w.get(`${name}.weight`);
  const out = weight.length / x.shape.at(-1)!;
  return linearRef(x, weight, w.maybe(`${name}.bias`), out);
}

function convNamed(x: Tensor, w: RefWeights, name: string, kernel: number, stride = 1, pad = (kernel - 1) / 2): Tensor {
  const weight = w.get(`${name}.weight`);
  const outChannels = weight.length / (x.shape[1]! * kernel * kernel);
  return conv2dRef(x, weight, w.maybe(`${name}.bias`), { outChannels, kernel, stride, pads: [pad, pad, pad, pad] });
}

/** Attention `<name>`: `to_out.0(sdpa(to_q(x), to_k(ctx), to_v(ctx)))` on `[N, L, C]` sequences. */
export function attentionRef(x: Tensor, context: Tensor, w: RefWeights, name: string, heads: number): Tensor {
  const q = linearNamed(x, w, `${name}.to_q`);
  const k = linearNamed(context, w, `${name}.to_k`);
  const v = linearNamed(context, w, `${name}.to_v`);
  const headDim = q.shape.at(-1)! / heads;
  return linearNamed(sdpaRef(q, k, v, heads, headDim ** -0.5), w, `${name}.to_out.0`);
}

/** Options of {@linkcode transformer2DRef}. */
export interface Transformer2DRefOptions {
  heads: number;
  layers: number;
  groups: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
  /** Whether the blocks have attn2 (a context). */
  cross: boolean;
}

/** `BasicTransformerBlock.forward` (layer norms, GEGLU feed-forward) on `[N, L, dim]`. */
export function basicTransformerBlockRef(
  x: Tensor,
  context: Tensor | null,
  w: RefWeights,
  name: string,
  o: { heads: number; onlyCrossAttention: boolean; cross: boolean },
): Tensor {
  const norm = (v: Tensor, i: number) =>
    layerNormRef(v, 1e-5, w.get(`${name}.norm${i}.weight`), w.get(`${name}.norm${i}.bias`));
  let n1 = norm(x, 1);
  let h = add(attentionRef(n1, o.onlyCrossAttention ? context! : n1, w, `${name}.attn1`, o.heads), x);
  if (o.cross) {
    n1 = norm(h, 2);
    h = add(attentionRef(n1, context!, w, `${name}.attn2`, o.heads), h);
  }
  // FeedForward: GEGLU `hidden · gelu(gate)` with [hidden, gate] = chunk(proj(x), 2, -1), then net.2.
  const p = linearNamed(norm(h, 3), w, `${name}.ff.net.0.proj`);
  const two = p.shape.at(-1)!;
  const inner = two / 2;
  const rows = p.size / two;
  const g = new Float32Array(rows * inner);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inner; i++) {
      const gate = p.data[r * two + inner + i]!;
      g[r * inner + i] = p.data[r * two + i]! * 0.5 * gate * (1 + erf(gate / Math.SQRT2));
    }
  }
  const ff = linearNamed(new Tensor(g, [...p.shape.slice(0, -1), inner]), w, `${name}.ff.net.2`);
  return add(ff, h);
}

/** `Transformer2DModel.forward` on `[N, C, H, W]` continuous input. */
export function transformer2DRef(
  x: Tensor,
  context: Tensor | null,
  w: RefWeights,
  name: string,
  o: Transformer2DRefOptions,
): Tensor {
  const [, , height, width] = x.shape as [number, number, number, number];
  let h = groupNormRef(x, o.groups, 1e-6, w.get(`${name}.norm.weight`), w.get(`${name}.norm.bias`));
  let seq: Tensor;
  if (o.useLinearProjection) seq = linearNamed(toSequenceRef(h), w, `${name}.proj_in`);
  else seq = toSequenceRef(convNamed(h, w, `${name}.proj_in`, 1));
  for (let l = 0; l < o.layers; l++) {
    seq = basicTransformerBlockRef(seq, context, w, `${name}.transformer_blocks.${l}`, o);
  }
  if (o.useLinearProjection) h = fromSequenceRef(linearNamed(seq, w, `${name}.proj_out`), height, width);
  else h = convNamed(fromSequenceRef(seq, height, width), w, `${name}.proj_out`, 1);
  return add(h, x);
}

/** `ResnetBlock2D.forward` (time_embedding_norm "default"). */
export function resnetRef(
  x: Tensor,
  temb: Tensor,
  w: RefWeights,
  name: string,
  o: { groups: number; eps: number; act: string; outputScaleFactor?: number },
): Tensor {
  const gn = (v: Tensor, n: string) => groupNormRef(v, o.groups, o.eps, w.get(`${n}.weight`), w.get(`${n}.bias`));
  let h = activationRef(gn(x, `${name}.norm1`), o.act);
  h = convNamed(h, w, `${name}.conv1`, 3);
  h = addChannelRef(h, linearNamed(activationRef(temb, o.act), w, `${name}.time_emb_proj`));
  h = activationRef(gn(h, `${name}.norm2`), o.act);
  h = convNamed(h, w, `${name}.conv2`, 3);
  const shortcut = w.maybe(`${name}.conv_shortcut.weight`) ? convNamed(x, w, `${name}.conv_shortcut`, 1) : x;
  const s = o.outputScaleFactor ?? 1;
  return zipRef(shortcut, h, (a, b) => (a + b) / s);
}

/** The deprecated spatial `Attention` (group norm, biased q/k/v, residual) of AttnDown/UpBlock2D and the mid block. */
export function spatialAttentionRef(
  x: Tensor,
  w: RefWeights,
  name: string,
  o: { groups: number; eps: number; headDim: number; rescaleOutputFactor?: number },
): Tensor {
  const [, c, height, width] = x.shape as [number, number, number, number];
  const heads = Math.floor(c / o.headDim);
  const gn = groupNormRef(x, o.groups, o.eps, w.get(`${name}.group_norm.weight`), w.get(`${name}.group_norm.bias`));
  const seq = toSequenceRef(gn);
  const out = fromSequenceRef(attentionRef(seq, seq, w, name, heads), height, width);
  const s = o.rescaleOutputFactor ?? 1;
  return zipRef(out, x, (a, b) => (a + b) / s);
}

/** `torch.cat([a, b], dim=1)` of `[N, C, H, W]` tensors. */
export function concatChannelsRef(a: Tensor, b: Tensor): Tensor {
  const [n, ca, h, wd] = a.shape as [number, number, number, number];
  const cb = b.shape[1]!;
  const plane = h * wd;
  const out = new Float32Array(n * (ca + cb) * plane);
  for (let i = 0; i < n; i++) {
    out.set(a.data.subarray(i * ca * plane, (i + 1) * ca * plane), i * (ca + cb) * plane);
    out.set(b.data.subarray(i * cb * plane, (i + 1) * cb * plane), (i * (ca + cb) + ca) * plane);
  }
  return new Tensor(out, [n, ca + cb, h, wd]);
}

/** What distinguishes the two UNets in {@linkcode unetRef}. */
interface UNetRefParts {
  channels: readonly number[];
  layers: readonly number[];
  groups: number;
  eps: number;
  act: string;
  downsamplePadding: number;
  /** The attention after `resnets.j` of down block `i` (or identity). */
  downAttn(h: Tensor, i: number, name: string): Tensor;
  /** The attention after `resnets.j` of up block `i`. */
  upAttn(h: Tensor, i: number, name: string): Tensor;
  mid(h: Tensor, temb: Tensor): Tensor;
  /** Activation before conv_out. @default act */
  convAct?: string;
}

/** The forward pass shared by UNet2DConditionModel and UNet2DModel, after the time embedding. */
function unetRef(sample: Tensor, temb: Tensor, w: RefWeights, p: UNetRefParts, convKernels: [number, number]): Tensor {
  const n = p.channels.length;
  const r = { groups: p.groups, eps: p.eps, act: p.act };
  let h = convNamed(sample, w, "conv_in", convKernels[0]);
  const skips: Tensor[] = [h];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p.layers[i]!; j++) {
      h = resnetRef(h, temb, w, `down_blocks.${i}.resnets.${j}`, r);
      h = p.downAttn(h, i, `down_blocks.${i}.attentions.${j}`);
      skips.push(h);
    }
    if (i < n - 1) {
      const name = `down_blocks.${i}.downsamplers.0.conv`;
      const weight = w.get(`${name}.weight`);
      // Downsample2D with padding 0 pads (0, 1, 0, 1) first.
      const pads = p.downsamplePadding === 0 ? [0, 0, 1, 1] : new Array(4).fill(p.downsamplePadding);
      h = conv2dRef(h, weight, w.get(`${name}.bias`), {
        outChannels: weight.length / (h.shape[1]! * 9),
        kernel: 3,
        stride: 2,
        pads,
      });
      skips.push(h);
    }
  }
  h = p.mid(h, temb);
  // unet_2d_condition.py: forward the skip size to the upsamplers only when the input is not a multiple of 2^(n-1).
  const factor = 2 ** (n - 1);
  const forwardSize = sample.shape.slice(2).some((d) => d % factor !== 0);
  for (let i = 0; i < n; i++) {
    const layers = p.layers[n - 1 - i]! + 1;
    for (let j = 0; j < layers; j++) {
      h = concatChannelsRef(h, skips.pop()!);
      h = resnetRef(h, temb, w, `up_blocks.${i}.resnets.${j}`, r);
      h = p.upAttn(h, i, `up_blocks.${i}.attentions.${j}`);
    }
    if (i < n - 1) {
      const [, , hh, ww] = h.shape as [number, number, number, number];
      const target = forwardSize ? skips.at(-1)!.shape.slice(2) as [number, number] : [2 * hh, 2 * ww];
      h = convNamed(resizeNearestRef(h, target[0]!, target[1]!), w, `up_blocks.${i}.upsamplers.0.conv`, 3);
    }
  }
  h = groupNormRef(h, p.groups, p.eps, w.get("conv_norm_out.weight"), w.get("conv_norm_out.bias"));
  h = activationRef(h, p.convAct ?? p.act);
  return convNamed(h, w, "conv_out", convKernels[1]);
}

function timeEmbeddingRef(
  timesteps: readonly number[],
  w: RefWeights,
  c0: number,
  o: { flipSinToCos: boolean; freqShift: number; act: string; postAct?: string | null },
): Tensor {
  const proj = timestepEmbeddingRef(timesteps, c0, { flipSinToCos: o.flipSinToCos, downscaleFreqShift: o.freqShift });
  let emb = activationRef(linearNamed(proj, w, "time_embedding.linear_1"), o.act);
  emb = linearNamed(emb, w, "time_embedding.linear_2");
  return o.postAct ? activationRef(emb, o.postAct) : emb;
}

/** `UNet2DConditionModel.forward(sample, timesteps, context).sample` (one timestep per batch row). */
export function unet2DConditionRef(
  c: UNet2DConditionConfig,
  w: RefWeights,
  sample: Tensor,
  timesteps: readonly number[],
  context: Tensor,
): Tensor {
  const n = c.blockOutChannels.length;
  const x = c.centerInputSample ? mapRef(sample, (v) => 2 * v - 1) : sample;
  let temb = timeEmbeddingRef(timesteps, w, c.blockOutChannels[0]!, {
    flipSinToCos: c.flipSinToCos,
    freqShift: c.freqShift,
    act: c.actFn,
    postAct: c.timestepPostAct,
  });
  if (c.timeEmbeddingActFn) temb = activationRef(temb, c.timeEmbeddingActFn);
  const transformer = (h: Tensor, d: number, name: string, onlyCross: boolean) =>
    transformer2DRef(h, context, w, name, {
      heads: c.numAttentionHeads[d]!,
      layers: c.transformerLayersPerBlock[d]!,
      groups: c.normNumGroups,
      useLinearProjection: c.useLinearProjection,
      onlyCrossAttention: onlyCross,
      cross: true,
    });
  const r = { groups: c.normNumGroups, eps: c.normEps, act: c.actFn, outputScaleFactor: c.midBlockScaleFactor };
  return unetRef(x, temb, w, {
    channels: c.blockOutChannels,
    layers: c.layersPerBlock,
    groups: c.normNumGroups,
    eps: c.normEps,
    act: c.actFn,
    downsamplePadding: c.downsamplePadding,
    downAttn: (h, i, name) =>
      c.downBlockTypes[i] === "CrossAttnDownBlock2D" ? transformer(h, i, name, c.onlyCrossAttention[i]!) : h,
    upAttn: (h, i, name) =>
      c.upBlockTypes[i] === "CrossAttnUpBlock2D"
        ? transformer(h, n - 1 - i, name, c.onlyCrossAttention[n - 1 - i]!)
        : h,
    mid: (h, temb) => {
      if (c.midBlockType === null) return h;
      h = resnetRef(h, temb, w, "mid_block.resnets.0", r);
      if (c.midBlockType === "UNetMidBlock2D") return h;
      h = transformer(h, n - 1, "mid_block.attentions.0", false);
      return resnetRef(h, temb, w, "mid_block.resnets.1", r);
    },
  }, [c.convInKernel, c.convOutKernel]);
}

/** `UNet2DModel.forward(sample, timesteps).sample` (one timestep per batch row). */
export function unet2DRef(c: UNet2DConfig, w: RefWeights, sample: Tensor, timesteps: readonly number[]): Tensor {
  const x = c.centerInputSample ? mapRef(sample, (v) => 2 * v - 1) : sample;
  const temb = timeEmbeddingRef(timesteps, w, c.blockOutChannels[0]!, {
    flipSinToCos: c.flipSinToCos,
    freqShift: c.freqShift,
    act: "silu",
  });
  const spatial = (h: Tensor, name: string, groups: number, rescaleOutputFactor = 1) =>
    spatialAttentionRef(h, w, name, {
      groups,
      eps: c.normEps,
      headDim: c.attentionHeadDim ?? h.shape[1]!,
      rescaleOutputFactor,
    });
  const r = { groups: c.normNumGroups, eps: c.normEps, act: c.actFn, outputScaleFactor: c.midBlockScaleFactor };
  return unetRef(x, temb, w, {
    channels: c.blockOutChannels,
    layers: c.blockOutChannels.map(() => c.layersPerBlock),
    groups: c.normNumGroups,
    eps: c.normEps,
    act: c.actFn,
    convAct: "silu",
    downsamplePadding: c.downsamplePadding,
    downAttn: (h, i, name) => c.downBlockTypes[i] === "AttnDownBlock2D" ? spatial(h, name, c.normNumGroups) : h,
    upAttn: (h, i, name) => c.upBlockTypes[i] === "AttnUpBlock2D" ? spatial(h, name, c.normNumGroups) : h,
    mid: (h, temb) => {
      if (c.midBlockType === null) return h;
      h = resnetRef(h, temb, w, "mid_block.resnets.0", r);
      if (c.addAttention) {
        h = spatial(h, "mid_block.attentions.0", c.attnNormNumGroups ?? c.normNumGroups, c.midBlockScaleFactor);
      }
      return resnetRef(h, temb, w, "mid_block.resnets.1", r);
    },
  }, [3, 3]);
}

/**
 * Straightforward TypeScript implementations of the block math (float64 loops over NCHW / [N, L, C] arrays), written
 * from the torch definitions, to check the ONNX blocks numerically on configurations the fixtures do not cover.
 *
 * @module
 */
import { Tensor } from "@ldm/core/tensor";

type Arr = ArrayLike<number>;

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** torch `nn.Conv2d` (square kernel): `w` is `[O, I, k, k]`, pads `[top, left, bottom, right]`. */
export function conv2dRef(
  x: Tensor,
  w: Arr,
  bias: Arr | null,
  o: { outChannels: number; kernel: number; stride?: number; pads?: readonly number[] },
): Tensor {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const k = o.kernel, s = o.stride ?? 1;
  const [pt, pl, pb, pr] = (o.pads ?? [0, 0, 0, 0]) as [number, number, number, number];
  const oh = Math.floor((h + pt + pb - k) / s) + 1;
  const ow = Math.floor((wd + pl + pr - k) / s) + 1;
  const out = new Float32Array(n * o.outChannels * oh * ow);
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < o.outChannels; oc++) {
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          let acc = bias ? bias[oc]! : 0;
          for (let ic = 0; ic < c; ic++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = y * s + ky - pt;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = xx * s + kx - pl;
                if (ix < 0 || ix >= wd) continue;
                acc += x.data[((b * c + ic) * h + iy) * wd + ix]! * w[((oc * c + ic) * k + ky) * k + kx]!;
              }
            }
          }
          out[((b * o.outChannels + oc) * oh + y) * ow + xx] = acc;
        }
      }
    }
  }
  return new Tensor(out, [n, o.outChannels, oh, ow]);
}

/** torch `nn.GroupNorm` on `[N, C, ...]` (biased variance). */
export function groupNormRef(x: Tensor, groups: number, eps: number, gamma: Arr | null, beta: Arr | null): Tensor {
  const [n, c] = x.shape as [number, number];
  const inner = size(x.shape.slice(2));
  const per = (c / groups) * inner;
  const out = new Float32Array(x.size);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const base = (b * c + g * (c / groups)) * inner;
      let mean = 0;
      for (let i = 0; i < per; i++) mean += x.data[base + i]!;
      mean /= per;
      let v = 0;
      for (let i = 0; i < per; i++) v += (x.data[base + i]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / per + eps);
      for (let i = 0; i < per; i++) {
        const ch = g * (c / groups) + Math.floor(i / inner);
        out[base + i] = (x.data[base + i]! - mean) * inv * (gamma ? gamma[ch]! : 1) + (beta ? beta[ch]! : 0);
      }
    }
  }
  return new Tensor(out, x.shape);
}

/** torch `nn.LayerNorm(D)` over the last axis. */
export function layerNormRef(x: Tensor, eps: number, gamma: Arr | null, beta: Arr | null): Tensor {
  const d = x.shape.at(-1)!;
  const out = new Float32Array(x.size);
  for (let r = 0; r < x.size / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x.data[r * d + i]!;
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x.data[r * d + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) {
      out[r * d + i] = (x.data[r * d + i]! - mean) * inv * (gamma ? gamma[i]! : 1) + (beta ? beta[i]! : 0);
    }
  }
  return new Tensor(out, x.shape);
}

/** torch `nn.Linear` on the last axis: `w` is `[out, in]`. */
export function linearRef(x: Tensor, w: Arr, bias: Arr | null, outFeatures: number): Tensor {
  const inF = x.shape.at(-1)!;
  const rows = x.size / inF;
  const out = new Float32Array(rows * outFeatures);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outFeatures; o++) {
      let acc = bias ? bias[o]! : 0;
      for (let i = 0; i < inF; i++) acc += x.data[r * inF + i]! * w[o * inF + i]!;
      out[r * outFeatures + o] = acc;
    }
  }
  return new Tensor(out, [...x.shape.slice(0, -1), outFeatures]);
}

/** erf to ~1e-15 (Taylor series for |x| < 3, continued fraction erfc beyond). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = 0, term = ax, n = 0;
    while (Math.abs(term) > 1e-17 * Math.abs(sum) || n < 3) {
      sum += term / (2 * n + 1);
      n++;
      term *= -ax * ax / n;
      if (n > 200) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz), accurate for x >= 3
  let f = ax, c = ax, d = 0;
  for (let i = 1; i < 100; i++) {
    const a = i / 2;
    d = 1 / (ax + a * d);
    c = ax + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** Element-wise map. */
export function mapRef(x: Tensor, fn: (v: number, i: number) => number): Tensor {
  return new Tensor(Float32Array.from(x.data, fn), x.shape);
}

/** Element-wise binary op on equal shapes. */
export function zipRef(a: Tensor, b: Tensor, fn: (x: number, y: number) => number): Tensor {
  if (a.size !== b.size) throw new Error(`zipRef: sizes ${a.size} and ${b.size}`);
  return new Tensor(Float32Array.from(a.data, (v, i) => fn(v, b.data[i]!)), a.shape);
}

/** diffusers activations by name. */
export function activationRef(x: Tensor, fn: string): Tensor {
  switch (fn) {
    case "silu":
    case "swish":
      return mapRef(x, (v) => v / (1 + Math.exp(-v)));
    case "gelu":
      return mapRef(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    case "gelu_tanh":
      return mapRef(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    case "relu":
      return mapRef(x, (v) => Math.max(0, v));
    case "mish":
      return mapRef(x, (v) => v * Math.tanh(Math.log1p(Math.exp(v))));
    default:
      throw new Error(`activationRef: ${fn}`);
  }
}

/** Nearest-neighbour resize of `[N, C, H, W]` to `[oh, ow]` (torch legacy "nearest": floor(dst · in / out)). */
export function resizeNearestRef(x: Tensor, oh: number, ow: number): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = new Float32Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < oh; y++) {
      const sy = Math.min(h - 1, Math.floor(y * h / oh));
      for (let xx = 0; xx < ow; xx++) {
        const sx = Math.min(w - 1, Math.floor(xx * w / ow));
        out[(p * oh + y) * ow + xx] = x.data[(p * h + sy) * w + sx]!;
      }
    }
  }
  return new Tensor(out, [n, c, oh, ow]);
}

/** 2×2 average pooling, stride 2. */
export function avgPool2Ref(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = Math.floor(h / 2), ow = Math.floor(w / 2);
  const out = new Float32Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        const at = (dy: number, dx: number) => x.data[(p * h + 2 * y + dy) * w + 2 * xx + dx]!;
        out[(p * oh + y) * ow + xx] = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4;
      }
    }
  }
  return new Tensor(out, [n, c, oh, ow]);
}

/** `[N, C, H, W]` → `[N, H·W, C]`. */
export function toSequenceRef(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = new Float32Array(x.size);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < h * w; p++) out[(b * h * w + p) * c + ch] = x.data[(b * c + ch) * h * w + p]!;
    }
  }
  return new Tensor(out, [n, h * w, c]);
}

/** `[N, H·W, C]` → `[N, C, H, W]`. */
export function fromSequenceRef(x: Tensor, h: number, w: number): Tensor {
  const [n, l, c] = x.shape as [number, number, number];
  if (l !== h * w) throw new Error("fromSequenceRef: length");
  const out = new Float32Array(x.size);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < l; p++) out[(b * c + ch) * l + p] = x.data[(b * l + p) * c + ch]!;
    }
  }
  return new Tensor(out, [n, c, h, w]);
}

/** Scaled dot-product attention per head: q `[N, Lq, h·d]`, k/v `[N, Lk, h·d]` → `[N, Lq, h·d]`. */
export function sdpaRef(q: Tensor, k: Tensor, v: Tensor, heads: number, scale: number): Tensor {
  const [n, lq, hd] = q.shape as [number, number, number];
  const lk = k.shape[1]!;
  const d = hd / heads;
  const out = new Float32Array(n * lq * hd);
  const scores = new Float64Array(lk);
  for (let b = 0; b < n; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        let max = -Infinity;
        for (let j = 0; j < lk; j++) {
          let s = 0;
          for (let e = 0; e < d; e++) {
            s += q.data[(b * lq + i) * hd + h * d + e]! * k.data[(b * lk + j) * hd + h * d + e]!;
          }
          scores[j] = s * scale;
          max = Math.max(max, scores[j]!);
        }
        let sum = 0;
        for (let j = 0; j < lk; j++) sum += scores[j] = Math.exp(scores[j]! - max);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = 0; j < lk; j++) acc += scores[j]! * v.data[(b * lk + j) * hd + h * d + e]!;
          out[(b * lq + i) * hd + h * d + e] = acc / sum;
        }
      }
    }
  }
  return new Tensor(out, [n, lq, hd]);
}

/** diffusers `get_timestep_embedding` in float64. */
export function timestepEmbeddingRef(
  t: readonly number[],
  dim: number,
  o: { flipSinToCos: boolean; downscaleFreqShift: number; scale?: number; maxPeriod?: number },
): Tensor {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(t.length * dim);
  for (let b = 0; b < t.length; b++) {
    for (let j = 0; j < half; j++) {
      const arg = (o.scale ?? 1) * t[b]! *
        Math.exp(-Math.log(o.maxPeriod ?? 10000) * j / (half - o.downscaleFreqShift));
      const [first, second] = o.flipSinToCos ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
      out[b * dim + j] = first;
      out[b * dim + half + j] = second;
    }
  }
  return new Tensor(out, [t.length, dim]);
}

/** Adds a `[N, C]` tensor to `[N, C, H, W]` per channel. */
export function addChannelRef(x: Tensor, t: Tensor): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  return mapRef(x, (v, i) => v + t.data[Math.floor(i / (h * w))]!);
}

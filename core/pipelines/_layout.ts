/**
 * The few layout operations the denoising loops need on NCHW float32 tensors: batch concat/slice, channel concat,
 * spatial crop, NCHW → NHWC. Pure copies (no arithmetic), so exactness is not a concern here.
 *
 * @module
 */
import { Tensor } from "../tensor/mod.ts";

/** Concatenates tensors along dimension 0 (`torch.cat(ts, dim=0)`); all other dimensions must agree. */
export function concatBatch(ts: readonly Tensor[]): Tensor {
  if (ts.length === 1) return ts[0]!;
  const rest = ts[0]!.shape.slice(1);
  let n = 0;
  for (const t of ts) {
    if (t.shape.length !== rest.length + 1 || t.shape.slice(1).some((d, i) => d !== rest[i])) {
      throw new TypeError(`concatBatch: shape [${t.shape.join(", ")}] does not match [*, ${rest.join(", ")}]`);
    }
    n += t.shape[0]!;
  }
  const data = new Float32Array(ts.reduce((s, t) => s + t.size, 0));
  let at = 0;
  for (const t of ts) {
    data.set(t.data, at);
    at += t.size;
  }
  return new Tensor(data, [n, ...rest]);
}

/** Rows `[from, to)` of dimension 0 as a view sharing the buffer (no copy). */
export function sliceBatch(t: Tensor, from: number, to: number): Tensor {
  const row = t.size / t.shape[0]!;
  return new Tensor(t.data.subarray(from * row, to * row), [to - from, ...t.shape.slice(1)]);
}

/** `torch.cat([a, b], dim=1)` for `[B, Ca, H, W]` and `[B, Cb, H, W]`. */
export function concatChannels(a: Tensor, b: Tensor): Tensor {
  const [n, ca, h, w] = a.shape as [number, number, number, number];
  const cb = b.shape[1]!;
  if (b.shape[0] !== n || b.shape[2] !== h || b.shape[3] !== w) {
    throw new TypeError(`concatChannels: [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ outside dim 1`);
  }
  const plane = h * w;
  const out = new Float32Array(n * (ca + cb) * plane);
  for (let i = 0; i < n; i++) {
    out.set(a.data.subarray(i * ca * plane, (i + 1) * ca * plane), i * (ca + cb) * plane);
    out.set(b.data.subarray(i * cb * plane, (i + 1) * cb * plane), (i * (ca + cb) + ca) * plane);
  }
  return new Tensor(out, [n, ca + cb, h, w]);
}

/** The window `[y0, y0 + h) × [x0, x0 + w)` of an NCHW tensor, copied (the tensor itself when it is the whole). */
export function crop(t: Tensor, y0: number, x0: number, h: number, w: number): Tensor {
  const [n, c, H, W] = t.shape as [number, number, number, number];
  if (y0 === 0 && x0 === 0 && h === H && w === W) return t;
  return cropInto(t, y0, x0, new Tensor(new Float32Array(n * c * h * w), [n, c, h, w]));
}

/** The window of `out`'s spatial size at `(y0, x0)` of an NCHW tensor, copied into `out` (same N and C). */
export function cropInto(t: Tensor, y0: number, x0: number, out: Tensor): Tensor {
  const [n, c, H, W] = t.shape as [number, number, number, number];
  const [on, oc, h, w] = out.shape as [number, number, number, number];
  if (on !== n || oc !== c || y0 < 0 || x0 < 0 || y0 + h > H || x0 + w > W) {
    throw new RangeError(
      `cropInto: a [${out.shape.join(", ")}] window at (${y0}, ${x0}) does not fit [${t.shape.join(", ")}]`,
    );
  }
  let at = 0;
  for (let p = 0; p < n * c; p++) {
    const base = p * H * W;
    for (let y = 0; y < h; y++) {
      const from = base + (y0 + y) * W + x0;
      out.data.set(t.data.subarray(from, from + w), at);
      at += w;
    }
  }
  return out;
}

/** `[N, C, H, W]` → `[N, H, W, C]` (diffusers' `.permute(0, 2, 3, 1)`). */
export function nchwToNhwc(t: Tensor): Tensor {
  const [n, c, h, w] = t.shape as [number, number, number, number];
  const out = new Float32Array(t.size);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      const src = (i * c + ch) * plane;
      for (let p = 0; p < plane; p++) out[(i * plane + p) * c + ch] = t.data[src + p]!;
    }
  }
  return new Tensor(out, [n, h, w, c]);
}

/** `[N, H, W, C]` → `[N, C, H, W]`. */
export function nhwcToNchw(t: Tensor): Tensor {
  const [n, h, w, c] = t.shape as [number, number, number, number];
  const out = new Float32Array(t.size);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < plane; p++) {
      for (let ch = 0; ch < c; ch++) out[(i * c + ch) * plane + p] = t.data[(i * plane + p) * c + ch]!;
    }
  }
  return new Tensor(out, [n, c, h, w]);
}

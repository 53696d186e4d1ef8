/**
 * Element-wise float32 helpers for the schedulers and pipelines.
 *
 * Every helper computes each element in float64 and stores it in a `Float32Array`, which rounds it to float32. For a
 * single `+ - * /` or `sqrt` of float32 operands that is exactly torch's float32 result (double rounding is harmless
 * for these operations because 53 ≥ 2·24 + 2), so a chain of these helpers in diffusers' order reproduces torch
 * float32 arithmetic bit for bit. Where one callback combines several operations ({@linkcode map}, {@linkcode map2},
 * {@linkcode map3}), the callback must round every intermediate with {@linkcode f32} itself to keep that property.
 *
 * Scalars are rounded to float32 before use, as torch does when a python float meets a float32 tensor.
 *
 * Allocation: every helper takes an optional `out` tensor of the same shape. It may be one of the inputs (all helpers
 * are element-wise, so in-place use is safe); without it a new tensor is allocated.
 *
 * @module
 */
import { Tensor } from "./tensor.ts";

/** Rounds a number to the nearest float32 (ties to even), i.e. `Math.fround`. Named for readability in formulas. */
export const f32: (x: number) => number = Math.fround;

const F64 = new Float64Array(1);
const U64 = new BigUint64Array(F64.buffer);

/** The next float64 after `x` in the direction of `toward` (`x` finite). */
function nextAfter64(x: number, up: boolean): number {
  if (x === 0) return up ? Number.MIN_VALUE : -Number.MIN_VALUE;
  F64[0] = x;
  // Moving away from zero increments the magnitude bits; toward zero decrements them.
  U64[0] = U64[0]! + ((x > 0) === up ? 1n : -1n);
  return F64[0]!;
}

/**
 * float32 fused multiply-add: `a·b + c` rounded once to float32, as a compiler-contracted `fmaf` computes it.
 *
 * `a`, `b`, `c` must be float32 values. `a·b` is exact in float64 (24 + 24 bits); the sum is corrected with TwoSum
 * when its float64 rounding lands exactly on a float32 rounding midpoint, so the result is always correctly rounded.
 *
 * @example
 * ```ts
 * import { fma32 } from "@ldm/core/tensor";
 * fma32(Math.fround(0.1), 3, Math.fround(0.2)); // one rounding instead of two
 * ```
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  if (!Number.isFinite(s)) return f32(s);
  // TwoSum: err is the exact rounding error of p + c.
  const bv = s - p;
  const err = (p - (s - bv)) + (c - bv);
  const r = f32(s);
  if (err === 0) return r;
  // Double rounding only matters when s sits exactly halfway between two float32 values.
  const other = s > r ? nextUp32(r) : nextDown32(r);
  if (other !== r && s - r === other - s) {
    return f32(nextAfter64(s, err > 0));
  }
  return r;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The next float32 above the float32 `x` (finite). */
function nextUp32(x: number): number {
  if (x === 0) return 2 ** -149;
  F32[0] = x;
  U32[0] = x > 0 ? U32[0]! + 1 : U32[0]! - 1;
  return F32[0]!;
}

/** The next float32 below the float32 `x` (finite). */
function nextDown32(x: number): number {
  return -nextUp32(-x);
}

/**
 * Throws a `TypeError` unless `a` and `b` have the same shape.
 *
 * @param names How to call the two tensors in the message, e.g. `["modelOutput", "sample"]`.
 * @throws {TypeError} `modelOutput shape [1, 4, 8, 8] does not match sample shape [1, 4, 8, 9]`.
 */
export function assertSameShape(a: Tensor, b: Tensor, names: readonly [string, string] = ["a", "b"]): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new TypeError(
      `${names[0]} shape [${a.shape.join(", ")}] does not match ${names[1]} shape [${b.shape.join(", ")}]`,
    );
  }
}

/** Whether two shapes are equal dimension by dimension. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function output(like: Tensor, out: Tensor | undefined): Tensor {
  if (out === undefined) return Tensor.zeros(like.shape);
  assertSameShape(out, like, ["out", "input"]);
  return out;
}

/**
 * Applies `fn` to every element: `out[i] = f32(fn(a[i], i))`.
 *
 * `fn` receives float32 values widened to float64; round each intermediate with {@linkcode f32} where torch would
 * materialise a float32 tensor.
 */
export function map(a: Tensor, fn: (x: number, i: number) => number, out?: Tensor): Tensor {
  const o = output(a, out);
  const x = a.data, y = o.data, n = x.length;
  for (let i = 0; i < n; i++) y[i] = fn(x[i]!, i);
  return o;
}

/** Element-wise `out[i] = f32(fn(a[i], b[i], i))` over two tensors of the same shape. */
export function map2(
  a: Tensor,
  b: Tensor,
  fn: (x: number, y: number, i: number) => number,
  out?: Tensor,
): Tensor {
  assertSameShape(a, b);
  const o = output(a, out);
  const x = a.data, y = b.data, z = o.data, n = x.length;
  for (let i = 0; i < n; i++) z[i] = fn(x[i]!, y[i]!, i);
  return o;
}

/** Element-wise `out[i] = f32(fn(a[i], b[i], c[i], i))` over three tensors of the same shape. */
export function map3(
  a: Tensor,
  b: Tensor,
  c: Tensor,
  fn: (x: number, y: number, z: number, i: number) => number,
  out?: Tensor,
): Tensor {
  assertSameShape(a, b);
  assertSameShape(a, c, ["a", "c"]);
  const o = output(a, out);
  const x = a.data, y = b.data, z = c.data, w = o.data, n = x.length;
  for (let i = 0; i < n; i++) w[i] = fn(x[i]!, y[i]!, z[i]!, i);
  return o;
}

/** `a + b` element-wise (float32). */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return map2(a, b, (x, y) => x + y, out);
}

/** `a - b` element-wise (float32). */
export function sub(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return map2(a, b, (x, y) => x - y, out);
}

/** `a * b` element-wise (float32). */
export function mul(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return map2(a, b, (x, y) => x * y, out);
}

/** `a / b` element-wise (float32, IEEE division: `x / 0` is ±Infinity or NaN). */
export function div(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return map2(a, b, (x, y) => x / y, out);
}

/** `a + s` with `s` rounded to float32 first (torch's python-scalar semantics). */
export function addScalar(a: Tensor, s: number, out?: Tensor): Tensor {
  const c = f32(s);
  return map(a, (x) => x + c, out);
}

/** `a * s` with `s` rounded to float32 first (torch's python-scalar semantics). */
export function mulScalar(a: Tensor, s: number, out?: Tensor): Tensor {
  const c = f32(s);
  return map(a, (x) => x * c, out);
}

/** `a / s` with `s` rounded to float32 first (true division, as torch's `tensor / scalar` on CPU for float32). */
export function divScalar(a: Tensor, s: number, out?: Tensor): Tensor {
  const c = f32(s);
  return map(a, (x) => x / c, out);
}

/**
 * `c₀·t₀ + c₁·t₁ + …` evaluated left to right as torch evaluates the python expression `c0 * t0 + c1 * t1 + …`:
 * each coefficient rounded to float32, each product and each partial sum rounded to float32.
 * A subtraction `… - c·t` equals `… + (-c)·t` bit for bit, so pass negative coefficients for it.
 *
 * @throws {TypeError} when `terms` is empty or the tensors' shapes differ.
 * @example
 * ```ts
 * import { linearCombination, Tensor } from "@ldm/core/tensor";
 * const a = new Tensor(new Float32Array([1, 2]), [2]);
 * const b = new Tensor(new Float32Array([3, 4]), [2]);
 * linearCombination([[3, a], [-1, b]]); // 3a - b = [0, 2]
 * ```
 */
export function linearCombination(terms: readonly (readonly [number, Tensor])[], out?: Tensor): Tensor {
  const first = terms[0];
  if (first === undefined) throw new TypeError("linearCombination needs at least one term: got 0");
  for (const [k, [, t]] of terms.entries()) assertSameShape(t, first[1], [`terms[${k}]`, "terms[0]"]);
  const o = output(first[1], out);
  const n = o.size;
  const coeffs = terms.map(([c]) => f32(c));
  const datas = terms.map(([, t]) => t.data);
  const y = o.data;
  // Accumulate into a float64 scratch rounded per step, so `out` may alias any input.
  const acc = new Float64Array(n);
  const d0 = datas[0]!, c0 = coeffs[0]!;
  for (let i = 0; i < n; i++) acc[i] = f32(c0 * d0[i]!);
  for (let k = 1; k < terms.length; k++) {
    const d = datas[k]!, c = coeffs[k]!;
    for (let i = 0; i < n; i++) acc[i] = f32(acc[i]! + f32(c * d[i]!));
  }
  for (let i = 0; i < n; i++) y[i] = acc[i]!;
  return o;
}

/**
 * `min(max(a, lo), hi)` element-wise, as `torch.clamp(a, lo, hi)`: bounds rounded to float32, NaN propagates, and
 * when `lo > hi` every element becomes `hi`.
 */
export function clamp(a: Tensor, lo: number, hi: number, out?: Tensor): Tensor {
  const l = f32(lo), h = f32(hi);
  return map(a, (x) => Math.min(Math.max(x, l), h), out);
}

/** `|a|` element-wise. */
export function abs(a: Tensor, out?: Tensor): Tensor {
  return map(a, (x) => Math.abs(x), out);
}

/** Σ|aᵢ| accumulated in float64 (a summary statistic for tests and logs, not a torch-exact reduction). */
export function absSum(a: Tensor): number {
  let s = 0;
  for (const x of a.data) s += Math.abs(x);
  return s;
}

/** mean |aᵢ| accumulated in float64; NaN for an empty tensor. */
export function absMean(a: Tensor): number {
  return absSum(a) / a.size;
}

/**
 * `torch.quantile(values, q)` with the default linear interpolation, in float32 as torch computes it for a float32
 * input: `rank = f32(f32(q)·(n−1))`, `w = rank − ⌊rank⌋`, then torch's `lerp` of the two neighbouring sorted values
 * (`lo + w·(hi − lo)` when `w < 0.5`, else `hi − (hi − lo)·(1 − w)`). Any NaN in `values` gives NaN.
 *
 * `values` is not modified.
 *
 * @throws {RangeError} when `values` is empty or `q` is not in [0, 1].
 * @example
 * ```ts
 * import { quantile } from "@ldm/core/tensor";
 * quantile([1, 2, 3, 4], 0.5); // 2.5
 * ```
 */
export function quantile(values: ArrayLike<number>, q: number): number {
  const n = values.length;
  if (n === 0) throw new RangeError("quantile needs at least one value: got an empty array");
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile q must be in [0, 1]: got ${q}`);
  const sorted = Float32Array.from(values);
  for (const v of sorted) if (Number.isNaN(v)) return NaN;
  sorted.sort();
  const rank = f32(f32(q) * (n - 1));
  const below = Math.floor(rank);
  const above = Math.ceil(rank);
  const w = f32(rank - below);
  const lo = sorted[below]!, hi = sorted[above]!;
  return w < 0.5 ? f32(lo + f32(w * f32(hi - lo))) : f32(hi - f32(f32(hi - lo) * f32(1 - w)));
}

/**
 * The largest |a[i] − b[i]| and where it occurs (first index on ties). NaN in either input counts as an infinite
 * difference unless both are NaN.
 *
 * @throws {TypeError} when the shapes differ.
 */
export function maxAbsDiff(a: Tensor, b: Tensor): { max: number; index: number } {
  assertSameShape(a, b);
  let max = -1, index = -1;
  const x = a.data, y = b.data;
  for (let i = 0; i < x.length; i++) {
    const u = x[i]!, v = y[i]!;
    const nanU = Number.isNaN(u), nanV = Number.isNaN(v);
    const d = nanU || nanV ? (nanU && nanV ? 0 : Infinity) : Math.abs(u - v);
    if (d > max) {
      max = d;
      index = i;
    }
  }
  return { max: Math.max(max, 0), index };
}

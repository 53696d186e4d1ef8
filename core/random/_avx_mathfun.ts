/**
 * Bit-exact emulation of the float32 math torch's AVX2 `normal_fill_16_AVX2` kernel uses
 * (`aten/src/ATen/native/cpu/DistributionTemplates.h`): the cephes single-precision `log256_ps` and `sincos256_ps`
 * polynomials of `avx_mathfun.h` (Julien Pommier, after Stephen Moshier's cephes), with the multiply-adds that GCC
 * contracts into FMA instructions, in exactly that order. See `ldm-reference.md` §6 and the `algorithm` field of
 * `tests/fixtures/schedulers/torch_rng.json.gz`.
 *
 * Every value here is a float32 held in a JS number. `Math.fround(a op b)` is the correctly rounded float32 result
 * for `+ - * / sqrt` of float32 inputs (double has more than 2·24+2 bits, so rounding twice is innocuous); only the
 * three-operand `fma` needs the correction in {@linkcode fma32}.
 *
 * @module
 */

const fround = Math.fround;

// avx_mathfun.h constants: C double literals rounded to float, i.e. exactly Math.fround of the same literal.
const MIN_NORM_POS = 1.1754943508222875e-38; // 2^-126, the smallest normal float32
const SQRTHF = fround(0.707106781186547524);
const LOG_P0 = fround(7.0376836292e-2);
const LOG_P1 = fround(-1.1514610310e-1);
const LOG_P2 = fround(1.1676998740e-1);
const LOG_P3 = fround(-1.2420140846e-1);
const LOG_P4 = fround(1.4249322787e-1);
const LOG_P5 = fround(-1.6668057665e-1);
const LOG_P6 = fround(2.0000714765e-1);
const LOG_P7 = fround(-2.4999993993e-1);
const LOG_P8 = fround(3.3333331174e-1);
const LOG_Q1 = fround(-2.12194440e-4);
const LOG_Q2 = fround(0.693359375);

const MINUS_DP1 = fround(-0.78515625);
const MINUS_DP2 = fround(-2.4187564849853515625e-4);
const MINUS_DP3 = fround(-3.77489497744594108e-8);
const SINCOF_P0 = fround(-1.9515295891e-4);
const SINCOF_P1 = fround(8.3321608736e-3);
const SINCOF_P2 = fround(-1.6666654611e-1);
const COSCOF_P0 = fround(2.443315711809948e-5);
const COSCOF_P1 = fround(-1.388731625493765e-3);
const COSCOF_P2 = fround(4.166664568298827e-2);
const FOPI = fround(1.27323954473516); // 4 / pi

/** `2π` as the kernel holds it: `_mm256_set1_ps(2.0f * c10::pi<double>)`. */
const TWO_PI_F32 = fround(2 * Math.PI);

// One shared scratch word to read a float32's bit pattern (the kernel's `_mm256_castps_si256`).
const BITS_F32 = new Float32Array(1);
const BITS_U32 = new Uint32Array(BITS_F32.buffer);

/**
 * `fma(a, b, c)` in float32: `a·b + c` rounded once to float32, for float32 `a`, `b`, `c`.
 *
 * `a·b` is exact in float64 (48 significant bits). The float64 sum `s` can be off by half a float64 ulp; rounding `s`
 * to float32 then differs from rounding the exact sum only when `s` lands exactly on a float32 midpoint. TwoSum
 * (Knuth) gives the exact error of `s`; when it is non-zero and `s` is a midpoint, its sign picks the neighbour.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = fround(s);
  if (r === s) return r; // s is a float32; the exact sum is within half a float64 ulp of it
  const bv = s - p;
  const err = (p - (s - bv)) + (c - bv);
  if (err === 0) return r; // s is exact: one rounding
  // s is a float32 midpoint iff its mirror image around s, 2s - r, is the other float32 neighbour (exact in float64).
  const g = 2 * s - r;
  if (fround(g) !== g) return r;
  return err > 0 ? Math.max(r, g) : Math.min(r, g);
}

/**
 * Natural log of a float32 `x > 0` exactly as `log256_ps` computes it under GCC's FMA contraction.
 * (The kernel only calls it on `1 - u` with `u` in `[0, 1 - 2^-24]`, i.e. on `[2^-24, 1]`.)
 */
export function logCephesF32(x: number): number {
  if (x < MIN_NORM_POS) x = MIN_NORM_POS; // cut off denormals (and the invalid range, which the kernel never sees)
  BITS_F32[0] = x;
  const bits = BITS_U32[0]!;
  let e = (bits >>> 23) - 127 + 1; // small integer: exact as float32
  BITS_U32[0] = (bits & ~0x7f800000) | 0x3f000000; // keep the mantissa, exponent of 0.5: m in [0.5, 1)
  const m = BITS_F32[0]!;
  let xr: number;
  if (m < SQRTHF) {
    e -= 1;
    xr = fround(fround(m - 1) + m);
  } else {
    xr = fround(m - 1);
  }
  const z = fround(xr * xr);
  let y = LOG_P0;
  y = fma32(y, xr, LOG_P1);
  y = fma32(y, xr, LOG_P2);
  y = fma32(y, xr, LOG_P3);
  y = fma32(y, xr, LOG_P4);
  y = fma32(y, xr, LOG_P5);
  y = fma32(y, xr, LOG_P6);
  y = fma32(y, xr, LOG_P7);
  y = fma32(y, xr, LOG_P8);
  y = fround(y * xr);
  y = fma32(y, z, fround(e * LOG_Q1));
  y = fma32(-z, 0.5, y);
  xr = fround(xr + y);
  return fma32(e, LOG_Q2, xr);
}

/**
 * `sin(x)` and `cos(x)` of a float32 `x` in `[0, 2π)` exactly as `sincos256_ps` computes them under GCC's FMA
 * contraction; writes `out[0] = sin`, `out[1] = cos` (no allocation in the hot loop).
 */
export function sincosCephesF32(x: number, out: Float64Array): void {
  // x >= 0 here, so the sign-of-input handling of sincos256_ps is the identity.
  const yq = fround(x * FOPI);
  const j = ((yq | 0) + 1) & ~1; // octant, rounded up to even (cephes)
  let xr = fma32(j, MINUS_DP1, x); // extended-precision x - j·π/4
  xr = fma32(j, MINUS_DP2, xr);
  xr = fma32(j, MINUS_DP3, xr);
  const z = fround(xr * xr);

  let c = fma32(COSCOF_P0, z, COSCOF_P1);
  c = fma32(c, z, COSCOF_P2);
  c = fround(c * z);
  c = fma32(c, z, -fround(z * 0.5));
  c = fround(c + 1);

  let s = fma32(SINCOF_P0, z, SINCOF_P1);
  s = fma32(s, z, SINCOF_P2);
  s = fround(s * z);
  s = fma32(s, xr, xr);

  let sin = s;
  let cos = c;
  if (j & 2) {
    sin = c;
    cos = s;
  }
  if (j & 4) sin = -sin;
  if (~(j - 2) & 4) cos = -cos;
  out[0] = sin;
  out[1] = cos;
}

const SINCOS = new Float64Array(2);

/**
 * torch's `normal_fill_16_AVX2` with mean 0 and std 1 on `d[o .. o+16)`, which holds float32 uniforms in `[0, 1)`:
 * Box–Muller on the pairs `(d[o+j], d[o+j+8])`, j = 0..7, in place.
 */
export function normalFill16(d: Float32Array, o: number): void {
  for (let j = o; j < o + 8; j++) {
    const u1 = fround(1 - d[j]!);
    const u2 = d[j + 8]!;
    const radius = fround(Math.sqrt(fround(-2 * logCephesF32(u1))));
    const theta = fround(TWO_PI_F32 * u2);
    sincosCephesF32(theta, SINCOS);
    // `+ 0` is the kernel's final `fmadd(n, std = 1, mean = 0)`, which turns -0 into +0.
    d[j] = fround(radius * SINCOS[1]!) + 0;
    d[j + 8] = fround(radius * SINCOS[0]!) + 0;
  }
}

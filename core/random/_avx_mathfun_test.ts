import assert from "node:assert/strict";
import { fma32, logCephesF32, sincosCephesF32 } from "./_avx_mathfun.ts";

/** Splits a finite double into an exact rational `num / 2^shift` with `shift` fixed large enough for these tests. */
const SHIFT = 1100n;
function toScaled(x: number): bigint {
  if (x === 0) return 0n;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const sign = bits >> 63n ? -1n : 1n;
  const exp = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const mant = exp === 0 ? frac : frac | (1n << 52n);
  const e2 = BigInt((exp === 0 ? 1 : exp) - 1075); // x = mant * 2^e2
  return sign * (mant << (e2 + SHIFT));
}

/** Exact `a·b + c` rounded to float32, by exhaustive comparison with the float32 neighbours of the double result. */
function fmaReference(a: number, b: number, c: number): number {
  const exact = toScaled(a) * toScaled(b) / (1n << SHIFT) + toScaled(c); // a, b float32: no digits lost in the shift
  const approx = Math.fround(a * b + c);
  // Candidates: approx and its float32 neighbours; pick the nearest to `exact`, ties to even mantissa.
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = approx;
  const base = u32[0]!;
  let best = approx;
  let bestDist = -1n;
  let bestBits = base;
  for (const delta of [-1, 0, 1]) {
    u32[0] = (base + delta) >>> 0;
    const cand = f32[0]!;
    if (!Number.isFinite(cand)) continue;
    const d = toScaled(cand) - exact;
    const dist = d < 0n ? -d : d;
    if (bestDist < 0n || dist < bestDist || (dist === bestDist && (u32[0]! & 1) === 0 && (bestBits & 1) === 1)) {
      best = cand;
      bestDist = dist;
      bestBits = u32[0]!;
    }
  }
  return best;
}

/** A small deterministic PRNG (xorshift32) for test inputs. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

Deno.test("fma32() rounds a·b + c once to float32, including the double-rounding midpoint cases", async (t) => {
  await t.step("constructed midpoint cases that a plain fround(a * b + c) gets wrong", () => {
    const f = Math.fround;
    // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 is exactly halfway between two float32s; c = ±2^-80 vanishes in the float64
    // sum, so fround sees the midpoint and rounds to even, while the exact a·b + c lies on one side of it.
    // (1 + 2^-12)(1 + 3·2^-12) is a midpoint whose even neighbour is the upper one: the other direction.
    const hard: Array<[number, number, number]> = [
      [f(1 + 2 ** -12), f(1 + 2 ** -12), f(2 ** -80)],
      [f(1 + 2 ** -12), f(1 + 3 * 2 ** -12), f(-(2 ** -80))],
      [f(-1 - 2 ** -12), f(1 + 2 ** -12), f(-(2 ** -80))],
    ];
    for (const [a, b, c] of hard) {
      const want = fmaReference(a, b, c);
      assert.notEqual(f(a * b + c), want, `naive rounding must fail on ${a} ${b} ${c}`);
      assert.equal(fma32(a, b, c), want, `${a} ${b} ${c}`);
    }
    // The midpoint itself (c = 0) is a tie: round half to even, as fround does.
    assert.equal(fma32(f(1 + 2 ** -12), f(1 + 2 ** -12), 0), f(1 + 2 ** -11));
    assert.equal(fma32(f(1 + 2 ** -12), f(1 + 3 * 2 ** -12), 0), f(1 + 2 ** -10 + 2 ** -22));
  });
  await t.step("50,000 random float32 triples, including near-cancellation", () => {
    const next = xorshift(12345);
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const rnd = (lo: number, hi: number) => {
      // random sign, exponent in [lo, hi], random mantissa
      u32[0] = ((next() & 0x80000000) | ((lo + (next() % (hi - lo + 1))) << 23) | (next() & 0x7fffff)) >>> 0;
      return f32[0]!;
    };
    let mismatches = 0;
    for (let i = 0; i < 50_000; i++) {
      const a = rnd(100, 150);
      const b = rnd(100, 150);
      const c = i % 2 ? -Math.fround(a * b) + rnd(60, 110) : rnd(90, 160); // half: c cancels most of a·b
      const want = fmaReference(a, b, c);
      if (fma32(a, b, c) !== want) mismatches++;
    }
    assert.equal(mismatches, 0);
  });
});

Deno.test("logCephesF32() and sincosCephesF32() stay within float32 accuracy of the true functions", () => {
  const next = xorshift(99);
  const sc = new Float64Array(2);
  let maxLogErr = 0;
  let maxTrigErr = 0;
  for (let i = 0; i < 20_000; i++) {
    const u = Math.fround(((next() & 0xffffff) + 1) * 2 ** -24); // (0, 1], as the kernel's 1 - uniform
    maxLogErr = Math.max(maxLogErr, Math.abs(logCephesF32(u) - Math.log(u)) / Math.max(1, Math.abs(Math.log(u))));
    const theta = Math.fround(2 * Math.PI * (next() & 0xffffff) * 2 ** -24);
    sincosCephesF32(theta, sc);
    maxTrigErr = Math.max(maxTrigErr, Math.abs(sc[0]! - Math.sin(theta)), Math.abs(sc[1]! - Math.cos(theta)));
  }
  assert.ok(maxLogErr < 4e-7, `log error ${maxLogErr}`);
  assert.ok(maxTrigErr < 4e-7, `sincos error ${maxTrigErr}`);
  assert.equal(logCephesF32(1), 0);
});

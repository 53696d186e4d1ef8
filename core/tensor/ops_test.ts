import assert from "node:assert/strict";
import {
  abs,
  absMean,
  absSum,
  add,
  addScalar,
  assertSameShape,
  clamp,
  div,
  divScalar,
  f32,
  fma32,
  linearCombination,
  map,
  map2,
  map3,
  maxAbsDiff,
  mul,
  mulScalar,
  quantile,
  sameShape,
  sub,
  Tensor,
} from "./mod.ts";

const t = (values: number[], shape: number[] = [values.length]) => new Tensor(new Float32Array(values), shape);

function nextUp32(x: number): number {
  if (x === 0) return 2 ** -149;
  const b = new Float32Array([x]);
  const u = new Uint32Array(b.buffer);
  u[0] = x > 0 ? u[0]! + 1 : u[0]! - 1;
  return b[0]!;
}

/** The float32 nearest to `num · 2^-200` (ties to even), by exact BigInt comparison of the three candidates. */
function nearestF32(num: bigint): number {
  const approx = f32(Number(num) * 2 ** -200);
  const candidates = [-nextUp32(-approx), approx, nextUp32(approx)];
  const scaled = (x: number) => BigInt(x * 2 ** 100) * 2n ** 100n; // exact for the magnitudes used here
  const dist = (x: number) => {
    const d = scaled(x) - num;
    return d < 0n ? -d : d;
  };
  const odd = (x: number) => (new Uint32Array(new Float32Array([x]).buffer)[0]! & 1) === 1;
  let best = candidates[0]!;
  for (const c of candidates.slice(1)) {
    const dc = dist(c), db = dist(best);
    if (dc < db || (dc === db && odd(best))) best = c;
  }
  return best;
}

Deno.test("fma32() rounds a·b + c once, like a fused float32 multiply-add", async (t) => {
  await t.step("the double-rounding trap: a float64 sum landing exactly on a float32 midpoint", () => {
    const a = f32(2 ** -12 * (1 + 2 ** -23));
    const b = f32(2 ** -12 * (1 - 2 ** -23));
    const c = 1 + 2 ** -23;
    // exact: 1 + 2^-23 + 2^-24 − 2^-70, just below the midpoint → 1 + 2^-23; naive rounding gives 1 + 2^-22.
    assert.equal(f32(a * b + c), 1 + 2 ** -22);
    assert.equal(fma32(a, b, c), 1 + 2 ** -23);
    assert.equal(fma32(-a, -b, c), 1 + 2 ** -23);
    assert.equal(fma32(a, -b, -c), -(1 + 2 ** -23));
  });
  await t.step("agrees with exact rational rounding on 2000 pseudo-random triples", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 2000; i++) {
      const a = f32((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
      const b = f32((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
      const c = f32((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
      // exact a·b + c as an integer times 2^-200
      const scale = (x: number) => BigInt(x * 2 ** 100); // a, b, c have ≤ 24 significant bits and exponents ≥ −40
      const exact = scale(a) * scale(b) + scale(c) * 2n ** 100n;
      assert.equal(fma32(a, b, c), nearestF32(exact), `fma32(${a}, ${b}, ${c})`);
    }
  });
});

Deno.test("element-wise ops round to float32 after each operation", () => {
  const x = t([0.1, 1e-8, 3]);
  const y = t([0.2, 1, 7]);
  assert.deepEqual(Array.from(add(x, y).data), [f32(f32(0.1) + f32(0.2)), f32(f32(1e-8) + 1), 10]);
  assert.deepEqual(Array.from(sub(x, y).data), [f32(f32(0.1) - f32(0.2)), f32(f32(1e-8) - 1), -4]);
  assert.deepEqual(Array.from(mul(x, y).data), [f32(f32(0.1) * f32(0.2)), f32(1e-8), 21]);
  assert.deepEqual(Array.from(div(x, y).data), [f32(f32(0.1) / f32(0.2)), f32(1e-8), f32(3 / 7)]);
  // Scalars are rounded to float32 first (torch's python-scalar semantics): 0.1 as float32 times 9.
  assert.equal(mulScalar(t([9]), 0.1).data[0], f32(f32(0.1) * 9));
  assert.notEqual(f32(f32(0.1) * 9), f32(0.1 * 9));
  assert.equal(addScalar(t([1]), 1e-9).data[0], 1);
  assert.equal(divScalar(t([1]), 3).data[0], f32(1 / 3));
});

Deno.test("ops write into `out`, which may alias an input, and check shapes", () => {
  const x = t([1, 2, 3, 4], [2, 2]);
  const same = add(x, x, x);
  assert.equal(same, x);
  assert.deepEqual(Array.from(x.data), [2, 4, 6, 8]);
  assert.throws(() => add(x, t([1, 2, 3, 4])), /shape \[2, 2\] does not match b shape \[4\]/);
  assert.throws(() => mulScalar(x, 2, Tensor.zeros([4])), /out shape \[4\] does not match input shape \[2, 2\]/);
  assert.throws(() => assertSameShape(x, t([1]), ["modelOutput", "sample"]), TypeError);
  assert.ok(sameShape([1, 2], [1, 2]) && !sameShape([1, 2], [2, 1]) && !sameShape([1], [1, 1]));
});

Deno.test("linearCombination() evaluates c0·t0 + c1·t1 + … in torch's order", () => {
  const e1 = t([0.1, 0.7]), e2 = t([0.3, -0.2]), e3 = t([1e-3, 5]), e4 = t([2, 0.25]);
  const got = linearCombination([[55, e1], [-59, e2], [37, e3], [-9, e4]]);
  for (let i = 0; i < 2; i++) {
    const [a, b, c, d] = [e1, e2, e3, e4].map((x) => x.data[i]!) as [number, number, number, number];
    const expected = f32(f32(f32(f32(55 * a) - f32(59 * b)) + f32(37 * c)) - f32(9 * d));
    assert.equal(got.data[i], expected);
  }
  // in place into one of its inputs
  linearCombination([[3, e1], [-1, e2]], e1);
  assert.equal(e1.data[0], f32(f32(3 * f32(0.1)) - f32(0.3)));
  assert.throws(() => linearCombination([]), /at least one term/);
  assert.throws(() => linearCombination([[1, e1], [1, t([1])]]), TypeError);
});

Deno.test("clamp(), abs(), map*() and reductions", () => {
  const x = t([-2, -0.5, NaN, 0.5, 2]);
  assert.deepEqual(Array.from(clamp(x, -1, 1).data), [-1, -0.5, NaN, 0.5, 1]);
  assert.deepEqual(Array.from(clamp(t([0, 5]), 3, 2).data), [2, 2]); // lo > hi → hi, as torch
  assert.deepEqual(Array.from(abs(t([-1, 2])).data), [1, 2]);
  assert.deepEqual(Array.from(map(t([1, 2]), (v, i) => v * 10 + i).data), [10, 21]);
  assert.deepEqual(Array.from(map2(t([1, 2]), t([3, 4]), (a, b) => a * b).data), [3, 8]);
  assert.deepEqual(Array.from(map3(t([1]), t([2]), t([3]), (a, b, c) => a + b * c).data), [7]);
  assert.throws(() => map3(t([1]), t([2]), t([3, 4]), () => 0), TypeError);
  assert.equal(absSum(t([-1, 2, -3])), 6);
  assert.equal(absMean(t([-1, 2, -3])), 2);
  assert.deepEqual(maxAbsDiff(t([1, 2, 3]), t([1, 2.5, 2])), { max: 1, index: 2 });
  assert.deepEqual(maxAbsDiff(t([NaN, 1]), t([NaN, 1])), { max: 0, index: 0 });
  assert.equal(maxAbsDiff(t([NaN]), t([0])).max, Infinity);
});

Deno.test("quantile() is torch.quantile with linear interpolation in float32", () => {
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([4, 3, 2, 1], 0), 1);
  assert.equal(quantile([4, 3, 2, 1], 1), 4);
  assert.equal(quantile([7], 0.3), 7);
  // 0..99 at 0.995: rank = f32(f32(0.995)·99) = 98.50499725341797, lerp(98, 99, 0.505) from the "end" side
  const values = Array.from({ length: 100 }, (_, i) => 99 - i);
  const rank = f32(f32(0.995) * 99);
  const w = f32(rank - 98);
  assert.equal(quantile(values, 0.995), f32(99 - f32(f32(99 - 98) * f32(1 - w))));
  assert.ok(Math.abs(quantile(values, 0.995) - 98.505) < 1e-5);
  assert.ok(Number.isNaN(quantile([1, NaN, 3], 0.5)));
  assert.throws(() => quantile([], 0.5), RangeError);
  assert.throws(() => quantile([1], 1.5), /q must be in \[0, 1\]: got 1.5/);
  const input = [3, 1, 2];
  quantile(input, 0.5);
  assert.deepEqual(input, [3, 1, 2]);
});

import assert from "node:assert/strict";
import { Generator } from "./mod.ts";
import { Mt19937 } from "./_mt19937.ts";

interface RngCase {
  seed: number;
  seed_int?: string;
  shape: number[];
  numel: number;
  mt19937_u32_consumed?: number;
  values: number[];
}
interface RngFixture {
  randn: RngCase[];
  rand: RngCase[];
  mt19937_first_outputs: Record<string, number[]>;
  checks: { cache_example: { seed: number; first_randn_3: number[]; second_randn_3: number[] } };
}

async function loadFixture(): Promise<RngFixture> {
  const url = new URL("../../tests/fixtures/schedulers/torch_rng.json.gz", import.meta.url);
  const bytes = await Deno.readFile(url);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text()) as RngFixture;
}

/** Indices where the float32 bit patterns of `actual` and `expected` (JSON numbers, float32 values) differ. */
function bitMismatches(actual: Float32Array, expected: readonly number[]): number[] {
  const want = new Uint32Array(Float32Array.from(expected).buffer);
  const got = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const bad: number[] = [];
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) bad.push(i);
  return bad;
}

const fixture = await loadFixture();

Deno.test("Mt19937 matches torch's first outputs for every fixture seed (2^32+5 reduced mod 2^32)", () => {
  const entries = Object.entries(fixture.mt19937_first_outputs);
  assert.ok(entries.length >= 4);
  for (const [seed, outputs] of entries) {
    const engine = new Mt19937(Number(BigInt(seed) & 0xffffffffn));
    assert.deepEqual(outputs.map(() => engine.nextU32()), outputs, `seed ${seed}`);
  }
});

Deno.test("Generator.randn() equals every torch_rng.json randn value bit for bit", async (t) => {
  assert.ok(fixture.randn.length >= 12);
  for (const c of fixture.randn) {
    await t.step(`seed ${c.seed} shape [${c.shape.join(", ")}]`, () => {
      assert.equal(c.values.length, c.numel);
      const out = new Generator(c.seed).randn(c.shape);
      assert.deepEqual(out.shape, c.shape);
      assert.deepEqual(bitMismatches(out.data, c.values), []);
      // The same case with the seed given as a bigint (the fixture's exact integer).
      const fromBig = new Generator(BigInt(c.seed_int ?? c.seed)).randn(c.shape);
      assert.deepEqual(bitMismatches(fromBig.data, c.values), []);
    });
  }
});

Deno.test("Generator.randn() consumes exactly as many MT19937 words as torch", async (t) => {
  for (const c of fixture.randn) {
    const consumed = c.mt19937_u32_consumed;
    if (consumed === undefined) continue;
    await t.step(`seed ${c.seed} shape [${c.shape.join(", ")}] uses ${consumed} words`, () => {
      const g = new Generator(c.seed);
      g.randn(c.shape);
      const reference = new Generator(c.seed);
      reference.rand([consumed]);
      assert.deepEqual(g.rand([8]).data, reference.rand([8]).data);
    });
  }
});

Deno.test("Generator.rand() equals every torch_rng.json rand value bit for bit", () => {
  assert.ok(fixture.rand.length >= 2);
  for (const c of fixture.rand) {
    const out = new Generator(c.seed).rand(c.shape);
    assert.deepEqual(out.shape, c.shape);
    assert.deepEqual(bitMismatches(out.data, c.values), [], `seed ${c.seed} shape [${c.shape}]`);
  }
});

Deno.test("Generator.randn() carries the cached normal across small calls and manualSeed() clears it", () => {
  const { seed, first_randn_3, second_randn_3 } = fixture.checks.cache_example;
  const g = new Generator(seed);
  assert.deepEqual(bitMismatches(g.randn([3]).data, first_randn_3), []);
  assert.deepEqual(bitMismatches(g.randn([3]).data, second_randn_3), []);
  // After re-seeding the stream restarts: the cached value of the previous stream is gone.
  g.manualSeed(seed);
  assert.deepEqual(bitMismatches(g.randn([3]).data, first_randn_3), []);
  // A 16+ draw neither uses nor clears the cache: 3 small values leave one cached for the next small draw.
  const a = new Generator(seed);
  a.randn([3]);
  a.randn([16]);
  const b = new Generator(seed);
  b.randn([3]);
  b.rand([16]); // the same 16 words, without touching the cache
  assert.deepEqual(a.randn([1]).data, b.randn([1]).data);
});

Deno.test("Generator.randn() of 7 then 7 equals randn of 7 continued (cached value first)", () => {
  // seed 0, randn(15) is 8 pairs; randn(7) + randn(7) is 4 pairs + the cached value + 3 more pairs (one cached).
  const r15 = fixture.randn.find((c) => c.seed === 0 && c.numel === 15);
  assert.ok(r15);
  const g = new Generator(0);
  const joined = [...g.randn([7]).data, ...g.randn([7]).data];
  assert.deepEqual(bitMismatches(Float32Array.from(joined), r15.values.slice(0, 14)), []);
});

Deno.test("Generator seeds: mod 2^32, negative seeds as torch's uint64, initialSeed", async (t) => {
  await t.step("2^32 + 5 gives the stream of 5, and initialSeed keeps the full value", () => {
    const g = new Generator(2 ** 32 + 5);
    assert.deepEqual(g.randn([20]).data, new Generator(5).randn([20]).data);
    assert.equal(g.initialSeed, 2 ** 32 + 5);
  });
  await t.step("-1 reads back as 2^64 - 1 and gives the stream of 2^32 - 1", () => {
    const g = new Generator(-1);
    assert.equal(g.initialSeed, (1n << 64n) - 1n);
    assert.deepEqual(g.rand([4]).data, new Generator(0xffffffff).rand([4]).data);
    assert.deepEqual(new Generator(-1n).rand([4]).data, new Generator(2n ** 64n - 1n).rand([4]).data);
  });
  await t.step("the constructor without a seed draws one in [0, 2^32) that reproduces the stream", () => {
    const g = new Generator();
    const seed = g.initialSeed;
    assert.equal(typeof seed, "number");
    assert.ok(Number.isInteger(seed) && (seed as number) >= 0 && (seed as number) < 2 ** 32);
    assert.deepEqual(g.randn([33]).data, new Generator(seed).randn([33]).data);
  });
  await t.step("manualSeed() returns this and resets the stream", () => {
    const g = new Generator(1);
    const first = g.randn([40]).data.slice();
    assert.equal(g.manualSeed(1), g);
    assert.deepEqual(g.randn([40]).data, first);
  });
});

Deno.test("Generator rejects bad seeds with the value in the message", () => {
  assert.throws(() => new Generator(1.5), { name: "RangeError", message: /seed .*got 1\.5/ });
  assert.throws(() => new Generator(Number.NaN), RangeError);
  assert.throws(() => new Generator(2n ** 64n), { name: "RangeError", message: /got 18446744073709551616/ });
  assert.throws(() => new Generator(-(2n ** 63n) - 1n), RangeError);
  assert.throws(() => new Generator(2 ** 64), RangeError);
  assert.throws(() => new Generator("1" as unknown as number), { name: "TypeError", message: /got string/ });
  assert.throws(() => new Generator(1).manualSeed(null as unknown as number), { name: "TypeError", message: /null/ });
  assert.doesNotThrow(() => new Generator(-(2n ** 63n)));
});

Deno.test("Generator.randn()/rand() validate shapes and handle empty and scalar shapes", () => {
  const g = new Generator(0);
  assert.throws(() => g.randn([2, -1]), TypeError);
  assert.throws(() => g.rand([1.5]), TypeError);
  assert.equal(g.randn([0, 4]).size, 0);
  const scalar = new Generator(0).randn([]);
  assert.deepEqual(scalar.shape, []);
  const r7 = fixture.randn.find((c) => c.seed === 0 && c.numel === 7);
  assert.ok(r7);
  assert.deepEqual(bitMismatches(scalar.data, r7.values.slice(0, 1)), []);
});

Deno.test("Generator.randnInto()/randInto() fill a buffer like randn()/rand() of that size", () => {
  const a = new Generator(42);
  const b = new Generator(42);
  const buf = new Float32Array(4096);
  assert.equal(a.randnInto(buf), buf);
  assert.deepEqual(buf, b.randn([1, 4, 32, 32]).data);
  assert.deepEqual(a.randnInto(new Float32Array(17)), b.randn([17]).data);
  assert.deepEqual(a.randInto(new Float32Array(5)), b.rand([5]).data);
});

Deno.test("Generator.clone()/getState()/setState() resume the same stream", () => {
  const g = new Generator(7);
  g.randn([5]); // leaves a cached normal value
  g.rand([700]); // crosses a twist
  const copy = g.clone();
  const saved = g.getState();
  const expected = [...g.randn([3]).data, ...g.randn([100]).data];
  assert.deepEqual([...copy.randn([3]).data, ...copy.randn([100]).data], expected);
  g.setState(saved);
  assert.deepEqual([...g.randn([3]).data, ...g.randn([100]).data], expected);
  assert.equal(copy.initialSeed, 7);
  assert.throws(() => g.setState({ ...saved, index: 625 }), { name: "TypeError", message: /state\.index .*625/ });
  assert.throws(() => g.setState({ ...saved, mt: new Uint32Array(3) }), TypeError);
  assert.throws(() => g.setState(null as unknown as typeof saved), TypeError);
});

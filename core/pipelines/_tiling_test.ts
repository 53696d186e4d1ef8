import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { axisWeights, planAxis, planTiles, runTiled, TiledRunner } from "./_tiling.ts";

Deno.test("planAxis() covers the axis with aligned, overlapping windows ending at the border", () => {
  assert.deepEqual(planAxis(64, 128, 32, 8), { starts: [0], size: 64 });
  assert.deepEqual(planAxis(64, 64, 16, 8), { starts: [0], size: 64 });
  assert.deepEqual(planAxis(256, 128, 32, 8), { starts: [0, 64, 128], size: 128 });
  assert.deepEqual(planAxis(100, 32, 8, 2), { starts: [0, 22, 44, 68], size: 32 });
  for (const [length, tile, overlap, align] of [[96, 32, 8, 8], [200, 48, 12, 4], [64, 16, 0, 8], [40, 16, 14, 2]]) {
    const p = planAxis(length!, tile!, overlap!, align!);
    assert.equal(p.starts[0], 0);
    assert.equal(p.starts.at(-1)! + p.size, length);
    p.starts.forEach((s, i) => {
      assert.equal(s % align!, 0, `start ${s} aligned to ${align}`);
      if (i > 0) assert.ok(p.starts[i - 1]! + p.size - s >= overlap!, `overlap at ${s}`);
    });
  }
});

Deno.test("axisWeights() ramps over overlaps so neighbouring windows sum to 1, with no taper at the borders", () => {
  const plan = planAxis(256, 128, 32, 8); // starts 0, 64, 128
  const w = [0, 1, 2].map((i) => axisWeights(plan, i, 1));
  assert.equal(w[0]![0], 1, "no taper at the image border");
  assert.equal(w[2]![127], 1);
  const sum = new Float64Array(256);
  w.forEach((wi, i) => wi.forEach((v, k) => (sum[plan.starts[i]! + k]! += v)));
  for (const v of sum) assert.ok(v > 0.5 && v < 2.01, `weight sum ${v}`);
  // Where exactly two windows overlap, the ramps are complementary.
  const two = planAxis(224, 128, 32, 8); // starts 0, 96
  const [a, b] = [axisWeights(two, 0, 4), axisWeights(two, 1, 4)];
  for (let k = 0; k < 32 * 4; k++) assert.ok(Math.abs(a![96 * 4 + k]! + b![k]! - 1) < 1e-12);
  // The quarter of the overlap next to a tile's inner edge gets no weight; the middle half ramps smoothly.
  assert.ok(b!.subarray(0, 32).every((v) => v === 0) && a!.subarray(96 * 4 + 96).every((v) => v === 0));
  for (let k = 33; k < 96; k++) assert.ok(b![k]! > b![k - 1]! && b![k]! - b![k - 1]! < 0.03, `smooth at ${k}`);
});

Deno.test("runTiled() reproduces a pixel-local function exactly and stitches scaled outputs", async () => {
  const [n, c, h, w] = [2, 3, 40, 56];
  const input = new Tensor(Float32Array.from({ length: n * c * h * w }, (_, i) => Math.sin(i * 0.013)), [n, c, h, w]);
  const local = (tile: Tensor) => {
    const [tn, tc, th, tw] = tile.shape as [number, number, number, number];
    const out = new Float32Array(tn * tc * th * 2 * tw * 2);
    for (let p = 0; p < tn * tc; p++) {
      for (let y = 0; y < th * 2; y++) {
        for (let x = 0; x < tw * 2; x++) {
          out[(p * th * 2 + y) * tw * 2 + x] = Math.exp(tile.data[(p * th + (y >> 1)) * tw + (x >> 1)]!);
        }
      }
    }
    return Promise.resolve(new Tensor(out, [tn, tc, th * 2, tw * 2]));
  };
  const whole = await local(input);
  let calls = 0;
  const plan = planTiles(h, w, 16, 6, 2);
  assert.equal(plan.count, plan.rows.starts.length * plan.cols.starts.length);
  assert.ok(plan.count >= 9);
  const tiled = await runTiled(input, plan, 2, (t) => {
    calls++;
    return local(t);
  });
  assert.equal(calls, plan.count);
  assert.deepEqual(tiled.shape, whole.shape);
  let max = 0;
  for (let i = 0; i < whole.size; i++) max = Math.max(max, Math.abs(tiled.data[i]! - whole.data[i]!));
  assert.ok(max < 1e-6, `max difference ${max}`);
  await assert.rejects(
    () => runTiled(input, plan, 2, () => Promise.resolve(Tensor.zeros([2, 3, 5, 5]))),
    /tile output has shape \[2, 3, 5, 5\], expected \[2, C, 32, 32\]/,
  );
});

Deno.test("TiledRunner.run() gives runTiled()'s result on every call, each in a fresh buffer", async () => {
  const [n, c, h, w] = [1, 2, 24, 40];
  const plan = planTiles(h, w, 16, 6, 2);
  const runner = new TiledRunner(plan, 1);
  const model = (tile: Tensor) =>
    Promise.resolve(new Tensor(tile.data.map((v, i) => Math.tanh(v) + ((i % 7) - 3) * 0.01), tile.shape));
  const outputs: Tensor[] = [];
  for (let k = 0; k < 3; k++) {
    const input = new Tensor(Float32Array.from({ length: n * c * h * w }, (_, i) => Math.sin(i * 0.1 + k)), [
      n,
      c,
      h,
      w,
    ]);
    const reused = await runner.run(input, model);
    const fresh = await runTiled(input, plan, 1, model);
    assert.deepEqual([...reused.data], [...fresh.data], `call ${k}`);
    outputs.push(reused);
  }
  assert.ok(outputs[0]!.data !== outputs[1]!.data && outputs[1]!.data !== outputs[2]!.data);
  assert.ok([...outputs[0]!.data].some((v, i) => v !== outputs[1]!.data[i]), "earlier results are not overwritten");
  await assert.rejects(
    () => runner.run(Tensor.zeros([1, 2, 24, 32]), model),
    /tiled input is 24×32, the tile grid covers 24×40/,
  );
});

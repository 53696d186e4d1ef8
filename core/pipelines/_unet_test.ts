import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import type { OnnxModel, OnnxValueInfo } from "../onnx/mod.ts";
import { firstNonFinite } from "./_checks.ts";
import { CallTimer, TimestepFeed, timestepFeed } from "./_unet.ts";

function withTimestep(shape: OnnxValueInfo["shape"]): OnnxModel {
  return {
    name: "unet",
    inputs: [{ name: "timestep", type: "float32", shape }],
    outputs: [],
    executionProvider: "fake",
    run: () => Promise.reject(new Error("not run")),
    dispose: () => Promise.resolve(),
  };
}

Deno.test("timestepFeed() shapes the feed as the graph declares it: [batch], [1] or a scalar", () => {
  assert.deepEqual(timestepFeed(withTimestep(["batch"]), 7, 3).shape, [3]);
  assert.deepEqual([...timestepFeed(withTimestep(["batch"]), 7, 3).data], [7, 7, 7]);
  assert.deepEqual(timestepFeed(withTimestep([1]), 7, 3).shape, [1]);
  assert.deepEqual(timestepFeed(withTimestep([]), 7, 3).shape, []);
});

Deno.test("TimestepFeed.at() refills one tensor per batch size instead of allocating per step", () => {
  const feed = new TimestepFeed(withTimestep(["batch"]), 2);
  const a = feed.at(999);
  assert.deepEqual([...a.data], [999, 999]);
  const b = feed.at(12.5);
  assert.equal(a, b);
  assert.deepEqual([...b.data], [12.5, 12.5]);
  assert.equal(feed.batch, 2);
  assert.deepEqual(new TimestepFeed(withTimestep([]), 4).at(3).shape, []);
});

Deno.test("CallTimer.run() times calls and rejects a NaN or ±Infinity output naming the model", async () => {
  assert.equal(firstNonFinite(new Float32Array([0, -0, 3e38, -3e38, 1e-45])), -1);
  for (const bad of [NaN, Infinity, -Infinity]) {
    assert.equal(firstNonFinite(new Float32Array([1, 2, bad, bad])), 2);
  }
  let value = 1;
  const model: OnnxModel = {
    ...withTimestep([]),
    name: "vaeDecoder",
    run: () => Promise.resolve({ sample: new Tensor(new Float32Array([0, 1, value]), [3]) }),
  };
  const timer = new CallTimer();
  assert.deepEqual([...(await timer.run(model, {}, "sample")).data], [0, 1, 1]);
  value = NaN;
  await assert.rejects(
    () => timer.run(model, {}, "sample"),
    /vaeDecoder produced a non-finite value \(NaN at element 2 of \[3\]\)/,
  );
  assert.equal(timer.calls, 2);
  assert.ok(timer.ms >= 0);
});

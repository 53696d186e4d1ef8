import assert from "node:assert/strict";
import { countParams, SyntheticWeights, unet2DConditionParams } from "./parameters.ts";
import { resolveUNet2DConditionConfig } from "./unet_2d_condition.ts";
import { readTinyConfig } from "./_test_utils.ts";

Deno.test("SyntheticWeights: seeded, per-name, initialiser-scaled values for a UNet state dict", async () => {
  const spec = unet2DConditionParams(resolveUNet2DConditionConfig(readTinyConfig("ldm-text2im/unet")));
  const w = new SyntheticWeights(spec, 1);
  assert.equal(countParams(spec), spec.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0));
  const conv = await w.readFloat32("conv_in.weight"); // [32, 4, 3, 3]: fan-in 36
  assert.equal(conv.length, 32 * 4 * 9);
  assert.ok(conv.every((v) => Math.abs(v) <= 1 / 6) && conv.some((v) => Math.abs(v) > 0.1));
  assert.deepEqual(await w.readFloat32("conv_in.weight"), conv, "the same values on every read");
  assert.notDeepEqual(await new SyntheticWeights(spec, 2).readFloat32("conv_in.weight"), conv, "seed matters");
  const norm = await w.readFloat32("conv_norm_out.weight");
  assert.ok(norm.every((v) => v >= 0.9 && v <= 1.1), "norm scales near 1");
  const bias = await w.readFloat32("conv_in.bias");
  assert.ok(bias.every((v) => Math.abs(v) <= 0.05));
  assert.equal(w.reads, 4);
  await assert.rejects(w.readFloat32("nope"), /no tensor 'nope'/);
  assert.throws(() => w.info("nope"), /no tensor 'nope'/);
});

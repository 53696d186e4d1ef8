import assert from "node:assert/strict";
import { loadOnnxModel } from "./session.ts";
import { Tensor } from "../tensor/mod.ts";

/** A committed graph with convolutions (onnxruntime lays them out for this CPU when optimising). */
const DECODER = new URL("../../models/builtin/ldm-text2im-tiny/vqvae/decoder.onnx", import.meta.url).pathname;

function latents(batch: number): Tensor {
  const t = Tensor.zeros([batch, 4, 8, 8]);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sin(i * 0.37);
  return t;
}

Deno.test("optimizedModelFilePath writes a pre-optimised graph that loads with optimisation disabled", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/decoder.opt.onnx`;
    const first = await loadOnnxModel(DECODER, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      optimizedModelFilePath: file,
    });
    const expected = (await first.run({ latent_sample: latents(1) })).sample!;
    await first.dispose();
    assert.ok((await Deno.stat(file)).size > 0);
    const again = await loadOnnxModel(file, { executionProviders: ["cpu"], graphOptimizationLevel: "disabled" });
    try {
      const got = (await again.run({ latent_sample: latents(1) })).sample!;
      assert.deepEqual([...got.shape], [...expected.shape]);
      let err = 0;
      for (let i = 0; i < got.size; i++) err = Math.max(err, Math.abs(got.data[i]! - expected.data[i]!));
      assert.ok(err <= 1e-6, `max abs difference ${err}`);
    } finally {
      await again.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("session tuning options are validated with the field named", async () => {
  await assert.rejects(
    loadOnnxModel(DECODER, { graphOptimizationLevel: "max" as "all" }),
    /graphOptimizationLevel must be one of disabled, basic, extended, layout, all: got "max"/,
  );
  await assert.rejects(
    loadOnnxModel(DECODER, { optimizedModelFilePath: "" }),
    /optimizedModelFilePath must be a file path: got ""/,
  );
});

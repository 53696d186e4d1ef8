import assert from "node:assert/strict";
import { Tensor } from "@ldm/core/tensor";
import { GraphBuilder } from "./builder.ts";
import { buildVQModelDecoder, buildVQModelEncoder, resolveVQModelConfig, vectorQuantize } from "./vq_model.ts";
import {
  addRandomWeights,
  assertClose,
  assertFinite,
  maxAbsDiff,
  MemoryWeights,
  openReferences,
  openTinyWeights,
  randomTensor,
  randomValues,
  readTinyConfig,
  referenceTensor,
  runGraph,
  seededRandom,
} from "./_test_utils.ts";
import { vaeParameterSpec } from "./_vae_test_spec.ts";

const COMPONENT = "ldm-super-resolution/vqvae";

/** Nearest codebook row by exact squared distance (first index on ties), per spatial position. */
function quantizeRef(z: Tensor, codebook: Float32Array, k: number): Tensor {
  const [n, d, h, w] = z.shape as [number, number, number, number];
  const out = new Float32Array(z.size);
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < h * w; p++) {
      let best = 0, bestDist = Infinity;
      for (let j = 0; j < k; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += (z.data[(b * d + c) * h * w + p]! - codebook[j * d + c]!) ** 2;
        if (s < bestDist) [best, bestDist] = [j, s];
      }
      for (let c = 0; c < d; c++) out[(b * d + c) * h * w + p] = codebook[best * d + c]!;
    }
  }
  return new Tensor(out, z.shape);
}

Deno.test("VQModel graphs reproduce diffusers on the tiny checkpoint", async (t) => {
  const config = readTinyConfig(COMPONENT);
  const weights = await openTinyWeights(COMPONENT);
  const refs = await openReferences();
  try {
    const z = await referenceTensor(refs, "vq.latent_sample");
    const decoded = await referenceTensor(refs, "vq.decoded");
    const image = await referenceTensor(refs, "vq.image");
    const latents = await referenceTensor(refs, "vq.encoded_latents");

    await t.step("decoder fp32 (quantise → post_quant_conv → decoder) within 1e-4", async () => {
      const out = await runGraph(buildVQModelDecoder(config, weights), { latent_sample: z });
      const err = assertClose(out.sample!, decoded, 1e-4, "vq.decoded");
      console.log(`    VQModel decoder fp32 max abs error ${err.toExponential(2)}`);
    });

    await t.step("encoder fp32 (before quantisation) within 1e-4", async () => {
      const out = await runGraph(buildVQModelEncoder(config, weights), { sample: image });
      const err = assertClose(out.latents!, latents, 1e-4, "vq.encoded_latents");
      console.log(`    VQModel encoder fp32 max abs error ${err.toExponential(2)}`);
    });

    await t.step("fp16 decoder and encoder within 2e-2, no NaN", async () => {
      const d = await runGraph(buildVQModelDecoder(config, weights, { dtype: "fp16" }), { latent_sample: z });
      const e0 = assertClose(d.sample!, decoded, 2e-2, "vq.decoded fp16");
      const e = await runGraph(buildVQModelEncoder(config, weights, { dtype: "fp16" }), { sample: image });
      const e1 = assertClose(e.latents!, latents, 2e-2, "vq.encoded_latents fp16");
      console.log(`    VQModel fp16: decoded ${e0.toExponential(2)} latents ${e1.toExponential(2)}`);
    });

    await t.step("the quantiser picks the exactly nearest codebook entries on the reference latents", async () => {
      const codebook = await weights.readFloat32("quantize.embedding.weight");
      const b = new GraphBuilder({ name: "vq", weights });
      b.output(
        vectorQuantize(b, b.input("z", "float32", ["n", 3, "h", "w"]), { numEmbeddings: 256, embedDim: 3 }),
        "q",
      );
      const out = await runGraph(b, { z });
      assertClose(out.q!, quantizeRef(z, codebook, 256), 1e-6, "quantised");
    });
  } finally {
    weights.close();
    refs.close();
  }
});

Deno.test("vectorQuantize() ties go to the lowest index and z + (e − z) is returned", async () => {
  // codebook rows 1 and 2 are equally far from (0, 0): torch.argmin returns the first, row 1.
  const weights = new MemoryWeights().set("quantize.embedding.weight", [3, 2], Float32Array.of(5, 5, 1, 0, -1, 0));
  const b = new GraphBuilder({ name: "vq", weights, dtype: "fp16" });
  b.output(vectorQuantize(b, b.input("z", "float32", [1, 2, 1, 2]), { numEmbeddings: 3, embedDim: 2 }), "q");
  const out = await runGraph(b, { z: new Tensor(Float32Array.of(0, 4.9, 0, 5.2), [1, 2, 1, 2]) });
  // position 0: (0, 0) → row 1 (1, 0); position 1: (4.9, 5.2) → row 0 (5, 5); layout [1, D, 1, 2]
  assert.deepEqual([...out.q!.data], [1, 5, 0, 5]);
});

Deno.test("VQModel config checks", async (t) => {
  const base = readTinyConfig(COMPONENT);
  await t.step("norm_type spatial is refused with a clear message", () => {
    assert.throws(
      () => resolveVQModelConfig({ ...base, norm_type: "spatial" }),
      /VQModel config: norm_type must be "group": got "spatial" \(the "spatial" decoder is not supported\)/,
    );
  });
  await t.step("vq_embed_dim defaults to latent_channels; bad values are named", () => {
    assert.equal(resolveVQModelConfig(base).vqEmbedDim, 3);
    assert.equal(resolveVQModelConfig({ ...base, vq_embed_dim: 5 }).vqEmbedDim, 5);
    assert.throws(
      () => resolveVQModelConfig({ ...base, num_vq_embeddings: -1 }),
      /num_vq_embeddings must be an integer >= 1: got -1/,
    );
    assert.throws(
      () => resolveVQModelConfig({ ...base, _class_name: "AutoencoderKL" }),
      /_class_name must be "VQModel"/,
    );
  });
});

Deno.test("VQModel graphs for another configuration (vq_embed_dim ≠ latent_channels, 3 blocks)", async () => {
  const config = {
    block_out_channels: [8, 16, 16],
    down_block_types: ["DownEncoderBlock2D", "AttnDownEncoderBlock2D", "DownEncoderBlock2D"],
    up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "AttnUpDecoderBlock2D"],
    layers_per_block: 1,
    norm_num_groups: 4,
    latent_channels: 4,
    vq_embed_dim: 2,
    num_vq_embeddings: 64,
  };
  const cfg = resolveVQModelConfig(config);
  const rand = seededRandom(9);
  const weights = addRandomWeights(
    new MemoryWeights(),
    vaeParameterSpec(cfg, "vq", { numEmbeddings: 64, embedDim: 2 }),
    rand,
  );
  weights.set("quantize.embedding.weight", [64, 2], randomValues(128, rand));
  const x = randomTensor([1, 3, 16, 8], rand);
  const enc = await runGraph(buildVQModelEncoder(config, weights), { sample: x });
  assert.deepEqual([...enc.latents!.shape], [1, 2, 4, 2]);
  assertFinite(enc.latents!.data, "latents");
  const dec = await runGraph(buildVQModelDecoder(config, weights), { latent_sample: enc.latents! });
  assert.deepEqual([...dec.sample!.shape], [1, 3, 16, 8]);
  assertFinite(dec.sample!.data, "decoded");
  // quantisation is idempotent: decoding the quantised latents again gives the same image
  const codebook = await weights.readFloat32("quantize.embedding.weight");
  const snapped = quantizeRef(enc.latents!, codebook, 64);
  const again = await runGraph(buildVQModelDecoder(config, weights), { latent_sample: snapped });
  assert.ok(maxAbsDiff(again.sample!.data, dec.sample!.data) < 1e-5);
  const d16 = await runGraph(buildVQModelDecoder(config, weights, { dtype: "fp16" }), { latent_sample: snapped });
  assertClose(d16.sample!, dec.sample!, 2e-2, "fp16 vs fp32");
});

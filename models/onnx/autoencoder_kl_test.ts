import assert from "node:assert/strict";
import { Tensor } from "@ldm/core/tensor";
import type { GraphBuilder } from "./builder.ts";
import { buildAutoencoderKLDecoder, buildAutoencoderKLEncoder, resolveAutoencoderKLConfig } from "./autoencoder_kl.ts";
import {
  addRandomWeights,
  assertClose,
  assertFinite,
  decodeModel,
  maxAbsDiff,
  MemoryWeights,
  openReferences,
  openTinyWeights,
  randomTensor,
  readTinyConfig,
  referenceTensor,
  runGraph,
  seededRandom,
} from "./_test_utils.ts";
import { vaeParameterSpec } from "./_vae_test_spec.ts";

const COMPONENT = "ldm-text2im/vqvae";

Deno.test("AutoencoderKL graphs reproduce diffusers on the tiny checkpoint", async (t) => {
  const config = readTinyConfig(COMPONENT);
  const weights = await openTinyWeights(COMPONENT);
  const refs = await openReferences();
  try {
    const z = await referenceTensor(refs, "vae.latent_sample");
    const decoded = await referenceTensor(refs, "vae.decoded");
    const image = await referenceTensor(refs, "vae.image");
    const mean = await referenceTensor(refs, "vae.latent_mean");
    const std = await referenceTensor(refs, "vae.latent_std");

    await t.step("decoder fp32: latent_sample → sample within 1e-4", async () => {
      const out = await runGraph(buildAutoencoderKLDecoder(config, weights), { latent_sample: z });
      const err = assertClose(out.sample!, decoded, 1e-4, "vae.decoded");
      console.log(`    AutoencoderKL decoder fp32 max abs error ${err.toExponential(2)}`);
    });

    await t.step("encoder fp32: sample → latent_mean, latent_std within 1e-4", async () => {
      const out = await runGraph(buildAutoencoderKLEncoder(config, weights), { sample: image });
      const e1 = assertClose(out.latent_mean!, mean, 1e-4, "vae.latent_mean");
      const e2 = assertClose(out.latent_std!, std, 1e-4, "vae.latent_std");
      console.log(
        `    AutoencoderKL encoder fp32 max abs error mean ${e1.toExponential(2)} std ${e2.toExponential(2)}`,
      );
    });

    for (const upcast of [undefined, false]) {
      const label = upcast === undefined ? "fp16 (force_upcast: fp32 compute)" : "fp16 compute (upcast off)";
      await t.step(`${label}: decoder and encoder within 2e-2, no NaN`, async () => {
        const dec = buildAutoencoderKLDecoder(config, weights, { dtype: "fp16", upcast });
        assert.equal(dec.computeType, upcast === undefined ? "float32" : "float16");
        const d = await runGraph(dec, { latent_sample: z });
        const e0 = assertClose(d.sample!, decoded, 2e-2, "vae.decoded fp16");
        const enc = await runGraph(buildAutoencoderKLEncoder(config, weights, { dtype: "fp16", upcast }), {
          sample: image,
        });
        const e1 = assertClose(enc.latent_mean!, mean, 2e-2, "vae.latent_mean fp16");
        const e2 = assertClose(enc.latent_std!, std, 2e-2, "vae.latent_std fp16");
        console.log(
          `    ${label}: decoded ${e0.toExponential(2)} mean ${e1.toExponential(2)} std ${e2.toExponential(2)}`,
        );
      });
    }

    await t.step("graphs keep diffusers module paths and declare symbolic shapes", async () => {
      const model = decodeModel(await buildAutoencoderKLDecoder(config, weights).toBytes());
      const names = new Set(model.nodes.map((n) => n.name));
      for (
        const n of ["decoder.conv_in", "decoder.mid_block.resnets.0.conv1", "decoder.up_blocks.0.upsamplers.0.conv"]
      ) {
        assert.ok(names.has(n), n);
      }
      assert.deepEqual(model.inputs[0]!.dims, ["batch", 4, "latent_height", "latent_width"]);
      assert.deepEqual(model.outputs[0]!.dims, ["batch", 3, "height", "width"]);
      assert.ok(!model.nodes.some((n) => n.opType === "GroupNormalization"));
    });
  } finally {
    weights.close();
    refs.close();
  }
});

Deno.test("AutoencoderKL config checks name the field and value", async (t) => {
  const base = readTinyConfig(COMPONENT);
  await t.step("unsupported block types list what is supported", () => {
    assert.throws(
      () => resolveAutoencoderKLConfig({ ...base, up_block_types: ["UpDecoderBlock2D", "UpBlock2D"] }),
      /AutoencoderKL config: up_block_types\[1\] is "UpBlock2D"; supported: "UpDecoderBlock2D", "AttnUpDecoderBlock2D"/,
    );
  });
  await t.step("mismatched lengths, bad groups, bad activation and another class are refused", () => {
    assert.throws(
      () => resolveAutoencoderKLConfig({ ...base, block_out_channels: [32, 64, 64] }),
      /down_block_types has 2 entries but block_out_channels has 3/,
    );
    assert.throws(
      () => resolveAutoencoderKLConfig({ ...base, norm_num_groups: 24 }),
      /AutoencoderKL config: norm_num_groups 24 must divide every block_out_channels entry: got \[32,64\]/,
    );
    assert.throws(() => resolveAutoencoderKLConfig({ ...base, act_fn: "tanh" }), /act_fn must be one of "swish"/);
    assert.throws(
      () => resolveAutoencoderKLConfig({ ...base, _class_name: "VQModel" }),
      /_class_name must be "AutoencoderKL"/,
    );
    assert.throws(
      () => resolveAutoencoderKLConfig({ ...base, layers_per_block: 0 }),
      /layers_per_block must be an integer >= 1: got 0/,
    );
  });
  await t.step("defaults follow AutoencoderKL.__init__", () => {
    const c = resolveAutoencoderKLConfig({});
    assert.deepEqual(c.blockOutChannels, [64]);
    assert.equal(c.layersPerBlock, 1);
    assert.equal(c.latentChannels, 4);
    assert.equal(c.forceUpcast, true);
  });
  await t.step("a missing or misshapen weight is named", async () => {
    const weights = await openTinyWeights(COMPONENT);
    try {
      assert.throws(
        () => buildAutoencoderKLDecoder({ ...base, latent_channels: 3 }, weights),
        /weight 'post_quant_conv\.weight' has shape \[4, 4, 1, 1\]; expected \[3, 3, 1, 1\]/,
      );
      assert.throws(
        () => buildAutoencoderKLEncoder({ ...base, mid_block_add_attention: true, layers_per_block: 2 }, weights),
        /weight 'encoder\.down_blocks\.0\.resnets\.1\.norm1\.weight' is missing/,
      );
    } finally {
      weights.close();
    }
  });
});

/** Structure and consistency checks for configurations the fixtures do not cover. */
Deno.test("AutoencoderKL graphs for other configurations", async (t) => {
  const configs: Record<string, Record<string, unknown>> = {
    "3 blocks, 2 layers, 8 groups, gelu, no quant convs": {
      block_out_channels: [16, 24, 32],
      down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
      up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
      layers_per_block: 2,
      norm_num_groups: 8,
      act_fn: "gelu",
      latent_channels: 3,
      in_channels: 1,
      out_channels: 2,
      use_quant_conv: false,
      use_post_quant_conv: false,
    },
    "1 block, attention blocks, no mid attention": {
      block_out_channels: [16],
      down_block_types: ["AttnDownEncoderBlock2D"],
      up_block_types: ["AttnUpDecoderBlock2D"],
      layers_per_block: 1,
      norm_num_groups: 4,
      mid_block_add_attention: false,
    },
  };
  for (const [label, config] of Object.entries(configs)) {
    await t.step(label, async () => {
      const cfg = resolveAutoencoderKLConfig(config);
      const rand = seededRandom(7);
      const weights = addRandomWeights(new MemoryWeights(), vaeParameterSpec(cfg, "kl"), rand);
      const factor = 2 ** (cfg.blockOutChannels.length - 1);
      const x = randomTensor([2, cfg.inChannels, 8, 12], rand);
      const run = async (b: GraphBuilder, feeds: Record<string, Tensor>) => await runGraph(b, feeds);
      const enc = await run(buildAutoencoderKLEncoder(config, weights), { sample: x });
      const latentShape = [2, cfg.latentChannels, Math.ceil(8 / factor), Math.ceil(12 / factor)];
      assert.deepEqual([...enc.latent_mean!.shape], latentShape);
      assertFinite(enc.latent_mean!.data, "mean");
      assert.ok(enc.latent_std!.data.every((v) => v > 0), "std > 0");
      const z = randomTensor([2, cfg.latentChannels, 3, 5], rand);
      const dec = await run(buildAutoencoderKLDecoder(config, weights), { latent_sample: z });
      assert.deepEqual([...dec.sample!.shape], [2, cfg.outChannels, 3 * factor, 5 * factor]);
      assertFinite(dec.sample!.data, "decoded");
      // deterministic, and each batch item is computed independently
      const again = await run(buildAutoencoderKLDecoder(config, weights), { latent_sample: z });
      assert.equal(maxAbsDiff(again.sample!.data, dec.sample!.data), 0);
      const single = await run(buildAutoencoderKLDecoder(config, weights), {
        latent_sample: new Tensor(z.data.slice(0, z.size / 2), [1, ...z.shape.slice(1)]),
      });
      assert.ok(maxAbsDiff(single.sample!.data, dec.sample!.data.subarray(0, dec.sample!.size / 2)) < 1e-5);
      // fp16 compute agrees with fp32
      const d16 = await run(buildAutoencoderKLDecoder(config, weights, { dtype: "fp16", upcast: false }), {
        latent_sample: z,
      });
      assertClose(d16.sample!, dec.sample!, 2e-2, "fp16 vs fp32 decoder");
      const e16 = await run(buildAutoencoderKLEncoder(config, weights, { dtype: "fp16", upcast: false }), {
        sample: x,
      });
      assertClose(e16.latent_mean!, enc.latent_mean!, 2e-2, "fp16 vs fp32 encoder");
    });
  }
});

import assert from "node:assert/strict";
import { loadOnnxModel, type OnnxFeed } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import { buildAutoencoderKLDecoder } from "./autoencoder_kl.ts";
import { feedForward, groupNormActivation, multiHeadAttention, skipLayerNorm } from "./blocks.ts";
import { GraphBuilder, type ModelDtype, type WeightSource } from "./builder.ts";
import { buildLDMBertModel } from "./ldm_bert.ts";
import {
  checkFixedDims,
  type GraphVariantOptions,
  OPTIMIZATION_TARGETS,
  type OptimizationTarget,
  parseFixedSize,
  PLAIN_GRAPH,
  resolveOptimizations,
} from "./optimize.ts";
import { buildUNet2DModel } from "./unet_2d.ts";
import { buildUNet2DConditionModel } from "./unet_2d_condition.ts";
import { buildVQModelDecoder } from "./vq_model.ts";
import { lowerContribOps } from "./_contrib_reference.ts";
import {
  assertClose,
  assertFinite,
  decodeModel,
  MemoryWeights,
  openReferences,
  openTinyWeights,
  randomTensor,
  randomValues,
  readTinyConfig,
  referenceTensor,
  seededRandom,
} from "./_test_utils.ts";

type Feeds = Record<string, OnnxFeed>;

/** Serialises `b`, lowers GPU-only contrib ops when asked, runs once on the CPU provider. */
async function run(b: GraphBuilder, feeds: Feeds): Promise<Record<string, Tensor>> {
  const { bytes } = lowerContribOps(await b.toBytes());
  const model = await loadOnnxModel(bytes, { executionProviders: ["cpu"] });
  try {
    return await model.run(feeds);
  } finally {
    await model.dispose();
  }
}

/** Op types in a serialised graph, contrib ops as `com.microsoft.X`. */
function opTypes(b: GraphBuilder): Set<string> {
  return new Set(Object.keys(b.stats.opCounts));
}

interface Case {
  component: string;
  build: (
    config: Record<string, unknown>,
    weights: WeightSource,
    options: { dtype?: ModelDtype } & GraphVariantOptions,
  ) => GraphBuilder;
  feeds: (refs: Awaited<ReturnType<typeof openReferences>>) => Promise<Feeds>;
  output: string;
  reference: string;
}

const CASES: Record<string, Case> = {
  "UNet2DConditionModel": {
    component: "ldm-text2im/unet",
    build: buildUNet2DConditionModel,
    feeds: async (r) => ({
      sample: await referenceTensor(r, "unet.sample"),
      timestep: await referenceTensor(r, "unet.timestep"),
      encoder_hidden_states: await referenceTensor(r, "unet.encoder_hidden_states"),
    }),
    output: "out_sample",
    reference: "unet.out_sample",
  },
  "UNet2DModel": {
    component: "ldm-super-resolution/unet",
    build: buildUNet2DModel,
    feeds: async (r) => ({
      sample: await referenceTensor(r, "srunet.sample"),
      timestep: await referenceTensor(r, "srunet.timestep"),
    }),
    output: "out_sample",
    reference: "srunet.out_sample",
  },
  "AutoencoderKL decoder": {
    component: "ldm-text2im/vqvae",
    build: buildAutoencoderKLDecoder,
    feeds: async (r) => ({ latent_sample: await referenceTensor(r, "vae.latent_sample") }),
    output: "sample",
    reference: "vae.decoded",
  },
  "VQModel decoder": {
    component: "ldm-super-resolution/vqvae",
    build: buildVQModelDecoder,
    feeds: async (r) => ({ latent_sample: await referenceTensor(r, "vq.latent_sample") }),
    output: "sample",
    reference: "vq.decoded",
  },
  "LDMBertModel": {
    component: "ldm-text2im/bert",
    build: buildLDMBertModel,
    feeds: async (r) => ({
      input_ids: { int64: await r.readInt64("bert.input_ids"), shape: r.info("bert.input_ids").shape },
    }),
    output: "last_hidden_state",
    reference: "bert.last_hidden_state",
  },
};

Deno.test("optimised graph variants match the plain graph and diffusers on the tiny fixtures", async (t) => {
  const refs = await openReferences();
  try {
    for (const [label, c] of Object.entries(CASES)) {
      const weights = await openTinyWeights(c.component);
      const config = readTinyConfig(c.component);
      try {
        const feeds = await c.feeds(refs);
        const expected = await referenceTensor(refs, c.reference);
        const plain = (await run(c.build(config, weights, {}), feeds))[c.output]!;
        await t.step(
          `${label}: fp32 within 1e-4 and fp16 within 2e-2 of the plain fp32 graph, per target`,
          async () => {
            const report: string[] = [];
            for (const target of OPTIMIZATION_TARGETS) {
              for (const dtype of ["fp32", "fp16"] as const) {
                const b = c.build(config, weights, { dtype, optimize: { target } });
                const out = (await run(b, feeds))[c.output]!;
                const tol = dtype === "fp32" ? 1e-4 : 2e-2;
                const err = assertClose(out, plain, tol, `${label} ${target} ${dtype} vs plain`);
                assertClose(out, expected, tol, `${label} ${target} ${dtype} vs diffusers`);
                report.push(`${target}/${dtype} ${err.toExponential(1)}`);
              }
            }
            console.log(`    ${label} max abs error vs plain fp32: ${report.join(", ")}`);
          },
        );
      } finally {
        weights.close();
      }
    }
  } finally {
    refs.close();
  }
});

Deno.test("each target emits only the contrib operators its provider implements", async (t) => {
  const config = readTinyConfig("ldm-text2im/unet");
  const weights = await openTinyWeights("ldm-text2im/unet");
  try {
    const ops = (optimize?: Parameters<typeof resolveOptimizations>[0]) =>
      opTypes(buildUNet2DConditionModel(config, weights, { optimize }));
    await t.step("plain: default domain only", () => {
      assert.ok([...ops()].every((o) => !o.startsWith("com.microsoft.")));
    });
    await t.step("cpu: MultiHeadAttention and BiasGelu; no SkipLayerNormalization, GroupNorm, BiasSplitGelu", () => {
      const o = ops({ target: "cpu" });
      for (const op of ["MultiHeadAttention", "BiasGelu"]) assert.ok(o.has(`com.microsoft.${op}`), op);
      for (const op of ["SkipLayerNormalization", "GroupNorm", "BiasSplitGelu"]) {
        assert.ok(!o.has(`com.microsoft.${op}`), op);
      }
      assert.ok(!o.has("Split") && !o.has("Erf") && !o.has("Softmax"), "GEGLU split and plain attention are gone");
    });
    await t.step("webgpu: MultiHeadAttention, SkipLayerNormalization, BiasSplitGelu; no GroupNorm", () => {
      const o = ops({ target: "webgpu" });
      for (const op of ["MultiHeadAttention", "SkipLayerNormalization", "BiasSplitGelu"]) {
        assert.ok(o.has(`com.microsoft.${op}`), op);
      }
      assert.ok(!o.has("com.microsoft.GroupNorm"));
    });
    await t.step(
      "cuda: GroupNorm (+SiLU) replaces InstanceNormalization in resnets; BiasSplitGelu only for its widths",
      () => {
        const b = buildUNet2DConditionModel(config, weights, { optimize: { target: "cuda" } });
        const counts = b.stats.opCounts;
        assert.ok((counts["com.microsoft.GroupNorm"] ?? 0) > 0);
        // The fixture's GEGLU width (2·128) is not one CUDA's BiasSplitGelu kernel has: BiasGelu instead.
        assert.equal(counts["com.microsoft.BiasSplitGelu"], undefined);
        assert.ok((counts["com.microsoft.BiasGelu"] ?? 0) > 0);
        // Only the transformers' GroupNorms (not followed by SiLU) stay InstanceNormalization.
        const plain = buildUNet2DConditionModel(config, weights).stats.opCounts;
        assert.equal(
          (counts["InstanceNormalization"] ?? 0) + (counts["com.microsoft.GroupNorm"] ?? 0),
          plain["InstanceNormalization"],
        );
      },
    );
    await t.step("each variant records its choices in the model metadata", async () => {
      const b = buildUNet2DConditionModel(config, weights, { optimize: { target: "cpu", attention: "plain" } });
      const meta = (await import("./_proto.ts")).onnx.ModelProto.decode(await b.toBytes()).metadataProps ?? [];
      const entry = meta.find((m) => m.key === "ldm_optimizations");
      assert.ok(entry);
      assert.deepEqual(JSON.parse(entry.value!), { ...resolveOptimizations({ target: "cpu", attention: "plain" }) });
    });
  } finally {
    weights.close();
  }
});

Deno.test("fixed dims make the inputs static and still match", async () => {
  const config = readTinyConfig("ldm-text2im/unet");
  const weights = await openTinyWeights("ldm-text2im/unet");
  const refs = await openReferences();
  try {
    const feeds = await CASES["UNet2DConditionModel"]!.feeds(refs);
    const fixedDims = { batch: 2, height: 16, width: 16, sequence: 77, unused: 3 };
    const b = buildUNet2DConditionModel(config, weights, { optimize: { target: "cpu" }, fixedDims });
    const model = decodeModel(await b.toBytes());
    assert.deepEqual(model.inputs.map((i) => i.dims), [[2, 4, 16, 16], [2], [2, 77, 32]]);
    assert.deepEqual(model.outputs[0]!.dims, [2, 4, 16, 16]);
    // 16 → 8 doubles exactly: the up block's upsampler is sub-pixel (no Resize left).
    assert.equal(b.stats.opCounts["Resize"], undefined);
    assert.equal(b.stats.opCounts["DepthToSpace"], 1);
    const out = await run(b, feeds);
    assertClose(out.out_sample!, await referenceTensor(refs, "unet.out_sample"), 1e-4, "fixed-size unet");
    const bad = await loadOnnxModel(await b.toBytes());
    try {
      await assert.rejects(
        bad.run({ ...feeds, sample: randomTensor([1, 4, 16, 16], seededRandom(1)) }),
        /dimension 0 = 2/,
      );
    } finally {
      await bad.dispose();
    }
  } finally {
    weights.close();
    refs.close();
  }
});

Deno.test("fused variants stay finite and close to the plain graph over a long random-input run", async () => {
  const config = readTinyConfig("ldm-text2im/unet");
  const weights = await openTinyWeights("ldm-text2im/unet");
  try {
    const load = async (options: { dtype?: ModelDtype } & GraphVariantOptions) =>
      await loadOnnxModel(lowerContribOps(await buildUNet2DConditionModel(config, weights, options).toBytes()).bytes);
    const plain = await load({});
    const variants = {
      "cpu fp32": await load({ optimize: { target: "cpu" } }),
      "cpu fp16": await load({ dtype: "fp16", optimize: { target: "cpu" } }),
      "webgpu fp16": await load({ dtype: "fp16", optimize: { target: "webgpu" } }),
      "cuda fp16": await load({ dtype: "fp16", optimize: { target: "cuda" } }),
    };
    const worst: Record<string, number> = {};
    try {
      const rand = seededRandom(7);
      for (let i = 0; i < 24; i++) {
        const batch = 1 + (i % 3);
        // Latents around N(0, σ²) with σ up to 14 (the first Euler/LMS steps), text states at LDMBert's scale.
        const sigma = [1, 4, 14][i % 3]!;
        const feeds = {
          sample: randomTensor([batch, 4, 16, 16], rand, sigma),
          timestep: new Tensor(Float32Array.from({ length: batch }, () => Math.floor(rand() * 1000)), [batch]),
          encoder_hidden_states: randomTensor([batch, 77, 32], rand, 3),
        };
        const ref = (await plain.run(feeds)).out_sample!;
        assertFinite(ref.data, "plain");
        for (const [label, m] of Object.entries(variants)) {
          const out = (await m.run(feeds)).out_sample!;
          const tol = label.endsWith("fp32") ? 1e-4 : 2e-2;
          const err = assertClose(out, ref, tol, `${label} input ${i}`);
          worst[label] = Math.max(worst[label] ?? 0, err);
        }
      }
    } finally {
      await plain.dispose();
      for (const m of Object.values(variants)) await m.dispose();
    }
    console.log(
      `    24 random inputs, worst max abs error vs plain: ${
        Object.entries(worst).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(", ")
      }`,
    );
  } finally {
    weights.close();
  }
});

Deno.test("fused blocks at LDM-256 widths match the plain blocks (CUDA BiasSplitGelu widths, GroupNorm + SiLU)", async (t) => {
  const rand = seededRandom(3);
  const w = new MemoryWeights();
  const dim = 320; // block_out_channels[0] of ldm-text2im-large-256: GEGLU inner 1280, projection 2560
  w.set("ff.net.0.proj.weight", [2 * 4 * dim, dim], randomValues(8 * dim * dim, rand, 1 / Math.sqrt(dim)));
  w.set("ff.net.0.proj.bias", [8 * dim], randomValues(8 * dim, rand, 0.05));
  w.set("ff.net.2.weight", [dim, 4 * dim], randomValues(4 * dim * dim, rand, 1 / Math.sqrt(4 * dim)));
  w.set("ff.net.2.bias", [dim], randomValues(dim, rand, 0.05));
  w.set("norm.weight", [dim], Float32Array.from({ length: dim }, () => 1 + (rand() - 0.5) * 0.2));
  w.set("norm.bias", [dim], randomValues(dim, rand, 0.1));
  const tokens = randomTensor([2, 16, dim], rand, 2);
  const map = randomTensor([2, dim, 4, 4], rand, 3);
  const build = (target: OptimizationTarget | null, dtype: ModelDtype) => {
    const b = new GraphBuilder({ name: "blocks", weights: w, dtype, optimize: target ? { target } : null });
    const x = b.toCompute(b.input("x", "float32", [2, 16, dim]));
    const m = b.toCompute(b.input("m", "float32", [2, dim, 4, 4]));
    b.output(feedForward(b, x, { name: "ff", dim }), "ff");
    b.output(groupNormActivation(b, m, { name: "norm", channels: dim, groups: 32, eps: 1e-5, fn: "silu" }), "gn");
    const s = skipLayerNorm(b, x, x, { name: "norm", dim });
    b.output(b.op("Add", [s.normed, s.sum]), "sln");
    b.output(multiHeadAttention(b, x, { key: x, value: x, heads: 8, headDim: dim / 8 }), "attn");
    return b;
  };
  const plain = await run(build(null, "fp32"), { x: tokens, m: map });
  for (const target of OPTIMIZATION_TARGETS) {
    for (const dtype of ["fp32", "fp16"] as const) {
      await t.step(`${target} ${dtype}`, async () => {
        const b = build(target, dtype);
        if (target === "cuda") {
          assert.equal(b.stats.opCounts["com.microsoft.BiasSplitGelu"], 1, "2560 is a width CUDA's kernel has");
          assert.equal(b.stats.opCounts["com.microsoft.GroupNorm"], 1);
        }
        const out = await run(b, { x: tokens, m: map });
        const tol = dtype === "fp32" ? 1e-4 : 2e-2;
        for (const k of ["ff", "gn", "sln", "attn"]) assertClose(out[k]!, plain[k]!, tol, `${target} ${dtype} ${k}`);
      });
    }
  }
});

Deno.test("resolveOptimizations validates targets and choices", async (t) => {
  await t.step("no options: the plain graph", () => {
    assert.equal(resolveOptimizations(undefined), PLAIN_GRAPH);
    assert.equal(resolveOptimizations(null), PLAIN_GRAPH);
  });
  await t.step("defaults per target", () => {
    assert.deepEqual({ ...resolveOptimizations({ target: "cpu" }) }, {
      target: "cpu",
      attention: true,
      skipLayerNorm: false,
      geglu: "bias-gelu",
      groupNorm: false,
      upsample: "subpixel",
    });
    assert.deepEqual({ ...resolveOptimizations({ target: "cuda" }) }, {
      target: "cuda",
      attention: true,
      skipLayerNorm: true,
      geglu: "bias-split-gelu",
      groupNorm: true,
      upsample: "resize",
    });
    assert.equal(resolveOptimizations({ target: "webgpu" }).groupNorm, false);
    assert.equal(resolveOptimizations({ target: "cpu", layerNorm: "fused" }).skipLayerNorm, true);
    assert.equal(resolveOptimizations({ target: "webgpu", upsample: "subpixel" }).upsample, "subpixel");
  });
  await t.step("errors name the field and the value", () => {
    assert.throws(
      () => resolveOptimizations({ target: "tpu" as OptimizationTarget }),
      /optimize.target must be one of cpu, webgpu, cuda: got "tpu"/,
    );
    assert.throws(
      () => resolveOptimizations({ target: "cpu", groupNorm: "fused" }),
      /optimize.groupNorm "fused" needs com.microsoft.GroupNorm, which the cpu provider does not implement/,
    );
    assert.throws(
      () => resolveOptimizations({ target: "cpu", attention: "yes" as "fused" }),
      /optimize.attention must be "fused" or "plain": got "yes"/,
    );
    assert.throws(
      () => resolveOptimizations({ target: "cpu", upsample: "bilinear" as "resize" }),
      /optimize.upsample must be "subpixel" or "resize": got "bilinear"/,
    );
    assert.throws(
      () => resolveOptimizations({ target: "cpu", flash: true } as unknown as { target: "cpu" }),
      /unknown option\(s\) flash/,
    );
  });
  await t.step("fixed sizes", () => {
    assert.deepEqual(parseFixedSize("32x32"), { height: 32, width: 32 });
    assert.deepEqual(parseFixedSize("2x32x48"), { batch: 2, height: 32, width: 48 });
    assert.throws(() => parseFixedSize("32"), /HEIGHTxWIDTH or BATCHxHEIGHTxWIDTH of positive integers: got "32"/);
    assert.throws(() => parseFixedSize("0x32"), /got "0x32"/);
    assert.throws(() => checkFixedDims({ batch: 1.5 }), /fixedDims.batch must be a positive integer: got 1.5/);
  });
});

Deno.test("GraphBuilder.weight rows: halves of a projection, checked", async () => {
  const w = new MemoryWeights().set("p.weight", [4, 3], Float32Array.from({ length: 12 }, (_, i) => i));
  const b = new GraphBuilder({ name: "rows", weights: w });
  const x = b.input("x", "float32", [1, 3]);
  const top = b.weight("p.weight", [4, 3], { transpose: true, rows: [0, 2] });
  const bottom = b.weight("p.weight", [4, 3], { transpose: true, rows: [2, 4] });
  b.output(b.op("MatMul", [x, top]), "top");
  b.output(b.op("MatMul", [x, bottom]), "bottom");
  assert.throws(
    () => b.weight("p.weight", [4, 3], { rows: [3, 5] }),
    /rows must be \[start, end\) with 0 <= start < end <= 4: got \[3, 5\]/,
  );
  const out = await run(b, { x: new Tensor(Float32Array.of(1, 10, 100), [1, 3]) });
  // x·W[rows]ᵀ: row r of W is [3r, 3r+1, 3r+2].
  assert.deepEqual([...out.top!.data], [210, 543]);
  assert.deepEqual([...out.bottom!.data], [876, 1209]);
});

Deno.test("sub-pixel upsampling only where the size doubles exactly: odd fixed sizes keep the resize", async () => {
  const config = readTinyConfig("ldm-text2im/unet");
  const weights = await openTinyWeights("ldm-text2im/unet");
  try {
    const rand = seededRandom(11);
    for (const [h, w] of [[7, 5], [6, 10]] as const) {
      const feeds = {
        sample: randomTensor([1, 4, h, w], rand),
        timestep: new Tensor(Float32Array.of(321), [1]),
        encoder_hidden_states: randomTensor([1, 5, 32], rand),
      };
      const fixedDims = { batch: 1, height: h, width: w, sequence: 5 };
      const b = buildUNet2DConditionModel(config, weights, { optimize: { target: "cpu" }, fixedDims });
      // 7×5 → 4×3 does not double back exactly (diffusers resizes to the skip's size); 6×10 → 3×5 does.
      const exact = h % 2 === 0 && w % 2 === 0;
      assert.equal(b.stats.opCounts["Resize"], exact ? undefined : 1, `${h}x${w}`);
      const out = (await run(b, feeds)).out_sample!;
      const plain = (await run(buildUNet2DConditionModel(config, weights), feeds)).out_sample!;
      assertClose(out, plain, 1e-4, `${h}x${w}`);
    }
  } finally {
    weights.close();
  }
});

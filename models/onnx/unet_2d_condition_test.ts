import assert from "node:assert/strict";
import { Tensor } from "@ldm/core/tensor";
import type { GraphBuilder } from "./builder.ts";
import {
  buildUNet2DConditionModel,
  resolveUNet2DConditionConfig,
  type UNet2DConditionConfig,
} from "./unet_2d_condition.ts";
import {
  assertClose,
  decodeModel,
  MemoryWeights,
  openReferences,
  openTinyWeights,
  randomTensor,
  readTinyConfig,
  referenceTensor,
  runGraph,
  seededRandom,
} from "./_test_utils.ts";
import { RefWeights, unet2DConditionRef } from "./_unet_reference.ts";
import { countParams, LazyZeroWeights, randomWeights, unet2DConditionParams } from "./_unet_testing.ts";
import { LDM_TEXT2IM_LARGE_256 } from "./real_configs.ts";

const TINY = "ldm-text2im/unet";

/** The real `CompVis/ldm-text2im-large-256` unet/config.json (shared/notes/ldm-reference.md §2.1). */
const REAL_CONFIG = LDM_TEXT2IM_LARGE_256.unet;

/** Small configurations other than the fixture's, each run against the TypeScript reference on random weights. */
const VARIANTS: { what: string; config: Record<string, unknown>; sizes: [number, number][]; context: number }[] = [
  {
    what: "3 blocks in mixed order, layers_per_block 1, 2 heads, 8 groups, linear projections, 2 transformer layers",
    config: {
      block_out_channels: [16, 24, 32],
      down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
      up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"],
      layers_per_block: 1,
      attention_head_dim: 2,
      norm_num_groups: 8,
      cross_attention_dim: 12,
      use_linear_projection: true,
      transformer_layers_per_block: 2,
      in_channels: 3,
      out_channels: 5,
    },
    sizes: [[8, 4], [7, 5]],
    context: 6,
  },
  {
    what: "per-block lists (layers 3/1, heads 4/2, only_cross_attention), UNetMidBlock2D, time_embedding_act_fn",
    config: {
      block_out_channels: [16, 32],
      down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"],
      up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"],
      layers_per_block: [3, 1],
      attention_head_dim: [4, 2],
      only_cross_attention: [false, true],
      mid_block_type: "UNetMidBlock2D",
      norm_num_groups: 4,
      norm_eps: 1e-6,
      cross_attention_dim: 8,
      time_embedding_act_fn: "silu",
      time_embedding_dim: 40,
    },
    sizes: [[4, 6]],
    context: 3,
  },
  {
    what: "no mid block, centred input, sin-first shifted embedding, padding 0, mid_block_scale_factor, upcast",
    config: {
      block_out_channels: [8, 16],
      down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
      up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
      layers_per_block: 2,
      attention_head_dim: 2,
      mid_block_type: null,
      norm_num_groups: 4,
      cross_attention_dim: 8,
      center_input_sample: true,
      flip_sin_to_cos: false,
      freq_shift: 1,
      downsample_padding: 0,
      upcast_attention: true,
      act_fn: "mish",
    },
    sizes: [[6, 6]],
    context: 4,
  },
  {
    what: "UNetMidBlock2DCrossAttn with mid_block_scale_factor 2 and 4 levels",
    config: {
      block_out_channels: [8, 8, 16, 16],
      down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"],
      up_block_types: ["UpBlock2D", "UpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"],
      layers_per_block: 1,
      attention_head_dim: 2,
      norm_num_groups: 4,
      cross_attention_dim: 4,
      mid_block_scale_factor: 2,
    },
    sizes: [[8, 8], [9, 10]],
    context: 2,
  },
];

async function withTiny<T>(fn: (weights: MemoryWeights, config: UNet2DConditionConfig) => Promise<T>): Promise<T> {
  const store = await openTinyWeights(TINY);
  try {
    return await fn(await MemoryWeights.from(store), resolveUNet2DConditionConfig(readTinyConfig(TINY)));
  } finally {
    store.close();
  }
}

async function references() {
  const refs = await openReferences();
  try {
    return {
      sample: await referenceTensor(refs, "unet.sample"),
      timestep: await referenceTensor(refs, "unet.timestep"),
      context: await referenceTensor(refs, "unet.encoder_hidden_states"),
      expected: await referenceTensor(refs, "unet.out_sample"),
    };
  } finally {
    refs.close();
  }
}

function run(b: GraphBuilder, sample: Tensor, timestep: Tensor, context: Tensor): Promise<Tensor> {
  return runGraph(b, { sample, timestep, encoder_hidden_states: context }).then((o) => o.out_sample!);
}

Deno.test("buildUNet2DConditionModel() on the tiny ldm-text2im checkpoint", async (t) => {
  const ref = await references();
  await withTiny(async (weights, config) => {
    await t.step("matches diffusers in fp32 within 1e-4 × max|reference| and reads every weight once", async () => {
      const b = buildUNet2DConditionModel(config, weights);
      assert.equal(weights.reads, 0, "nothing is read while building");
      assert.deepEqual([...b.weightNames].sort(), weights.names().sort(), "every checkpoint tensor is used");
      const out = await run(b, ref.sample, ref.timestep, ref.context);
      assertClose(out, ref.expected, 1e-4, "fp32 out_sample");
      assert.equal(weights.reads, weights.names().length);
    });

    await t.step("matches diffusers in fp16 within 2e-2 × max|reference|, without NaN", async () => {
      const out = await run(
        buildUNet2DConditionModel(config, weights, { dtype: "fp16" }),
        ref.sample,
        ref.timestep,
        ref.context,
      );
      assertClose(out, ref.expected, 2e-2, "fp16 out_sample");
    });

    await t.step("the TypeScript reference used for other configurations agrees with diffusers", async () => {
      const expected = unet2DConditionRef(
        config,
        await RefWeights.from(weights),
        ref.sample,
        [...ref.timestep.data],
        ref.context,
      );
      assertClose(expected, ref.expected, 1e-4, "reference");
    });

    await t.step("a [1] timestep is broadcast over the batch", async () => {
      const b = buildUNet2DConditionModel(config, weights);
      const t0 = ref.timestep.data[0]!;
      const one = await run(b, ref.sample, new Tensor(Float32Array.of(t0), [1]), ref.context);
      const both = await run(b, ref.sample, new Tensor(Float32Array.of(t0, t0), [2]), ref.context);
      assert.deepEqual([...one.data], [...both.data]);
    });
  });
});

Deno.test("buildUNet2DConditionModel() graph structure", async (t) => {
  await withTiny(async (weights, config) => {
    await t.step("declares the pipeline interface with dynamic batch, sequence and spatial sizes", async () => {
      for (const dtype of ["fp32", "fp16"] as const) {
        const model = decodeModel(await buildUNet2DConditionModel(config, weights, { dtype }).toBytes());
        const F32 = 1;
        assert.deepEqual(model.inputs, [
          { name: "sample", elemType: F32, dims: ["batch", 4, "height", "width"] },
          { name: "timestep", elemType: F32, dims: ["batch"] },
          { name: "encoder_hidden_states", elemType: F32, dims: ["batch", "sequence", 32] },
        ]);
        assert.deepEqual(model.outputs, [{ name: "out_sample", elemType: F32, dims: ["batch", 4, "height", "width"] }]);
        const count = (op: string) => model.nodes.filter((n) => n.opType === op).length;
        // fixture: 2 transformers in down_blocks.1, 1 in the mid block, 3 in up_blocks.0; one BasicTransformerBlock
        // each, with 3 LayerNorms and 2 attentions.
        assert.equal(count("LayerNormalization"), 6 * 3);
        assert.equal(count("Softmax"), 6 * 2);
        assert.equal(count("Resize"), 1);
        // conv_in + down_blocks.0 (2 resnets × 2, downsampler) + down_blocks.1 (3 + 2 resnet convs, 2 transformers × 2)
        // + mid (2 × 2 + 2) + up_blocks.0 (3 resnets × 3, 3 transformers × 2, upsampler) + up_blocks.1 (3 × 3) + conv_out
        assert.equal(count("Conv"), 1 + 5 + 9 + 6 + 16 + 9 + 1);
        const f16 = model.initializers.filter((i) => i.dataType === 10).length;
        if (dtype === "fp32") assert.equal(f16, 0);
        else assert.ok(f16 > 200, "fp16 graphs store the weights in float16");
      }
    });

    await t.step("runs other batch sizes, sequence lengths and spatial sizes, including odd ones", async () => {
      const b = buildUNet2DConditionModel(config, weights);
      const rand = seededRandom(5);
      for (const [batch, seq, h, w] of [[1, 77, 16, 16], [3, 5, 8, 12], [1, 9, 7, 9]] as const) {
        const out = await run(
          b,
          randomTensor([batch, 4, h, w], rand),
          new Tensor(Float32Array.from({ length: batch }, (_, i) => 10 + 300 * i), [batch]),
          randomTensor([batch, seq, 32], rand),
        );
        assert.deepEqual([...out.shape], [batch, 4, h, w]);
        assert.ok(out.data.every(Number.isFinite));
      }
    });
  });
});

Deno.test("buildUNet2DConditionModel() on other configurations matches the TypeScript reference", async (t) => {
  for (const [i, v] of VARIANTS.entries()) {
    await t.step(v.what, async () => {
      const config = resolveUNet2DConditionConfig(v.config);
      assert.deepEqual(config.ignoredKeys, []);
      const weights = randomWeights(unet2DConditionParams(config), 10 + i);
      const refWeights = await RefWeights.from(weights);
      const b32 = buildUNet2DConditionModel(config, weights);
      const b16 = buildUNet2DConditionModel(config, weights, { dtype: "fp16" });
      assert.deepEqual(new Set(b32.weightNames), new Set(weights.names()), "uses exactly the diffusers parameters");
      const rand = seededRandom(20 + i);
      for (const [h, w] of v.sizes) {
        const batch = 2;
        const sample = randomTensor([batch, config.inChannels, h, w], rand);
        const timesteps = [3, 41.5];
        const context = randomTensor([batch, v.context, config.crossAttentionDim[0]!], rand);
        const expected = unet2DConditionRef(config, refWeights, sample, timesteps, context);
        const ts = new Tensor(Float32Array.from(timesteps), [batch]);
        assert.deepEqual([...expected.shape], [batch, config.outChannels, h, w]);
        assertClose(await run(b32, sample, ts, context), expected, 1e-4, `fp32 ${h}×${w}`);
        assertClose(await run(b16, sample, ts, context), expected, 2e-2, `fp16 ${h}×${w}`);
      }
    });
  }
});

Deno.test("buildUNet2DConditionModel() builds the real ldm-text2im-large-256 UNet without reading weights", () => {
  const config = resolveUNet2DConditionConfig(REAL_CONFIG);
  const spec = unet2DConditionParams(config);
  assert.equal(countParams(spec), 872_300_484, "shared/notes/gpu.md parameter count");
  const weights = new LazyZeroWeights(spec);
  for (const dtype of ["fp32", "fp16"] as const) {
    const b = buildUNet2DConditionModel(config, weights, { dtype });
    assert.deepEqual(new Set(b.weightNames), new Set(spec.map(([n]) => n)), `${dtype}: every parameter is used`);
    const bytesPerParam = dtype === "fp32" ? 4 : 2;
    const normParams = spec.filter(([n]) => /norm[^.]*\.(weight|bias)$/.test(n))
      .reduce((s, [, shape]) => s + shape[0]!, 0);
    const expectedBytes = bytesPerParam * (872_300_484 - normParams) + 4 * normParams;
    // constants (shapes, timestep frequencies, group-norm unit scales) add a few kilobytes
    assert.ok(b.stats.weightBytes >= expectedBytes && b.stats.weightBytes < expectedBytes + 100_000);
    assert.equal(b.stats.opCounts["Softmax"], 16 * 2, "16 transformers × (self + cross attention)");
  }
  assert.equal(weights.reads, 0);
});

Deno.test("resolveUNet2DConditionConfig()", async (t) => {
  await t.step("applies diffusers' defaults and the historical meaning of attention_head_dim", () => {
    const c = resolveUNet2DConditionConfig(REAL_CONFIG);
    assert.deepEqual(c.numAttentionHeads, [8, 8, 8, 8], "attention_head_dim is the number of heads");
    assert.deepEqual(c.crossAttentionDim, [1280, 1280, 1280, 1280]);
    assert.equal(c.timeEmbedDim, 1280);
    assert.equal(c.midBlockType, "UNetMidBlock2DCrossAttn");
    assert.deepEqual(c.layersPerBlock, [2, 2, 2, 2]);
    assert.ok(Object.isFrozen(c));
  });

  await t.step("lists unknown keys instead of failing (diffusers ignores them)", () => {
    assert.deepEqual(resolveUNet2DConditionConfig({ ...REAL_CONFIG, some_future_key: 1 }).ignoredKeys, [
      "some_future_key",
    ]);
  });

  const refusals: [string, Record<string, unknown>, RegExp][] = [
    [
      "an unsupported down block type, listing the supported ones",
      { down_block_types: ["SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"] },
      /down_block_types\[0\] must be one of "CrossAttnDownBlock2D", "DownBlock2D" \(supported\): got "SimpleCrossAttnDownBlock2D"/,
    ],
    [
      "an unsupported up block type",
      { up_block_types: ["UpBlock2D", "AttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"] },
      /up_block_types\[1\] must be one of "CrossAttnUpBlock2D", "UpBlock2D"/,
    ],
    [
      "an unsupported mid block type",
      { mid_block_type: "UNetMidBlock2DSimpleCrossAttn" },
      /mid_block_type must be one of "UNetMidBlock2DCrossAttn", "UNetMidBlock2D", null/,
    ],
    [
      "a Fourier time embedding",
      { time_embedding_type: "fourier" },
      /time_embedding_type must be one of "positional" \("fourier" is not supported\): got "fourier"/,
    ],
    [
      "scale_shift resnets",
      { resnet_time_scale_shift: "scale_shift" },
      /resnet_time_scale_shift must be one of "default"/,
    ],
    ["class embeddings", { class_embed_type: "timestep" }, /class_embed_type must be null .*: got "timestep"/],
    ["num_class_embeds", { num_class_embeds: 10 }, /num_class_embeds must be null/],
    ["addition embeddings", { addition_embed_type: "text_time" }, /addition_embed_type must be null/],
    ["encoder_hid_dim", { encoder_hid_dim: 768 }, /encoder_hid_dim must be null/],
    ["time_cond_proj_dim", { time_cond_proj_dim: 256 }, /time_cond_proj_dim must be null/],
    ["dual cross-attention", { dual_cross_attention: true }, /dual_cross_attention must be null or false/],
    ["GLIGEN attention", { attention_type: "gated" }, /attention_type must be one of "default"/],
    ["a set num_attention_heads, as diffusers does", { num_attention_heads: 8 }, /num_attention_heads must be null/],
    ["norm_num_groups null", { norm_num_groups: null }, /norm_num_groups must be an integer/],
    ["groups that do not divide the channels", { norm_num_groups: 48 }, /norm_num_groups must be a divisor/],
    ["more heads than channels", { block_out_channels: [4, 8, 8, 8], norm_num_groups: 4 }, /attention_head_dim\[0\]/],
    [
      "per-layer transformer depths",
      { transformer_layers_per_block: [[1, 2], 1, 1, 1] },
      /transformer_layers_per_block\[0\] must be an integer \(per-layer lists are not supported\)/,
    ],
    [
      "a per-block list of the wrong length",
      { layers_per_block: [2, 2] },
      /layers_per_block must be a list with one entry per down block \(4\)/,
    ],
    [
      "mismatched block lists",
      { block_out_channels: [320, 640] },
      /block_out_channels must be a list as long as down_block_types \(4\)/,
    ],
    [
      "different context widths",
      { cross_attention_dim: [768, 1280, 1280, 1280] },
      /cross_attention_dim must be the same for every block/,
    ],
    ["an unknown activation", { act_fn: "tanh" }, /act_fn must be one of "swish", "silu", "mish", "gelu", "relu"/],
    ["an even conv_in_kernel", { conv_in_kernel: 4 }, /conv_in_kernel must be an odd integer/],
    [
      "a null attention_head_dim (diffusers fails on it)",
      { attention_head_dim: null },
      /attention_head_dim must be an integer >= 1 or a list of 4 of them: got null/,
    ],
    [
      "a null flip_sin_to_cos (diffusers would read it as false)",
      { flip_sin_to_cos: null },
      /flip_sin_to_cos must be a boolean: got null/,
    ],
    ["another class's config", { _class_name: "UNet2DModel" }, /_class_name must be "UNet2DConditionModel"/],
    ["a string where a number belongs", { in_channels: "4" }, /in_channels must be an integer >= 1: got "4"/],
  ];
  for (const [what, patch, message] of refusals) {
    await t.step(`refuses ${what}, naming the key and the value`, () => {
      assert.throws(() => resolveUNet2DConditionConfig({ ...REAL_CONFIG, ...patch }), message);
    });
  }

  await t.step("refuses a camelCase copy of a resolved config instead of silently using defaults", () => {
    const copy = JSON.parse(JSON.stringify(resolveUNet2DConditionConfig(REAL_CONFIG)));
    assert.throws(() => buildUNet2DConditionModel(copy, new LazyZeroWeights([])), /camelCase keys/);
  });

  await t.step("names a missing weight and a weight of the wrong shape", () => {
    const config = resolveUNet2DConditionConfig(readTinyConfig(TINY));
    const spec = unet2DConditionParams(config);
    const missing = new LazyZeroWeights(spec.filter(([n]) => n !== "mid_block.attentions.0.proj_in.weight"));
    assert.throws(
      () => buildUNet2DConditionModel(config, missing),
      /weight 'mid_block\.attentions\.0\.proj_in\.weight' is missing/,
    );
    const wrong = new LazyZeroWeights(spec.map(([n, s]) => [n, n === "conv_in.weight" ? [32, 4, 1, 1] : s]));
    assert.throws(
      () => buildUNet2DConditionModel(config, wrong),
      /weight 'conv_in\.weight' has shape \[32, 4, 1, 1\]; expected \[32, 4, 3, 3\]/,
    );
  });
});

Deno.test("unet2DConditionParams() (test helper) enumerates exactly the tiny checkpoint's tensors", async () => {
  const store = await openTinyWeights(TINY);
  try {
    const spec = unet2DConditionParams(resolveUNet2DConditionConfig(readTinyConfig(TINY)));
    const actual = new Map(store.names().map((n) => [n, store.info(n).shape.join("x")]));
    assert.deepEqual(new Map(spec.map(([n, s]) => [n, s.join("x")])), actual);
  } finally {
    store.close();
  }
});

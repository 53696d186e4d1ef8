import assert from "node:assert/strict";
import { Tensor } from "@ldm/core/tensor";
import type { GraphBuilder } from "./builder.ts";
import { buildUNet2DModel, resolveUNet2DConfig, type UNet2DConfig } from "./unet_2d.ts";
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
import { RefWeights, unet2DRef } from "./_unet_reference.ts";
import { countParams, LazyZeroWeights, randomWeights, unet2DParams } from "./_unet_testing.ts";
import { LDM_SUPER_RESOLUTION_4X_OPENIMAGES } from "./real_configs.ts";

const TINY = "ldm-super-resolution/unet";

/** The real `CompVis/ldm-super-resolution-4x-openimages` unet/config.json (shared/notes/ldm-reference.md §2.2). */
const REAL_CONFIG = LDM_SUPER_RESOLUTION_4X_OPENIMAGES.unet;

const VARIANTS: { what: string; config: Record<string, unknown>; sizes: [number, number][] }[] = [
  {
    what: "3 blocks with attention in the middle, layers_per_block 1, head size 4, 4 groups",
    config: {
      block_out_channels: [8, 16, 16],
      down_block_types: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
      up_block_types: ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
      layers_per_block: 1,
      attention_head_dim: 4,
      norm_num_groups: 4,
      in_channels: 6,
      out_channels: 3,
    },
    sizes: [[8, 8], [4, 12], [5, 7]],
  },
  {
    what: "layers_per_block 3, attention_head_dim null (one head), attn_norm_num_groups, mid_block_scale_factor",
    config: {
      block_out_channels: [8, 16],
      down_block_types: ["AttnDownBlock2D", "AttnDownBlock2D"],
      up_block_types: ["AttnUpBlock2D", "AttnUpBlock2D"],
      layers_per_block: 3,
      attention_head_dim: null,
      norm_num_groups: 8,
      attn_norm_num_groups: 2,
      mid_block_scale_factor: 1.5,
      act_fn: "mish",
      center_input_sample: true,
      flip_sin_to_cos: false,
      freq_shift: 1,
    },
    sizes: [[4, 4]],
  },
  {
    what: "no mid-block attention (add_attention false), head size not dividing the channels, padding 0",
    config: {
      block_out_channels: [12, 24],
      down_block_types: ["DownBlock2D", "AttnDownBlock2D"],
      up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
      layers_per_block: 2,
      attention_head_dim: 5,
      norm_num_groups: 6,
      add_attention: false,
      downsample_padding: 0,
      time_embedding_dim: 20,
    },
    sizes: [[6, 4]],
  },
  {
    what: "no mid block",
    config: {
      block_out_channels: [8, 8],
      down_block_types: ["DownBlock2D", "DownBlock2D"],
      up_block_types: ["UpBlock2D", "UpBlock2D"],
      layers_per_block: 1,
      norm_num_groups: 4,
      mid_block_type: null,
    },
    sizes: [[4, 4]],
  },
];

async function withTiny<T>(fn: (weights: MemoryWeights, config: UNet2DConfig) => Promise<T>): Promise<T> {
  const store = await openTinyWeights(TINY);
  try {
    return await fn(await MemoryWeights.from(store), resolveUNet2DConfig(readTinyConfig(TINY)));
  } finally {
    store.close();
  }
}

async function references() {
  const refs = await openReferences();
  try {
    return {
      sample: await referenceTensor(refs, "srunet.sample"),
      timestep: await referenceTensor(refs, "srunet.timestep"),
      expected: await referenceTensor(refs, "srunet.out_sample"),
    };
  } finally {
    refs.close();
  }
}

function run(b: GraphBuilder, sample: Tensor, timestep: Tensor): Promise<Tensor> {
  return runGraph(b, { sample, timestep }).then((o) => o.out_sample!);
}

Deno.test("buildUNet2DModel() on the tiny ldm-super-resolution checkpoint", async (t) => {
  const ref = await references();
  await withTiny(async (weights, config) => {
    await t.step("matches diffusers in fp32 within 1e-4 × max|reference| and reads every weight once", async () => {
      const b = buildUNet2DModel(config, weights);
      assert.equal(weights.reads, 0, "nothing is read while building");
      assert.deepEqual([...b.weightNames].sort(), weights.names().sort(), "every checkpoint tensor is used");
      assertClose(await run(b, ref.sample, ref.timestep), ref.expected, 1e-4, "fp32 out_sample");
      assert.equal(weights.reads, weights.names().length);
    });

    await t.step("matches diffusers in fp16 within 2e-2 × max|reference|, without NaN", async () => {
      const out = await run(buildUNet2DModel(config, weights, { dtype: "fp16" }), ref.sample, ref.timestep);
      assertClose(out, ref.expected, 2e-2, "fp16 out_sample");
    });

    await t.step(
      "accepts the deprecated attention names of older checkpoints (query/key/value/proj_attn)",
      async () => {
        const old = new MemoryWeights();
        const rename: Record<string, string> = { to_q: "query", to_k: "key", to_v: "value", "to_out.0": "proj_attn" };
        for (const name of weights.names()) {
          const renamed = name.replace(
            /\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/,
            (_, m, p) => `.${rename[m]}.${p}`,
          );
          old.set(renamed, weights.info(name).shape, await weights.readFloat32(name));
        }
        assert.ok(old.has("mid_block.attentions.0.proj_attn.weight"));
        assertClose(
          await run(buildUNet2DModel(config, old), ref.sample, ref.timestep),
          ref.expected,
          1e-4,
          "old names",
        );
      },
    );

    await t.step("the TypeScript reference used for other configurations agrees with diffusers", async () => {
      const expected = unet2DRef(config, await RefWeights.from(weights), ref.sample, [...ref.timestep.data]);
      assertClose(expected, ref.expected, 1e-4, "reference");
    });

    await t.step("declares the pipeline interface and runs other batch and spatial sizes", async () => {
      const b = buildUNet2DModel(config, weights);
      const model = decodeModel(await b.toBytes());
      assert.deepEqual(model.inputs, [
        { name: "sample", elemType: 1, dims: ["batch", 6, "height", "width"] },
        { name: "timestep", elemType: 1, dims: ["batch"] },
      ]);
      assert.deepEqual(model.outputs, [{ name: "out_sample", elemType: 1, dims: ["batch", 3, "height", "width"] }]);
      // down_blocks.1 (2 attentions) + mid (1) + up_blocks.0 (3)
      assert.equal(model.nodes.filter((n) => n.opType === "Softmax").length, 6);
      const rand = seededRandom(3);
      for (const [batch, h, w] of [[2, 8, 24], [1, 5, 3]] as const) {
        const ts = new Tensor(Float32Array.from({ length: batch }, (_, i) => 981 - 500 * i), [batch]);
        const out = await run(b, randomTensor([batch, 6, h, w], rand), ts);
        assert.deepEqual([...out.shape], [batch, 3, h, w]);
        assert.ok(out.data.every(Number.isFinite));
      }
      const one = await run(b, ref.sample, new Tensor(Float32Array.of(500), [1]));
      assert.deepEqual([...one.shape], [1, 3, 32, 32]);
    });
  });
});

Deno.test("buildUNet2DModel() on other configurations matches the TypeScript reference", async (t) => {
  for (const [i, v] of VARIANTS.entries()) {
    await t.step(v.what, async () => {
      const config = resolveUNet2DConfig(v.config);
      assert.deepEqual(config.ignoredKeys, []);
      const weights = randomWeights(unet2DParams(config), 30 + i);
      const refWeights = await RefWeights.from(weights);
      const b32 = buildUNet2DModel(config, weights);
      const b16 = buildUNet2DModel(config, weights, { dtype: "fp16" });
      assert.deepEqual(new Set(b32.weightNames), new Set(weights.names()), "uses exactly the diffusers parameters");
      const rand = seededRandom(40 + i);
      for (const [h, w] of v.sizes) {
        const sample = randomTensor([2, config.inChannels, h, w], rand);
        const timesteps = [999, 7.25];
        const expected = unet2DRef(config, refWeights, sample, timesteps);
        const ts = new Tensor(Float32Array.from(timesteps), [2]);
        assertClose(await run(b32, sample, ts), expected, 1e-4, `fp32 ${h}×${w}`);
        assertClose(await run(b16, sample, ts), expected, 2e-2, `fp16 ${h}×${w}`);
      }
    });
  }
});

Deno.test("buildUNet2DModel() builds the real ldm-super-resolution-4x-openimages UNet without reading weights", () => {
  const config = resolveUNet2DConfig(REAL_CONFIG);
  const spec = unet2DParams(config);
  const weights = new LazyZeroWeights(spec);
  for (const dtype of ["fp32", "fp16"] as const) {
    const b = buildUNet2DModel(config, weights, { dtype });
    assert.deepEqual(new Set(b.weightNames), new Set(spec.map(([n]) => n)), `${dtype}: every parameter is used`);
    // 640 channels / 32 per head = 20 heads in down_blocks.3 (2), the mid block (1) and up_blocks.0 (3)
    assert.equal(b.stats.opCounts["Softmax"], 6);
  }
  // Regression pin: the parameter count of the enumerated state dict (the enumerator itself is checked against the
  // tiny checkpoint's tensors below). No independent figure for this checkpoint is at hand.
  assert.equal(countParams(spec), 113_622_563);
  assert.equal(weights.reads, 0);
});

Deno.test("resolveUNet2DConfig()", async (t) => {
  await t.step("keeps attention_head_dim as the head size and applies diffusers' defaults", () => {
    const c = resolveUNet2DConfig(REAL_CONFIG);
    assert.equal(c.attentionHeadDim, 32);
    assert.equal(c.timeEmbedDim, 640);
    assert.equal(c.midBlockType, "UNetMidBlock2D");
    assert.equal(c.addAttention, true);
    assert.equal(c.attnNormNumGroups, null);
    assert.deepEqual(c.ignoredKeys, []);
  });

  await t.step("reads attention_head_dim null as one head per block and an absent one as diffusers' default 8", () => {
    assert.equal(resolveUNet2DConfig({ ...REAL_CONFIG, attention_head_dim: null }).attentionHeadDim, null);
    const { attention_head_dim: _, ...withoutHeadDim } = REAL_CONFIG;
    assert.equal(resolveUNet2DConfig(withoutHeadDim).attentionHeadDim, 8);
  });

  const refusals: [string, Record<string, unknown>, RegExp][] = [
    [
      "an explicit null where diffusers has no meaning for None",
      { in_channels: null },
      /in_channels must be an integer >= 1: got null/,
    ],
    [
      "a null boolean (diffusers would read it as false)",
      { center_input_sample: null },
      /center_input_sample must be a boolean: got null/,
    ],
    [
      "an unsupported down block type, listing the supported ones",
      { down_block_types: ["DownBlock2D", "SkipDownBlock2D", "DownBlock2D", "AttnDownBlock2D"] },
      /down_block_types\[1\] must be one of "DownBlock2D", "AttnDownBlock2D" \(supported\): got "SkipDownBlock2D"/,
    ],
    [
      "an unsupported up block type",
      { up_block_types: ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"] },
      /up_block_types\[3\] must be one of "AttnUpBlock2D", "UpBlock2D"/,
    ],
    [
      "a Fourier time embedding",
      { time_embedding_type: "fourier" },
      /UNet2DModel config: time_embedding_type must be one of "positional" \("fourier" and "learned" are not supported\): got "fourier"/,
    ],
    ["a learned time embedding", { time_embedding_type: "learned" }, /time_embedding_type .*: got "learned"/],
    [
      "scale_shift resnets",
      { resnet_time_scale_shift: "scale_shift" },
      /resnet_time_scale_shift must be one of "default"/,
    ],
    ["resnet downsamplers", { downsample_type: "resnet" }, /downsample_type must be one of "conv"/],
    ["resnet upsamplers", { upsample_type: "resnet" }, /upsample_type must be one of "conv"/],
    ["class embeddings", { class_embed_type: "timestep" }, /class_embed_type must be null/],
    ["num_class_embeds", { num_class_embeds: 4 }, /num_class_embeds must be null/],
    [
      "another mid block",
      { mid_block_type: "UNetMidBlock2DCrossAttn" },
      /mid_block_type must be one of "UNetMidBlock2D", null/,
    ],
    [
      "a head larger than the channels",
      { attention_head_dim: 1024 },
      /attention_head_dim must be at most block_out_channels\[3\] \(640\)/,
    ],
    ["groups that do not divide the channels", { norm_num_groups: 64 }, /norm_num_groups must be a divisor/],
    [
      "attention groups that do not divide the channels",
      { attn_norm_num_groups: 48 },
      /attn_norm_num_groups must be a divisor/,
    ],
    [
      "a per-block layers_per_block (UNet2DModel takes one integer)",
      { layers_per_block: [2, 2, 2, 2] },
      /layers_per_block must be an integer/,
    ],
    ["another class's config", { _class_name: "UNet2DConditionModel" }, /_class_name must be "UNet2DModel"/],
  ];
  for (const [what, patch, message] of refusals) {
    await t.step(`refuses ${what}, naming the key and the value`, () => {
      assert.throws(() => resolveUNet2DConfig({ ...REAL_CONFIG, ...patch }), message);
    });
  }
});

Deno.test("unet2DParams() (test helper) enumerates exactly the tiny checkpoint's tensors", async () => {
  const store = await openTinyWeights(TINY);
  try {
    const spec = unet2DParams(resolveUNet2DConfig(readTinyConfig(TINY)));
    const actual = new Map(store.names().map((n) => [n, store.info(n).shape.join("x")]));
    assert.deepEqual(new Map(spec.map(([n, s]) => [n, s.join("x")])), actual);
  } finally {
    store.close();
  }
});

import assert from "node:assert/strict";
import { Tensor } from "@ldm/core/tensor";
import { GraphBuilder } from "./builder.ts";
import { DATA_TYPE, onnx } from "./_proto.ts";
import { basicTransformerBlock, transformer2D } from "./transformer_2d.ts";
import { assertClose, maxAbs, maxAbsDiff, randomTensor, runGraph, seededRandom } from "./_test_utils.ts";
import { RefWeights, transformer2DRef } from "./_unet_reference.ts";
import { randomWeights, transformer2DParams, type TransformerParamsOptions } from "./_unet_testing.ts";

const NAME = "down_blocks.1.attentions.0";

interface Case extends TransformerParamsOptions {
  what: string;
  groups: number;
  batch: number;
  height: number;
  width: number;
  sequence: number;
}

function graph(c: Case, weights: ReturnType<typeof randomWeights>, dtype: "fp32" | "fp16"): GraphBuilder {
  const b = new GraphBuilder({ name: "transformer", weights, dtype });
  const x = b.toCompute(b.input("x", "float32", ["batch", c.channels, "height", "width"]));
  const ctx = c.cross === null ? null : b.toCompute(b.input("context", "float32", ["batch", "sequence", c.cross]));
  const y = transformer2D(b, x, {
    name: NAME,
    inChannels: c.channels,
    numAttentionHeads: c.heads,
    attentionHeadDim: Math.floor(c.channels / c.heads),
    numLayers: c.layers,
    normNumGroups: c.groups,
    crossAttentionDim: c.cross,
    encoderHiddenStates: ctx,
    useLinearProjection: c.useLinearProjection,
    onlyCrossAttention: c.onlyCrossAttention,
  });
  b.output(y, "y", ["batch", c.channels, "height", "width"]);
  return b;
}

const CASES: Case[] = [
  {
    what: "1×1 conv projections, one block, cross-attention",
    channels: 16,
    heads: 2,
    layers: 1,
    cross: 12,
    useLinearProjection: false,
    onlyCrossAttention: false,
    groups: 4,
    batch: 2,
    height: 4,
    width: 6,
    sequence: 5,
  },
  {
    what: "linear projections, two blocks, only_cross_attention",
    channels: 24,
    heads: 3,
    layers: 2,
    cross: 10,
    useLinearProjection: true,
    onlyCrossAttention: true,
    groups: 8,
    batch: 1,
    height: 5,
    width: 3,
    sequence: 7,
  },
  {
    what: "no cross-attention, inner width (5 heads × 2) narrower than the 12 channels",
    channels: 12,
    heads: 5,
    layers: 1,
    cross: null,
    useLinearProjection: false,
    onlyCrossAttention: false,
    groups: 3,
    batch: 2,
    height: 3,
    width: 3,
    sequence: 0,
  },
];

Deno.test("transformer2D()", async (t) => {
  for (const [i, c] of CASES.entries()) {
    await t.step(`matches the TypeScript reference (fp32 1e-4, fp16 2e-2): ${c.what}`, async () => {
      const weights = randomWeights(transformer2DParams(NAME, c), 100 + i);
      const rand = seededRandom(200 + i);
      const x = randomTensor([c.batch, c.channels, c.height, c.width], rand);
      const ctx = c.cross === null ? null : randomTensor([c.batch, c.sequence, c.cross], rand);
      const expected = transformer2DRef(x, ctx, await RefWeights.from(weights), NAME, {
        heads: c.heads,
        layers: c.layers,
        groups: c.groups,
        useLinearProjection: c.useLinearProjection,
        onlyCrossAttention: c.onlyCrossAttention,
        cross: c.cross !== null,
      });
      const feeds: Record<string, Tensor> = ctx ? { x, context: ctx } : { x };
      const b32 = graph(c, weights, "fp32");
      assert.deepEqual(
        new Set(b32.weightNames),
        new Set(weights.names()),
        "the graph reads every parameter of the module",
      );
      const fp32 = (await runGraph(b32, feeds)).y!;
      assertClose(fp32, expected, 1e-4, "fp32");
      const fp16 = (await runGraph(graph(c, weights, "fp16"), feeds)).y!;
      assertClose(fp16, expected, 2e-2, "fp16");
      // The transformer changes its input noticeably: a graph that returned x would fail.
      assert.ok(maxAbsDiff(expected.data, x.data) > 0.05 * Math.max(1, maxAbs(x.data)));
    });
  }

  await t.step(
    "fp16 graphs normalise and softmax in float32: finite where float16 squares would overflow",
    async () => {
      const c = CASES[0]!;
      const weights = randomWeights(transformer2DParams(NAME, c), 7);
      const b16 = graph(c, weights, "fp16");
      const model = onnx.ModelProto.decode(await b16.toBytes());
      const nodes = model.graph!.node!;
      const producer = new Map(nodes.flatMap((n) => n.output!.map((o) => [o, n] as const)));
      const castTo = (value: string) => {
        const n = producer.get(value);
        return n?.opType === "Cast" ? Number(n.attribute!.find((a) => a.name === "to")!.i) : undefined;
      };
      const softmax = nodes.filter((n) => n.opType === "Softmax");
      const layerNorm = nodes.filter((n) => n.opType === "LayerNormalization");
      assert.equal(softmax.length, 2, "attn1 and attn2");
      assert.equal(layerNorm.length, 3, "norm1..3");
      for (const n of [...softmax, ...layerNorm]) {
        assert.equal(castTo(n.input![0]!), DATA_TYPE.float32, `${n.name} runs on a float32 cast of its input`);
      }
      // |x| up to 400: GroupNorm/LayerNorm variances (~5e4 · 3) and attention logits would overflow float16's 65504.
      const rand = seededRandom(8);
      const x = randomTensor([c.batch, c.channels, c.height, c.width], rand, 400);
      const context = randomTensor([c.batch, c.sequence, c.cross!], rand);
      const fp32 = (await runGraph(graph(c, weights, "fp32"), { x, context })).y!;
      const fp16 = (await runGraph(b16, { x, context })).y!;
      assertClose(fp16, fp32, 2e-2, "fp16 on large inputs");
    },
  );

  await t.step("refuses a context width without a context, naming the block", () => {
    const b = new GraphBuilder({ name: "g", weights: randomWeights([], 0) });
    const x = b.input("x", "float32", [1, 4, 8]);
    assert.throws(
      () =>
        basicTransformerBlock(b, x, {
          name: "blk",
          dim: 8,
          numAttentionHeads: 2,
          attentionHeadDim: 4,
          crossAttentionDim: 6,
        }),
      /blk: crossAttentionDim is 6 but no encoderHiddenStates is given/,
    );
    assert.throws(
      () =>
        basicTransformerBlock(b, x, {
          name: "blk",
          dim: 8,
          numAttentionHeads: 2,
          attentionHeadDim: 4,
          crossAttentionDim: null,
          activationFn: "tanh",
        }),
      /blk: activationFn must be one of geglu, .*: got "tanh"/,
    );
  });
});

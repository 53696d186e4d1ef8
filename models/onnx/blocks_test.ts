import assert from "node:assert/strict";
import { Tensor } from "@ldm/core/tensor";
import { GraphBuilder, type ModelDtype, type Value } from "./builder.ts";
import {
  activation,
  attention,
  conv2d,
  downsample2D,
  feedForward,
  geluTanh,
  groupNorm,
  layerNorm,
  linear,
  resnetBlock2D,
  timestepEmbedding,
  timestepFrequencies,
  timestepProjection,
  unetMidBlock2D,
  upsample2D,
} from "./blocks.ts";
import {
  activationRef,
  addChannelRef,
  avgPool2Ref,
  conv2dRef,
  fromSequenceRef,
  groupNormRef,
  layerNormRef,
  linearRef,
  mapRef,
  resizeNearestRef,
  sdpaRef,
  timestepEmbeddingRef,
  toSequenceRef,
  zipRef,
} from "./_test_reference.ts";
import {
  addRandomWeights,
  assertClose,
  assertFinite,
  decodeModel,
  MemoryWeights,
  randomTensor,
  runGraph,
  seededRandom,
} from "./_test_utils.ts";

const FP32_TOL = 1e-4;
const FP16_TOL = 2e-2;

type Spec = [string, number[]][];

/** Builds a graph around one block with float32 inputs, runs it and returns the single output. */
async function runBlock(
  weights: MemoryWeights,
  inputs: Record<string, Tensor>,
  build: (b: GraphBuilder, ins: Record<string, Value>) => Value,
  dtype: ModelDtype = "fp32",
): Promise<Tensor> {
  const b = new GraphBuilder({ name: "block", weights, dtype });
  const ins: Record<string, Value> = {};
  for (const [name, t] of Object.entries(inputs)) {
    ins[name] = b.toCompute(b.input(name, "float32", t.shape.map((_, i) => `d${name}${i}`)));
  }
  const y = build(b, ins);
  b.output(y, "y");
  const out = await runGraph(b, inputs);
  return out.y!;
}

async function get(weights: MemoryWeights, name: string): Promise<Float32Array> {
  return await weights.readFloat32(name);
}

/** Reference ResnetBlock2D (diffusers resnet.py) from the same weights. */
async function resnetRef(
  weights: MemoryWeights,
  name: string,
  x: Tensor,
  o: {
    inC: number;
    outC: number;
    groups: number;
    eps: number;
    act: string;
    temb?: Tensor;
    scaleShift?: boolean;
    outputScale?: number;
  },
): Promise<Tensor> {
  let h = groupNormRef(
    x,
    o.groups,
    o.eps,
    await get(weights, `${name}.norm1.weight`),
    await get(weights, `${name}.norm1.bias`),
  );
  h = activationRef(h, o.act);
  h = conv2dRef(h, await get(weights, `${name}.conv1.weight`), await get(weights, `${name}.conv1.bias`), {
    outChannels: o.outC,
    kernel: 3,
    pads: [1, 1, 1, 1],
  });
  let t: Tensor | null = null;
  if (o.temb) {
    const tw = await get(weights, `${name}.time_emb_proj.weight`);
    t = linearRef(
      activationRef(o.temb, o.act),
      tw,
      await get(weights, `${name}.time_emb_proj.bias`),
      tw.length / o.temb.shape[1]!,
    );
  }
  if (o.scaleShift && t) {
    h = groupNormRef(
      h,
      o.groups,
      o.eps,
      await get(weights, `${name}.norm2.weight`),
      await get(weights, `${name}.norm2.bias`),
    );
    const [, c, hh, ww] = h.shape as [number, number, number, number];
    const sp = hh * ww;
    h = mapRef(h, (v, i) => {
      const b = Math.floor(i / (c * sp));
      const ch = Math.floor(i / sp) % c;
      return v * (1 + t!.data[b * 2 * c + ch]!) + t!.data[b * 2 * c + c + ch]!;
    });
  } else {
    if (t) h = addChannelRef(h, t);
    h = groupNormRef(
      h,
      o.groups,
      o.eps,
      await get(weights, `${name}.norm2.weight`),
      await get(weights, `${name}.norm2.bias`),
    );
  }
  h = activationRef(h, o.act);
  h = conv2dRef(h, await get(weights, `${name}.conv2.weight`), await get(weights, `${name}.conv2.bias`), {
    outChannels: o.outC,
    kernel: 3,
    pads: [1, 1, 1, 1],
  });
  let shortcut = x;
  if (o.inC !== o.outC) {
    shortcut = conv2dRef(
      x,
      await get(weights, `${name}.conv_shortcut.weight`),
      await get(weights, `${name}.conv_shortcut.bias`),
      {
        outChannels: o.outC,
        kernel: 1,
      },
    );
  }
  return zipRef(shortcut, h, (a, b) => (a + b) / (o.outputScale ?? 1));
}

function resnetSpec(name: string, inC: number, outC: number, tembC?: number, scaleShift = false): Spec {
  const spec: Spec = [
    [`${name}.norm1.weight`, [inC]],
    [`${name}.norm1.bias`, [inC]],
    [`${name}.conv1.weight`, [outC, inC, 3, 3]],
    [`${name}.conv1.bias`, [outC]],
    [`${name}.norm2.weight`, [outC]],
    [`${name}.norm2.bias`, [outC]],
    [`${name}.conv2.weight`, [outC, outC, 3, 3]],
    [`${name}.conv2.bias`, [outC]],
  ];
  if (tembC) {
    const p = scaleShift ? 2 * outC : outC;
    spec.push([`${name}.time_emb_proj.weight`, [p, tembC]], [`${name}.time_emb_proj.bias`, [p]]);
  }
  if (inC !== outC) {
    spec.push([`${name}.conv_shortcut.weight`, [outC, inC, 1, 1]], [`${name}.conv_shortcut.bias`, [outC]]);
  }
  return spec;
}

/** Reference diffusers Attention on a 4-D map (group norm, q/k/v with bias, to_out.0, residual, rescale). */
async function spatialAttentionRef(
  weights: MemoryWeights,
  name: string,
  x: Tensor,
  o: { channels: number; heads: number; groups: number; eps: number; rescale: number },
): Promise<Tensor> {
  const [, c, h, wd] = x.shape as [number, number, number, number];
  const normed = groupNormRef(
    x,
    o.groups,
    o.eps,
    await get(weights, `${name}.group_norm.weight`),
    await get(weights, `${name}.group_norm.bias`),
  );
  const seq = toSequenceRef(normed);
  const proj = async (p: string) =>
    linearRef(seq, await get(weights, `${name}.${p}.weight`), await get(weights, `${name}.${p}.bias`), c);
  const att = sdpaRef(await proj("to_q"), await proj("to_k"), await proj("to_v"), o.heads, (c / o.heads) ** -0.5);
  const out = linearRef(
    att,
    await get(weights, `${name}.to_out.0.weight`),
    await get(weights, `${name}.to_out.0.bias`),
    c,
  );
  return zipRef(fromSequenceRef(out, h, wd), x, (a, b) => (a + b) / o.rescale);
}

function attentionSpec(name: string, c: number, groups = true, bias = true): Spec {
  const spec: Spec = [];
  if (groups) spec.push([`${name}.group_norm.weight`, [c]], [`${name}.group_norm.bias`, [c]]);
  for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) {
    spec.push([`${name}.${p}.weight`, [c, c]]);
    if (bias || p === "to_out.0") spec.push([`${name}.${p}.bias`, [c]]);
  }
  return spec;
}

Deno.test("layers match straightforward TypeScript implementations", async (t) => {
  const rand = seededRandom(11);

  await t.step("conv2d() with 3×3/pad 1, stride 2 with asymmetric pads, and 1×1", async () => {
    const weights = addRandomWeights(new MemoryWeights(), [
      ["c3.weight", [5, 3, 3, 3]],
      ["c3.bias", [5]],
      ["c1.weight", [4, 3, 1, 1]],
    ], rand);
    const x = randomTensor([2, 3, 7, 6], rand);
    const cases = [
      {
        name: "c3",
        o: { outChannels: 5, kernelSize: 3, padding: 1 },
        ref: { outChannels: 5, kernel: 3, pads: [1, 1, 1, 1] },
      },
      {
        name: "c3",
        o: { outChannels: 5, kernelSize: 3, stride: 2, padding: [0, 0, 1, 1] as [number, number, number, number] },
        ref: { outChannels: 5, kernel: 3, stride: 2, pads: [0, 0, 1, 1] },
      },
      { name: "c1", o: { outChannels: 4, kernelSize: 1, bias: false }, ref: { outChannels: 4, kernel: 1 } },
    ];
    for (const c of cases) {
      const y = await runBlock(weights, { x }, (b, i) => conv2d(b, i.x!, { name: c.name, inChannels: 3, ...c.o }));
      const bias = c.name === "c3" ? await get(weights, "c3.bias") : null;
      assertClose(
        y,
        conv2dRef(x, await get(weights, `${c.name}.weight`), bias, c.ref),
        FP32_TOL,
        `conv ${JSON.stringify(c.o)}`,
      );
    }
  });

  await t.step("groupNorm() on 4-D and 3-D inputs, with and without affine", async () => {
    const weights = addRandomWeights(new MemoryWeights(), [["gn.weight", [12]], ["gn.bias", [12]]], rand);
    const x4 = mapRef(randomTensor([2, 12, 3, 5], rand), (v) => 3 * v + 1);
    const y4 = await runBlock(
      weights,
      { x: x4 },
      (b, i) => groupNorm(b, i.x!, { name: "gn", channels: 12, groups: 3, eps: 1e-6 }),
    );
    assertClose(
      y4,
      groupNormRef(x4, 3, 1e-6, await get(weights, "gn.weight"), await get(weights, "gn.bias")),
      FP32_TOL,
      "gn4",
    );
    const x3 = randomTensor([2, 12, 10], rand);
    const y3 = await runBlock(
      weights,
      { x: x3 },
      (b, i) => groupNorm(b, i.x!, { name: "gn", channels: 12, groups: 4, eps: 1e-5, rank: 3 }),
    );
    assertClose(
      y3,
      groupNormRef(x3, 4, 1e-5, await get(weights, "gn.weight"), await get(weights, "gn.bias")),
      FP32_TOL,
      "gn3",
    );
    const yn = await runBlock(
      weights,
      { x: x4 },
      (b, i) => groupNorm(b, i.x!, { name: "none", channels: 12, groups: 6, eps: 1e-5, affine: false }),
    );
    assertClose(yn, groupNormRef(x4, 6, 1e-5, null, null), FP32_TOL, "gn no affine");
  });

  await t.step("groupNorm() refuses channels not divisible by groups", () => {
    const b = new GraphBuilder({ name: "g" });
    const x = b.input("x", "float32", [1, 10, 2, 2]);
    assert.throws(
      () => groupNorm(b, x, { name: "gn", channels: 10, groups: 4, eps: 1e-6 }),
      /gn: 10 channels cannot be split into 4 groups/,
    );
  });

  await t.step("layerNorm() and linear() on [N, L, C]", async () => {
    const weights = addRandomWeights(new MemoryWeights(), [
      ["ln.weight", [6]],
      ["ln.bias", [6]],
      ["fc.weight", [5, 6]],
      ["fc.bias", [5]],
    ], rand);
    const x = randomTensor([2, 3, 6], rand, 2);
    const y = await runBlock(weights, { x }, (b, i) => layerNorm(b, i.x!, { name: "ln", dim: 6 }));
    assertClose(
      y,
      layerNormRef(x, 1e-5, await get(weights, "ln.weight"), await get(weights, "ln.bias")),
      FP32_TOL,
      "ln",
    );
    const yn = await runBlock(
      weights,
      { x },
      (b, i) => layerNorm(b, i.x!, { name: "plain", dim: 6, affine: false, eps: 1e-6 }),
    );
    assertClose(yn, layerNormRef(x, 1e-6, null, null), FP32_TOL, "ln no affine");
    const yl = await runBlock(weights, { x }, (b, i) => linear(b, i.x!, { name: "fc", inFeatures: 6, outFeatures: 5 }));
    assertClose(
      yl,
      linearRef(x, await get(weights, "fc.weight"), await get(weights, "fc.bias"), 5),
      FP32_TOL,
      "linear",
    );
  });

  await t.step("activation() for every diffusers activation, and geluTanh()", async () => {
    const x = randomTensor([3, 7], rand, 5);
    for (const fn of ["silu", "swish", "mish", "gelu", "relu", "SiLU"]) {
      const y = await runBlock(new MemoryWeights(), { x }, (b, i) => activation(b, i.x!, { fn }));
      assertClose(y, activationRef(x, fn.toLowerCase()), FP32_TOL, fn);
    }
    const y = await runBlock(new MemoryWeights(), { x }, (b, i) => geluTanh(b, i.x!));
    assertClose(y, activationRef(x, "gelu_tanh"), FP32_TOL, "gelu tanh");
    const b = new GraphBuilder({ name: "g" });
    assert.throws(
      () => activation(b, b.input("x", "float32", [1]), { fn: "tanh" }),
      /activation must be one of swish, silu, mish, gelu, relu: got "tanh"/,
    );
  });

  await t.step("downsample2D() with asymmetric pad, padding 1, and average pooling", async () => {
    const weights = addRandomWeights(
      new MemoryWeights(),
      [["d.conv.weight", [6, 4, 3, 3]], ["d.conv.bias", [6]]],
      rand,
    );
    const x = randomTensor([1, 4, 8, 6], rand);
    const cw = await get(weights, "d.conv.weight"), cb = await get(weights, "d.conv.bias");
    const y0 = await runBlock(
      weights,
      { x },
      (b, i) => downsample2D(b, i.x!, { name: "d", channels: 4, outChannels: 6, useConv: true, padding: 0 }),
    );
    assertClose(
      y0,
      conv2dRef(x, cw, cb, { outChannels: 6, kernel: 3, stride: 2, pads: [0, 0, 1, 1] }),
      FP32_TOL,
      "pad 0",
    );
    assert.deepEqual([...y0.shape], [1, 6, 4, 3]);
    const y1 = await runBlock(
      weights,
      { x },
      (b, i) => downsample2D(b, i.x!, { name: "d", channels: 4, outChannels: 6, useConv: true }),
    );
    assertClose(
      y1,
      conv2dRef(x, cw, cb, { outChannels: 6, kernel: 3, stride: 2, pads: [1, 1, 1, 1] }),
      FP32_TOL,
      "pad 1",
    );
    const yp = await runBlock(weights, { x }, (b, i) => downsample2D(b, i.x!, { name: "p", channels: 4 }));
    assertClose(yp, avgPool2Ref(x), FP32_TOL, "avgpool");
  });

  await t.step("upsample2D() nearest ×2 + conv, and to another tensor's size", async () => {
    const weights = addRandomWeights(
      new MemoryWeights(),
      [["u.conv.weight", [3, 3, 3, 3]], ["u.conv.bias", [3]]],
      rand,
    );
    const x = randomTensor([2, 3, 3, 4], rand);
    const y = await runBlock(weights, { x }, (b, i) => upsample2D(b, i.x!, { name: "u", channels: 3, useConv: true }));
    const ref = conv2dRef(
      resizeNearestRef(x, 6, 8),
      await get(weights, "u.conv.weight"),
      await get(weights, "u.conv.bias"),
      {
        outChannels: 3,
        kernel: 3,
        pads: [1, 1, 1, 1],
      },
    );
    assertClose(y, ref, FP32_TOL, "upsample conv");
    const like = randomTensor([2, 5, 7, 9], rand);
    const ys = await runBlock(
      weights,
      { x, like },
      (b, i) => upsample2D(b, i.x!, { name: "s", channels: 3, outputSizeOf: i.like! }),
    );
    assertClose(ys, resizeNearestRef(x, 7, 9), 0, "upsample to size");
  });
});

Deno.test("resnetBlock2D() and attention() match the diffusers math", async (t) => {
  const rand = seededRandom(21);

  await t.step("resnetBlock2D() with temb, channel change and output_scale_factor", async () => {
    const weights = addRandomWeights(new MemoryWeights(), resnetSpec("r", 8, 12, 10), rand);
    const x = randomTensor([2, 8, 5, 4], rand);
    const temb = randomTensor([2, 10], rand);
    const o = {
      name: "r",
      inChannels: 8,
      outChannels: 12,
      tembChannels: 10,
      groups: 4,
      eps: 1e-6,
      outputScaleFactor: 2,
    };
    const y = await runBlock(weights, { x, temb }, (b, i) => resnetBlock2D(b, i.x!, { ...o, temb: i.temb! }));
    const ref = await resnetRef(weights, "r", x, {
      inC: 8,
      outC: 12,
      groups: 4,
      eps: 1e-6,
      act: "silu",
      temb,
      outputScale: 2,
    });
    assertClose(y, ref, FP32_TOL, "resnet");
    const y16 = await runBlock(weights, { x, temb }, (b, i) => resnetBlock2D(b, i.x!, { ...o, temb: i.temb! }), "fp16");
    assertClose(y16, ref, FP16_TOL, "resnet fp16");
  });

  await t.step("resnetBlock2D() without temb (VAE), same channels, and scale_shift", async () => {
    const weights = addRandomWeights(
      new MemoryWeights(),
      [...resnetSpec("v", 6, 6), ...resnetSpec("s", 6, 6, 5, true)],
      rand,
    );
    const x = randomTensor([1, 6, 4, 4], rand);
    const y = await runBlock(
      weights,
      { x },
      (b, i) => resnetBlock2D(b, i.x!, { name: "v", inChannels: 6, groups: 3, nonLinearity: "mish" }),
    );
    assertClose(
      y,
      await resnetRef(weights, "v", x, { inC: 6, outC: 6, groups: 3, eps: 1e-6, act: "mish" }),
      FP32_TOL,
      "resnet vae",
    );
    const temb = randomTensor([1, 5], rand);
    const ys = await runBlock(
      weights,
      { x, temb },
      (b, i) =>
        resnetBlock2D(b, i.x!, {
          name: "s",
          inChannels: 6,
          groups: 2,
          temb: i.temb!,
          tembChannels: 5,
          timeEmbeddingNorm: "scale_shift",
        }),
    );
    const ref = await resnetRef(weights, "s", x, {
      inC: 6,
      outC: 6,
      groups: 2,
      eps: 1e-6,
      act: "silu",
      temb,
      scaleShift: true,
    });
    assertClose(ys, ref, FP32_TOL, "resnet scale_shift");
    const b = new GraphBuilder({ name: "g", weights });
    assert.throws(
      () => resnetBlock2D(b, b.input("x", "float32", [1]), { name: "s", inChannels: 6, tembChannels: 5 }),
      /s: tembChannels is 5 but no temb is given/,
    );
  });

  await t.step("resnetBlock2D() with down: average-pools both paths after the first activation", async () => {
    const weights = addRandomWeights(new MemoryWeights(), resnetSpec("d", 4, 8), rand);
    const x = randomTensor([1, 4, 6, 4], rand);
    const y = await runBlock(
      weights,
      { x },
      (b, i) => resnetBlock2D(b, i.x!, { name: "d", inChannels: 4, outChannels: 8, groups: 2, down: true }),
    );
    const get2 = (n: string) => get(weights, `d.${n}`);
    let h = activationRef(groupNormRef(x, 2, 1e-6, await get2("norm1.weight"), await get2("norm1.bias")), "silu");
    h = conv2dRef(avgPool2Ref(h), await get2("conv1.weight"), await get2("conv1.bias"), {
      outChannels: 8,
      kernel: 3,
      pads: [1, 1, 1, 1],
    });
    h = activationRef(groupNormRef(h, 2, 1e-6, await get2("norm2.weight"), await get2("norm2.bias")), "silu");
    h = conv2dRef(h, await get2("conv2.weight"), await get2("conv2.bias"), {
      outChannels: 8,
      kernel: 3,
      pads: [1, 1, 1, 1],
    });
    const shortcut = conv2dRef(avgPool2Ref(x), await get2("conv_shortcut.weight"), await get2("conv_shortcut.bias"), {
      outChannels: 8,
      kernel: 1,
    });
    assertClose(y, zipRef(shortcut, h, (a, b) => a + b), FP32_TOL, "resnet down");
  });

  await t.step("attention() on feature maps: group norm, residual, rescale, several heads", async () => {
    const weights = addRandomWeights(new MemoryWeights(), attentionSpec("a", 8), rand);
    const x = randomTensor([2, 8, 3, 5], rand);
    const o = {
      name: "a",
      queryDim: 8,
      inputRank: 4 as const,
      heads: 2,
      dimHead: 4,
      normNumGroups: 4,
      eps: 1e-6,
      bias: true,
      residualConnection: true,
      rescaleOutputFactor: 1.5,
    };
    const y = await runBlock(weights, { x }, (b, i) => attention(b, i.x!, o));
    const ref = await spatialAttentionRef(weights, "a", x, {
      channels: 8,
      heads: 2,
      groups: 4,
      eps: 1e-6,
      rescale: 1.5,
    });
    assertClose(y, ref, FP32_TOL, "attention");
    const y16 = await runBlock(weights, { x }, (b, i) => attention(b, i.x!, o), "fp16");
    assertClose(y16, ref, FP16_TOL, "attention fp16");
  });

  await t.step("attention() accepts deprecated query/key/value/proj_attn names", async () => {
    const renamed = new MemoryWeights();
    const original = addRandomWeights(new MemoryWeights(), attentionSpec("a", 4), rand);
    const map: Record<string, string> = { to_q: "query", to_k: "key", to_v: "value", "to_out.0": "proj_attn" };
    for (const name of original.names()) {
      const m = /^a\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(name);
      const target = m ? `a.${map[m[1]!]}.${m[2]}` : name;
      renamed.set(target, original.info(name).shape, await get(original, name));
    }
    const x = randomTensor([1, 4, 2, 2], rand);
    const o = {
      name: "a",
      queryDim: 4,
      inputRank: 4 as const,
      heads: 1,
      dimHead: 4,
      normNumGroups: 2,
      bias: true,
      residualConnection: true,
    };
    const y = await runBlock(renamed, { x }, (b, i) => attention(b, i.x!, o));
    const ref = await runBlock(original, { x }, (b, i) => attention(b, i.x!, o));
    assertClose(y, ref, 0, "deprecated names");
  });

  await t.step("attention() cross-attention on sequences (no q/k/v bias, inner dim ≠ query dim)", async () => {
    const weights = addRandomWeights(new MemoryWeights(), [
      ["c.to_q.weight", [10, 8]],
      ["c.to_k.weight", [10, 6]],
      ["c.to_v.weight", [10, 6]],
      ["c.to_out.0.weight", [8, 10]],
      ["c.to_out.0.bias", [8]],
    ], rand);
    const x = randomTensor([2, 5, 8], rand);
    const ctx = randomTensor([2, 7, 6], rand);
    const o = { name: "c", queryDim: 8, inputRank: 3 as const, heads: 2, dimHead: 5, crossAttentionDim: 6 };
    const y = await runBlock(weights, { x, ctx }, (b, i) => attention(b, i.x!, { ...o, encoderHiddenStates: i.ctx! }));
    const q = linearRef(x, await get(weights, "c.to_q.weight"), null, 10);
    const k = linearRef(ctx, await get(weights, "c.to_k.weight"), null, 10);
    const v = linearRef(ctx, await get(weights, "c.to_v.weight"), null, 10);
    const ref = linearRef(
      sdpaRef(q, k, v, 2, 5 ** -0.5),
      await get(weights, "c.to_out.0.weight"),
      await get(weights, "c.to_out.0.bias"),
      8,
    );
    assertClose(y, ref, FP32_TOL, "cross attention");
    const y16 = await runBlock(
      weights,
      { x, ctx },
      (b, i) => attention(b, i.x!, { ...o, encoderHiddenStates: i.ctx! }),
      "fp16",
    );
    assertClose(y16, ref, FP16_TOL, "cross attention fp16");
  });

  await t.step("unetMidBlock2D() = resnet, attention, resnet with temb", async () => {
    const spec = [
      ...resnetSpec("m.resnets.0", 8, 8, 6),
      ...attentionSpec("m.attentions.0", 8),
      ...resnetSpec("m.resnets.1", 8, 8, 6),
    ];
    const weights = addRandomWeights(new MemoryWeights(), spec, rand);
    const x = randomTensor([1, 8, 4, 3], rand);
    const temb = randomTensor([1, 6], rand);
    const y = await runBlock(
      weights,
      { x, temb },
      (b, i) =>
        unetMidBlock2D(b, i.x!, {
          name: "m",
          inChannels: 8,
          temb: i.temb!,
          tembChannels: 6,
          resnetGroups: 4,
          attentionHeadDim: 4,
          resnetEps: 1e-5,
        }),
    );
    const ro = { inC: 8, outC: 8, groups: 4, eps: 1e-5, act: "silu", temb };
    let ref = await resnetRef(weights, "m.resnets.0", x, ro);
    ref = await spatialAttentionRef(weights, "m.attentions.0", ref, {
      channels: 8,
      heads: 2,
      groups: 4,
      eps: 1e-5,
      rescale: 1,
    });
    ref = await resnetRef(weights, "m.resnets.1", ref, ro);
    assertClose(y, ref, FP32_TOL, "mid block");
  });
});

Deno.test("time embedding and feed-forward blocks", async (t) => {
  const rand = seededRandom(31);

  await t.step("timestepProjection() matches get_timestep_embedding (flip, shift, odd width, scale)", async () => {
    const ts = new Tensor(Float32Array.of(0, 1, 17.5, 999), [4]);
    const cases = [
      { numChannels: 32, flipSinToCos: true, downscaleFreqShift: 0 },
      { numChannels: 16, flipSinToCos: false, downscaleFreqShift: 1 },
      { numChannels: 9, flipSinToCos: true, downscaleFreqShift: 0, scale: 2 },
    ];
    for (const c of cases) {
      const y = await runBlock(new MemoryWeights(), { t: ts }, (b, i) => timestepProjection(b, i.t!, c));
      const ref = timestepEmbeddingRef([...ts.data], c.numChannels, c);
      // padded odd width: the reference leaves the last column 0 as F.pad does
      // sin/cos of arguments up to ~2000 lose ~1e-4 to float32 rounding of t·freq
      assertClose(y, ref, 5e-4, JSON.stringify(c));
    }
  });

  await t.step("timestepFrequencies() rounds like torch's float32 arange/exp", () => {
    const f = timestepFrequencies(320, 0);
    assert.equal(f.length, 160);
    assert.equal(f[0], 1);
    assert.ok(Math.abs(f[159]! - Math.exp(-Math.log(10000) * 159 / 160)) < 1e-9);
  });

  await t.step("timestepEmbedding() = linear_1 → silu → linear_2, in fp32 and fp16", async () => {
    const weights = addRandomWeights(new MemoryWeights(), [
      ["te.linear_1.weight", [12, 8]],
      ["te.linear_1.bias", [12]],
      ["te.linear_2.weight", [12, 12]],
      ["te.linear_2.bias", [12]],
    ], rand);
    const ts = new Tensor(Float32Array.of(3, 500), [2]);
    const build = (b: GraphBuilder, i: Record<string, Value>) =>
      timestepEmbedding(b, timestepProjection(b, i.t!, { numChannels: 8, flipSinToCos: true, downscaleFreqShift: 0 }), {
        name: "te",
        inChannels: 8,
        timeEmbedDim: 12,
      });
    const emb = timestepEmbeddingRef([3, 500], 8, { flipSinToCos: true, downscaleFreqShift: 0 });
    const h = activationRef(
      linearRef(emb, await get(weights, "te.linear_1.weight"), await get(weights, "te.linear_1.bias"), 12),
      "silu",
    );
    const ref = linearRef(h, await get(weights, "te.linear_2.weight"), await get(weights, "te.linear_2.bias"), 12);
    assertClose(await runBlock(weights, { t: ts }, build), ref, 5e-4, "temb");
    const y16 = await runBlock(weights, { t: ts }, build, "fp16");
    assertClose(y16, ref, FP16_TOL, "temb fp16");
    const model = decodeModel(
      await (() => {
        const b = new GraphBuilder({ name: "te", weights, dtype: "fp16" });
        b.output(build(b, { t: b.input("t", "float32", ["n"]) }), "y", ["n", 12]);
        return b.toBytes();
      })(),
    );
    const sin = model.nodes.find((n) => n.opType === "Sin")!;
    assert.ok(
      model.nodes.some((n) =>
        n.opType === "Cast" && n.inputs[0] === model.nodes.find((m) => m.opType === "Concat")!.outputs[0]
      ),
      "the sinusoid is computed in float32 and cast afterwards",
    );
    assert.ok(sin);
  });

  await t.step("feedForward() with GEGLU and GELU", async () => {
    const weights = addRandomWeights(new MemoryWeights(), [
      ["ff.net.0.proj.weight", [12, 4]],
      ["ff.net.0.proj.bias", [12]],
      ["ff.net.2.weight", [4, 6]],
      ["ff.net.2.bias", [4]],
      ["fg.net.0.proj.weight", [6, 4]],
      ["fg.net.0.proj.bias", [6]],
      ["fg.net.2.weight", [4, 6]],
      ["fg.net.2.bias", [4]],
    ], rand);
    const x = randomTensor([2, 3, 4], rand);
    const y = await runBlock(weights, { x }, (b, i) => feedForward(b, i.x!, { name: "ff", dim: 4, innerDim: 6 }));
    const p = linearRef(x, await get(weights, "ff.net.0.proj.weight"), await get(weights, "ff.net.0.proj.bias"), 12);
    const gated = new Tensor(new Float32Array(2 * 3 * 6), [2, 3, 6]);
    for (let r = 0; r < 6; r++) {
      for (let j = 0; j < 6; j++) {
        const g = p.data[r * 12 + 6 + j]!;
        gated.data[r * 6 + j] = p.data[r * 12 + j]! *
          activationRef(new Tensor(Float32Array.of(g), [1]), "gelu").data[0]!;
      }
    }
    assertClose(
      y,
      linearRef(gated, await get(weights, "ff.net.2.weight"), await get(weights, "ff.net.2.bias"), 4),
      FP32_TOL,
      "geglu",
    );
    const yg = await runBlock(
      weights,
      { x },
      (b, i) => feedForward(b, i.x!, { name: "fg", dim: 4, innerDim: 6, activationFn: "gelu" }),
    );
    const hg = activationRef(
      linearRef(x, await get(weights, "fg.net.0.proj.weight"), await get(weights, "fg.net.0.proj.bias"), 6),
      "gelu",
    );
    assertClose(
      yg,
      linearRef(hg, await get(weights, "fg.net.2.weight"), await get(weights, "fg.net.2.bias"), 4),
      FP32_TOL,
      "gelu ff",
    );
    const y16 = await runBlock(
      weights,
      { x },
      (b, i) => feedForward(b, i.x!, { name: "ff", dim: 4, innerDim: 6 }),
      "fp16",
    );
    assertFinite(y16.data, "ff fp16");
  });
});

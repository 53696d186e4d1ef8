import assert from "node:assert/strict";
import { Tensor } from "@ldm/core/tensor";
import { buildLDMBertModel, resolveLDMBertConfig } from "./ldm_bert.ts";
import { activationRef, layerNormRef, linearRef, sdpaRef, zipRef } from "./_test_reference.ts";
import {
  addRandomWeights,
  assertClose,
  maxAbsDiff,
  MemoryWeights,
  openReferences,
  openTinyWeights,
  readTinyConfig,
  referenceTensor,
  runGraph,
  seededRandom,
} from "./_test_utils.ts";

const COMPONENT = "ldm-text2im/bert";

Deno.test("LDMBert graph reproduces diffusers on the tiny checkpoint", async (t) => {
  const config = readTinyConfig(COMPONENT);
  const weights = await openTinyWeights(COMPONENT);
  const refs = await openReferences();
  try {
    const ids = await refs.readInt64("bert.input_ids");
    const shape = refs.info("bert.input_ids").shape;
    const expected = await referenceTensor(refs, "bert.last_hidden_state");

    await t.step("fp32: input_ids → last_hidden_state within 1e-4", async () => {
      const out = await runGraph(buildLDMBertModel(config, weights), { input_ids: { int64: ids, shape } });
      const err = assertClose(out.last_hidden_state!, expected, 1e-4, "bert.last_hidden_state");
      console.log(`    LDMBert fp32 max abs error ${err.toExponential(2)}`);
    });

    await t.step("fp16 within 2e-2, no NaN", async () => {
      const out = await runGraph(buildLDMBertModel(config, weights, { dtype: "fp16" }), {
        input_ids: { int64: ids, shape },
      });
      const err = assertClose(out.last_hidden_state!, expected, 2e-2, "bert fp16");
      console.log(`    LDMBert fp16 max abs error ${err.toExponential(2)}`);
    });

    await t.step("shorter sequences match a TypeScript implementation (no mask, learned positions)", async () => {
      const rows = [0, 1].map((r) => Array.from({ length: 5 }, (_, i) => Number(ids[r * 77 + i]!)));
      const feed = { input_ids: { int64: BigInt64Array.from(rows.flat(), BigInt), shape: [2, 5] } };
      const out = await runGraph(buildLDMBertModel(config, weights), feed);
      const ref = await ldmBertRef(await MemoryWeights.from(weights), rows, {
        d: 32,
        layers: 2,
        heads: 4,
        headDim: 8,
        ffn: 37,
      });
      assertClose(out.last_hidden_state!, ref, 1e-4, "short sequences");
    });
  } finally {
    weights.close();
    refs.close();
  }
});

Deno.test("LDMBert config checks", () => {
  const base = readTinyConfig(COMPONENT);
  assert.throws(
    () => resolveLDMBertConfig({ ...base, activation_function: "quick_gelu" }),
    /activation_function must be one of "gelu"/,
  );
  assert.throws(
    () => resolveLDMBertConfig({ ...base, model_type: "bert" }),
    /model_type must be "ldmbert": got "bert"/,
  );
  assert.throws(() => resolveLDMBertConfig({ ...base, head_dim: 0 }), /head_dim must be an integer >= 1: got 0/);
  const defaults = resolveLDMBertConfig({});
  assert.deepEqual(
    [defaults.dModel, defaults.encoderLayers, defaults.encoderAttentionHeads, defaults.headDim, defaults.encoderFfnDim],
    [1280, 32, 8, 64, 5120],
  );
});

/** A straightforward implementation of LDMBertModel.forward from the same weights. */
async function ldmBertRef(
  weights: MemoryWeights,
  ids: number[][],
  c: { d: number; layers: number; heads: number; headDim: number; ffn: number },
): Promise<Tensor> {
  const get = (n: string) => weights.readFloat32(n);
  const tok = await get("model.embed_tokens.weight");
  const pos = await get("model.embed_positions.weight");
  const L = ids[0]!.length;
  let h = new Tensor(new Float32Array(ids.length * L * c.d), [ids.length, L, c.d]);
  ids.forEach((row, bi) =>
    row.forEach((id, l) => {
      for (let j = 0; j < c.d; j++) h.data[(bi * L + l) * c.d + j] = tok[id * c.d + j]! + pos[l * c.d + j]!;
    })
  );
  const inner = c.heads * c.headDim;
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    const x = layerNormRef(
      h,
      1e-5,
      await get(`${p}.self_attn_layer_norm.weight`),
      await get(`${p}.self_attn_layer_norm.bias`),
    );
    const q = linearRef(x, await get(`${p}.self_attn.q_proj.weight`), null, inner);
    const k = linearRef(x, await get(`${p}.self_attn.k_proj.weight`), null, inner);
    const v = linearRef(x, await get(`${p}.self_attn.v_proj.weight`), null, inner);
    const a = linearRef(
      sdpaRef(q, k, v, c.heads, c.headDim ** -0.5),
      await get(`${p}.self_attn.out_proj.weight`),
      await get(`${p}.self_attn.out_proj.bias`),
      c.d,
    );
    h = zipRef(h, a, (s, t) => s + t);
    const y = layerNormRef(h, 1e-5, await get(`${p}.final_layer_norm.weight`), await get(`${p}.final_layer_norm.bias`));
    const f = activationRef(linearRef(y, await get(`${p}.fc1.weight`), await get(`${p}.fc1.bias`), c.ffn), "gelu");
    h = zipRef(h, linearRef(f, await get(`${p}.fc2.weight`), await get(`${p}.fc2.bias`), c.d), (s, t) => s + t);
  }
  return layerNormRef(h, 1e-5, await get("model.layer_norm.weight"), await get("model.layer_norm.bias"));
}

Deno.test("LDMBert graph for another configuration matches a TypeScript implementation", async () => {
  const c = { d: 24, layers: 3, heads: 3, headDim: 5, ffn: 40, vocab: 50, positions: 12 };
  const config = {
    d_model: c.d,
    encoder_layers: c.layers,
    encoder_attention_heads: c.heads,
    head_dim: c.headDim,
    encoder_ffn_dim: c.ffn,
    vocab_size: c.vocab,
    max_position_embeddings: c.positions,
  };
  const spec: [string, number[]][] = [
    ["model.embed_tokens.weight", [c.vocab, c.d]],
    ["model.embed_positions.weight", [c.positions, c.d]],
    ["model.layer_norm.weight", [c.d]],
    ["model.layer_norm.bias", [c.d]],
  ];
  const inner = c.heads * c.headDim;
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    spec.push(
      [`${p}.self_attn_layer_norm.weight`, [c.d]],
      [`${p}.self_attn_layer_norm.bias`, [c.d]],
      [`${p}.self_attn.q_proj.weight`, [inner, c.d]],
      [`${p}.self_attn.k_proj.weight`, [inner, c.d]],
      [`${p}.self_attn.v_proj.weight`, [inner, c.d]],
      [`${p}.self_attn.out_proj.weight`, [c.d, inner]],
      [`${p}.self_attn.out_proj.bias`, [c.d]],
      [`${p}.final_layer_norm.weight`, [c.d]],
      [`${p}.final_layer_norm.bias`, [c.d]],
      [`${p}.fc1.weight`, [c.ffn, c.d]],
      [`${p}.fc1.bias`, [c.ffn]],
      [`${p}.fc2.weight`, [c.d, c.ffn]],
      [`${p}.fc2.bias`, [c.d]],
    );
  }
  const rand = seededRandom(5);
  const weights = addRandomWeights(new MemoryWeights(), spec, rand);
  const ids = [[1, 7, 49, 0, 0, 3, 2, 2, 11, 0], [5, 4, 3, 2, 1, 0, 0, 0, 0, 0]];
  const feed = { input_ids: { int64: BigInt64Array.from(ids.flat(), BigInt), shape: [2, 10] } };
  const out = await runGraph(buildLDMBertModel(config, weights), feed);
  const ref = await ldmBertRef(weights, ids, c);
  assertClose(out.last_hidden_state!, ref, 1e-4, "ldmbert other config");
  const out16 = await runGraph(buildLDMBertModel(config, weights, { dtype: "fp16" }), feed);
  assertClose(out16.last_hidden_state!, ref, 2e-2, "ldmbert fp16");
  const again = await runGraph(buildLDMBertModel(config, weights), feed);
  assert.equal(maxAbsDiff(again.last_hidden_state!.data, out.last_hidden_state!.data), 0, "deterministic");
});

/**
 * ONNX graph of `LDMBertModel`, the text encoder of LDMTextToImagePipeline (defined in diffusers
 * `pipelines/latent_diffusion/pipeline_latent_diffusion.py`): a pre-LayerNorm BART-style encoder with learned
 * positions. See shared/notes/ldm-reference.md §4.1.
 *
 * @module
 */
import type { GraphVariantOptions } from "./optimize.ts";
import { GraphBuilder, type ModelDtype, type Value, type WeightSource } from "./builder.ts";
import { activation, gelu, geluTanh, layerNorm, linear, multiHeadAttention } from "./blocks.ts";
import { ConfigFields } from "./_config.ts";

/** `activation_function` values supported (transformers ACT2FN names). */
export const LDM_BERT_ACTIVATIONS: readonly string[] = [
  "gelu",
  "gelu_new",
  "gelu_pytorch_tanh",
  "relu",
  "silu",
  "swish",
];

/** Options of {@linkcode buildLDMBertModel}. */
export interface LDMBertGraphOptions extends GraphVariantOptions {
  /** Weight precision. @default "fp32" */
  dtype?: ModelDtype;
  /** Graph name. @default "ldm_bert" */
  name?: string;
}

/** LDMBert config as the graph uses it. */
export interface LDMBertConfig {
  readonly vocabSize: number;
  readonly maxPositionEmbeddings: number;
  readonly dModel: number;
  readonly encoderLayers: number;
  readonly encoderAttentionHeads: number;
  readonly headDim: number;
  readonly encoderFfnDim: number;
  readonly activationFunction: string;
}

/**
 * Reads and checks an LDMBert `config.json` with the defaults of `LDMBertConfig.__init__` (vocab 30522, 77
 * positions, 32 layers, d_model 1280, 8 heads × 64, FFN 5120, gelu). Dropouts and `scale_embedding` do not affect
 * inference (LDMBertEncoder never scales the embeddings).
 *
 * @throws {RangeError} naming the field, its value and what is supported.
 */
export function resolveLDMBertConfig(config: Record<string, unknown>): LDMBertConfig {
  const f = new ConfigFields(config, "LDMBertModel", { key: "model_type", expected: ["ldmbert"] });
  return {
    vocabSize: f.int("vocab_size", 30522),
    maxPositionEmbeddings: f.int("max_position_embeddings", 77),
    dModel: f.int("d_model", 1280),
    encoderLayers: f.int("encoder_layers", 32),
    encoderAttentionHeads: f.int("encoder_attention_heads", 8),
    headDim: f.int("head_dim", 64),
    encoderFfnDim: f.int("encoder_ffn_dim", 5120),
    activationFunction: f.oneOf("activation_function", LDM_BERT_ACTIVATIONS, "gelu"),
  };
}

function act(b: GraphBuilder, x: Value, fn: string): Value {
  if (fn === "gelu") return gelu(b, x);
  if (fn === "gelu_new" || fn === "gelu_pytorch_tanh") return geluTanh(b, x);
  return activation(b, x, { fn });
}

/**
 * The text encoder graph: `input_ids` int64 `[batch, sequence]` (sequence ≤ max_position_embeddings; the pipeline pads
 * to 77 and passes no attention mask) → `last_hidden_state` float32 `[batch, sequence, d_model]`.
 *
 * Per layer (LDMBertEncoderLayer): `h += out_proj(attn(LN(h)))`, `h += fc2(act(fc1(LN(h))))`; attention q/k/v have no
 * bias and q is scaled by head_dim^-0.5; a final LayerNorm follows. In fp16 the residual stream stays float32 and only
 * the projections and attention run in float16, so that 32 residual additions cannot overflow (diffusers clamps
 * inf/NaN in fp16 for the same reason).
 *
 * @throws {RangeError} on an unsupported config; {@linkcode Error} naming a missing or misshapen weight.
 */
export function buildLDMBertModel(
  config: Record<string, unknown>,
  weights: WeightSource,
  options: LDMBertGraphOptions = {},
): GraphBuilder {
  const cfg = resolveLDMBertConfig(config);
  const dtype = options.dtype ?? "fp32";
  const b = new GraphBuilder({
    name: options.name ?? "ldm_bert",
    weights,
    dtype,
    docString: `LDMBertModel (diffusers pipeline_latent_diffusion.py) text encoder (${dtype})`,
    optimize: options.optimize,
    fixedDims: options.fixedDims,
  });
  const d = cfg.dModel;
  const inner = cfg.encoderAttentionHeads * cfg.headDim;
  const ids = b.input("input_ids", "int64", ["batch", "sequence"]);
  // embed_tokens(ids) + embed_positions(arange(L))
  let h = b.scope("model.embed", () => {
    const tokens = b.op("Gather", [b.weight("model.embed_tokens.weight", [cfg.vocabSize, d]), ids], { axis: 0 }, {
      name: "model.embed_tokens",
    });
    const length = b.op("Slice", [b.shape(ids), b.constInt64([1]), b.constInt64([2])]);
    const positions = b.op(
      "Slice",
      [
        b.weight("model.embed_positions.weight", [cfg.maxPositionEmbeddings, d]),
        b.constInt64([0]),
        length,
        b.constInt64([0]),
      ],
      {},
      { name: "model.embed_positions" },
    );
    return b.op("Add", [b.cast(tokens, "float32"), b.cast(positions, "float32")]);
  });
  for (let i = 0; i < cfg.encoderLayers; i++) {
    const p = `model.layers.${i}`;
    h = b.scope(p, () => {
      const x = b.toCompute(layerNorm(b, h, { name: `${p}.self_attn_layer_norm`, dim: d }));
      const proj = (name: string) =>
        linear(b, x, { name: `${p}.self_attn.${name}`, inFeatures: d, outFeatures: inner, bias: false });
      const attn = multiHeadAttention(b, proj("q_proj"), {
        key: proj("k_proj"),
        value: proj("v_proj"),
        heads: cfg.encoderAttentionHeads,
        headDim: cfg.headDim,
        scale: cfg.headDim ** -0.5,
      });
      const o = linear(b, attn, { name: `${p}.self_attn.out_proj`, inFeatures: inner, outFeatures: d });
      const r = b.op("Add", [h, b.cast(o, "float32")]);
      const y = b.toCompute(layerNorm(b, r, { name: `${p}.final_layer_norm`, dim: d }));
      const f1 = linear(b, y, { name: `${p}.fc1`, inFeatures: d, outFeatures: cfg.encoderFfnDim });
      const f2 = linear(b, act(b, f1, cfg.activationFunction), {
        name: `${p}.fc2`,
        inFeatures: cfg.encoderFfnDim,
        outFeatures: d,
      });
      return b.op("Add", [r, b.cast(f2, "float32")]);
    });
  }
  h = layerNorm(b, h, { name: "model.layer_norm", dim: d });
  b.output(h, "last_hidden_state", ["batch", "sequence", d]);
  return b;
}

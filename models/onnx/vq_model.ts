/**
 * ONNX graphs of diffusers' `VQModel` (models/autoencoders/vq_model.py, vae.py): the encoder (`sample → latents`,
 * before quantisation) and the decoder (`latent_sample → sample`) that quantises to the nearest codebook vector first,
 * as `VQModel.decode` does by default.
 *
 * @module
 */
import type { GraphBuilder, Value, WeightSource } from "./builder.ts";
import { conv2d } from "./blocks.ts";
import { ConfigFields } from "./_config.ts";
import { readVaeConfig, type VaeConfig, vaeDecoder, vaeEncoder, vaeGraphBuilder } from "./_vae.ts";
import type { AutoencoderGraphOptions } from "./autoencoder_kl.ts";

/** VQModel config as the graphs use it. */
export interface VQModelConfig extends VaeConfig {
  readonly numVqEmbeddings: number;
  /** `vq_embed_dim`, or `latent_channels` when null. */
  readonly vqEmbedDim: number;
  readonly forceUpcast: boolean;
}

/**
 * Reads and checks a VQModel `config.json` with the defaults of `VQModel.__init__`. `norm_type` must be `"group"`
 * (the `"spatial"` MoVQ decoder is not supported); `lookup_from_codebook` only matters with `force_not_quantize`, which
 * these graphs do not expose; `scaling_factor` and `sample_size` are unused.
 *
 * @throws {RangeError} naming the field, its value and what is supported.
 */
export function resolveVQModelConfig(config: Record<string, unknown>): VQModelConfig {
  const f = new ConfigFields(config, "VQModel", { key: "_class_name", expected: ["VQModel"] });
  const normType = config["norm_type"];
  if (normType !== undefined && normType !== "group") {
    throw new RangeError(
      `VQModel config: norm_type must be "group": got ${
        JSON.stringify(normType)
      } (the "spatial" decoder is not supported)`,
    );
  }
  f.bool("lookup_from_codebook", false);
  const vae = readVaeConfig(f, { layersPerBlock: 1, latentChannels: 3 });
  return {
    ...vae,
    numVqEmbeddings: f.int("num_vq_embeddings", 256),
    vqEmbedDim: f.intOrNull("vq_embed_dim", null) ?? vae.latentChannels,
    forceUpcast: f.bool("force_upcast", false),
  };
}

/**
 * The encoder graph: `sample` float32 `[batch, in_channels, height, width]` → `latents` float32
 * `[batch, vq_embed_dim, height/f, width/f]` (`VQModel.encode(x).latents`: Encoder then quant_conv, not quantised).
 *
 * @throws {RangeError} on an unsupported config; {@linkcode Error} naming a missing or misshapen weight.
 */
export function buildVQModelEncoder(
  config: Record<string, unknown>,
  weights: WeightSource,
  options: AutoencoderGraphOptions = {},
): GraphBuilder {
  const cfg = resolveVQModelConfig(config);
  const b = vaeGraphBuilder("VQModel", "encoder", cfg, weights, options, "vq_encoder");
  const sample = b.input("sample", "float32", ["batch", cfg.inChannels, "height", "width"]);
  let h = vaeEncoder(b, b.toCompute(sample), cfg, { outChannels: cfg.latentChannels, doubleZ: false });
  h = conv2d(b, h, { name: "quant_conv", inChannels: cfg.latentChannels, outChannels: cfg.vqEmbedDim, kernelSize: 1 });
  b.output(h, "latents", ["batch", cfg.vqEmbedDim, "latent_height", "latent_width"]);
  return b;
}

/**
 * The decoder graph: `latent_sample` float32 `[batch, vq_embed_dim, latent_height, latent_width]` → `sample` float32
 * `[batch, out_channels, height, width]`, as `VQModel.decode(h).sample`: the VectorQuantizer snaps every latent vector
 * to its nearest codebook entry (float32, see {@linkcode vectorQuantize}), then post_quant_conv and the Decoder.
 *
 * @throws {RangeError} on an unsupported config; {@linkcode Error} naming a missing or misshapen weight.
 */
export function buildVQModelDecoder(
  config: Record<string, unknown>,
  weights: WeightSource,
  options: AutoencoderGraphOptions = {},
): GraphBuilder {
  const cfg = resolveVQModelConfig(config);
  const b = vaeGraphBuilder("VQModel", "decoder", cfg, weights, options, "vq_decoder");
  const z = b.input("latent_sample", "float32", ["batch", cfg.vqEmbedDim, "latent_height", "latent_width"]);
  const quant = vectorQuantize(b, z, { numEmbeddings: cfg.numVqEmbeddings, embedDim: cfg.vqEmbedDim });
  const h = conv2d(b, b.toCompute(quant), {
    name: "post_quant_conv",
    inChannels: cfg.vqEmbedDim,
    outChannels: cfg.latentChannels,
    kernelSize: 1,
  });
  b.output(vaeDecoder(b, h, cfg), "sample", ["batch", cfg.outChannels, "height", "width"]);
  return b;
}

/**
 * `VectorQuantizer.forward` (vae.py) on a float32 `[N, D, H, W]` value, always in float32 with a float32 codebook
 * `quantize.embedding.weight` `[K, D]`:
 *
 * 1. `z` → `[N·H·W, D]` rows (permute to channels-last, flatten).
 * 2. Distances as `torch.cdist` computes them for more than 25 rows (`_euclidean_dist`): one product of the augmented
 *    matrices `[-2z, ‖z‖², 1]·[e, 1, ‖e‖²]ᵀ`, clamped at 1e-30, square root.
 * 3. `argmin` over the codebook; ties go to the lowest index, as in torch (ArgMin with select_last_index 0). Near-ties
 *    within float rounding can still resolve differently from torch, whose matrix product sums in another order.
 * 4. `z_q = z + (e − z)` (the straight-through form, which may differ from `e` by an ulp), back to `[N, D, H, W]`.
 */
export function vectorQuantize(b: GraphBuilder, z: Value, o: { numEmbeddings: number; embedDim: number }): Value {
  return b.scope("quantize", () => {
    const D = o.embedDim;
    const zf = b.cast(z, "float32");
    const zt = b.op("Transpose", [zf], { perm: [0, 2, 3, 1] });
    const flat = b.op("Reshape", [zt, b.constInt64([-1, D])]);
    const codebook = b.weight("quantize.embedding.weight", [o.numEmbeddings, D], { type: "float32" });
    const sumSq = (v: Value) => b.op("ReduceSum", [b.op("Mul", [v, v]), b.constInt64([1])], { keepdims: 1 });
    // a [rows, 1] column of ones for the augmented matrices
    const rowsOnes = (v: Value) => {
      const n = b.op("Slice", [b.shape(v), b.constInt64([0]), b.constInt64([1])]);
      return b.op("ConstantOfShape", [b.op("Concat", [n, b.constInt64([1])], { axis: 0 })], {
        value: { tensor: { type: "float32", shape: [1], values: [1] } },
      });
    };
    const left = b.op("Concat", [b.op("Mul", [flat, b.scalar(-2, "float32")]), sumSq(flat), rowsOnes(flat)], {
      axis: 1,
    });
    const right = b.op("Concat", [codebook, rowsOnes(codebook), sumSq(codebook)], { axis: 1 });
    const dist2 = b.op("MatMul", [left, b.op("Transpose", [right], { perm: [1, 0] })]);
    const dist = b.op("Sqrt", [b.op("Max", [dist2, b.scalar(1e-30, "float32")])]);
    const index = b.op("ArgMin", [dist], { axis: 1, keepdims: 0, select_last_index: 0 }, { name: "quantize/argmin" });
    const e = b.op("Gather", [codebook, index], { axis: 0 });
    const zq = b.op("Add", [flat, b.op("Sub", [e, flat])]);
    return b.op("Transpose", [b.op("Reshape", [zq, b.shape(zt)])], { perm: [0, 3, 1, 2] });
  });
}

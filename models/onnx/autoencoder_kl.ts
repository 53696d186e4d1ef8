/**
 * ONNX graphs of diffusers' `AutoencoderKL` (models/autoencoders/autoencoder_kl.py, vae.py): the encoder
 * (`sample → latent_mean, latent_std`) and the decoder (`latent_sample → sample`).
 *
 * @module
 */
import type { GraphVariantOptions } from "./optimize.ts";
import type { GraphBuilder, ModelDtype, WeightSource } from "./builder.ts";
import { conv2d } from "./blocks.ts";
import { ConfigFields } from "./_config.ts";
import { readVaeConfig, type VaeConfig, vaeDecoder, vaeEncoder, vaeGraphBuilder } from "./_vae.ts";

/** Options of the AutoencoderKL graph builders. */
export interface AutoencoderGraphOptions extends GraphVariantOptions {
  /** Weight precision. @default "fp32" */
  dtype?: ModelDtype;
  /**
   * With `dtype: "fp16"`, compute in float32 on fp16-rounded weights, as diffusers runs a `force_upcast` VAE.
   * @default the config's `force_upcast` (true for AutoencoderKL, false for VQModel)
   */
  upcast?: boolean;
  /** Graph name. @default "vae_encoder" / "vae_decoder" */
  name?: string;
}

/** AutoencoderKL config as the graphs use it. */
export interface AutoencoderKLConfig extends VaeConfig {
  readonly forceUpcast: boolean;
  readonly useQuantConv: boolean;
  readonly usePostQuantConv: boolean;
}

/**
 * Reads and checks an AutoencoderKL `config.json` with the defaults of `AutoencoderKL.__init__`.
 * `scaling_factor`, `shift_factor`, `latents_mean/std` and `sample_size` are the pipeline's business and not read.
 *
 * @throws {RangeError} naming the field, its value and what is supported.
 */
export function resolveAutoencoderKLConfig(config: Record<string, unknown>): AutoencoderKLConfig {
  const f = new ConfigFields(config, "AutoencoderKL", { key: "_class_name", expected: ["AutoencoderKL"] });
  return {
    ...readVaeConfig(f, { layersPerBlock: 1, latentChannels: 4 }),
    forceUpcast: f.bool("force_upcast", true),
    useQuantConv: f.bool("use_quant_conv", true),
    usePostQuantConv: f.bool("use_post_quant_conv", true),
  };
}

/**
 * The encoder graph: `sample` float32 `[batch, in_channels, height, width]` (images in [-1, 1]) →
 * `latent_mean` and `latent_std` float32 `[batch, latent_channels, height/f, width/f]`, the mean and standard
 * deviation of `encode(x).latent_dist` (quant_conv output split in two, logvar clamped to [-30, 20],
 * std = exp(0.5·logvar); vae.py DiagonalGaussianDistribution), computed in float32.
 *
 * @throws {RangeError} on an unsupported config; {@linkcode Error} naming a missing or misshapen weight.
 */
export function buildAutoencoderKLEncoder(
  config: Record<string, unknown>,
  weights: WeightSource,
  options: AutoencoderGraphOptions = {},
): GraphBuilder {
  const cfg = resolveAutoencoderKLConfig(config);
  const b = vaeGraphBuilder("AutoencoderKL", "encoder", cfg, weights, options, "vae_encoder");
  const sample = b.input("sample", "float32", ["batch", cfg.inChannels, "height", "width"]);
  let h = vaeEncoder(b, b.toCompute(sample), cfg, { outChannels: cfg.latentChannels, doubleZ: true });
  const lc = cfg.latentChannels;
  if (cfg.useQuantConv) {
    h = conv2d(b, h, { name: "quant_conv", inChannels: 2 * lc, outChannels: 2 * lc, kernelSize: 1 });
  }
  const [mean, logvar] = b.scope(
    "latent_dist",
    () => b.opMulti("Split", [b.cast(h, "float32"), b.constInt64([lc, lc])], 2, { axis: 1 }),
  );
  const std = b.scope("latent_dist", () => {
    const clamped = b.op("Clip", [logvar!, b.scalar(-30, "float32"), b.scalar(20, "float32")]);
    return b.op("Exp", [b.op("Mul", [clamped, b.scalar(0.5, "float32")])]);
  });
  const dims = ["batch", lc, "latent_height", "latent_width"];
  b.output(mean!, "latent_mean", dims);
  b.output(std, "latent_std", dims);
  return b;
}

/**
 * The decoder graph: `latent_sample` float32 `[batch, latent_channels, latent_height, latent_width]` (already divided
 * by the scaling factor) → `sample` float32 `[batch, out_channels, height, width]`, i.e. `post_quant_conv` then the
 * Decoder, as `AutoencoderKL.decode(z).sample`.
 *
 * @throws {RangeError} on an unsupported config; {@linkcode Error} naming a missing or misshapen weight.
 */
export function buildAutoencoderKLDecoder(
  config: Record<string, unknown>,
  weights: WeightSource,
  options: AutoencoderGraphOptions = {},
): GraphBuilder {
  const cfg = resolveAutoencoderKLConfig(config);
  const b = vaeGraphBuilder("AutoencoderKL", "decoder", cfg, weights, options, "vae_decoder");
  const lc = cfg.latentChannels;
  let z = b.toCompute(b.input("latent_sample", "float32", ["batch", lc, "latent_height", "latent_width"]));
  if (cfg.usePostQuantConv) {
    z = conv2d(b, z, { name: "post_quant_conv", inChannels: lc, outChannels: lc, kernelSize: 1 });
  }
  b.output(vaeDecoder(b, z, cfg), "sample", ["batch", cfg.outChannels, "height", "width"]);
  return b;
}

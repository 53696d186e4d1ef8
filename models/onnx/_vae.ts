/**
 * The VAE `Encoder` and `Decoder` of diffusers `models/autoencoders/vae.py`, with the `DownEncoderBlock2D`,
 * `AttnDownEncoderBlock2D`, `UpDecoderBlock2D` and `AttnUpDecoderBlock2D` blocks of `unets/unet_2d_blocks.py`, shared by
 * the AutoencoderKL and VQModel graphs.
 *
 * @module
 */
import { GraphBuilder, type Value, type WeightSource } from "./builder.ts";
import {
  ACTIVATIONS,
  attention,
  conv2d,
  downsample2D,
  groupNormActivation,
  resnetBlock2D,
  unetMidBlock2D,
  upsample2D,
} from "./blocks.ts";
import type { ConfigFields } from "./_config.ts";
import type { AutoencoderGraphOptions } from "./autoencoder_kl.ts";

/** Down block types the encoder supports (`get_down_block` also strips a `UNetRes` prefix). */
export const ENCODER_BLOCK_TYPES: readonly string[] = [
  "DownEncoderBlock2D",
  "AttnDownEncoderBlock2D",
  "UNetResDownEncoderBlock2D",
  "UNetResAttnDownEncoderBlock2D",
];
/** Up block types the decoder supports. */
export const DECODER_BLOCK_TYPES: readonly string[] = [
  "UpDecoderBlock2D",
  "AttnUpDecoderBlock2D",
  "UNetResUpDecoderBlock2D",
  "UNetResAttnUpDecoderBlock2D",
];

/** The config fields Encoder and Decoder use. */
export interface VaeConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly downBlockTypes: readonly string[];
  readonly upBlockTypes: readonly string[];
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly actFn: string;
  readonly latentChannels: number;
  readonly normNumGroups: number;
  readonly midBlockAddAttention: boolean;
}

/** Reads the Encoder/Decoder fields with the defaults of `cls`'s `__init__` (both classes share them). */
export function readVaeConfig(
  f: ConfigFields,
  defaults: { layersPerBlock: number; latentChannels: number },
): VaeConfig {
  const blockOutChannels = f.intArray("block_out_channels", [64]);
  const downBlockTypes = f.stringArray("down_block_types", ENCODER_BLOCK_TYPES, ["DownEncoderBlock2D"]);
  const upBlockTypes = f.stringArray("up_block_types", DECODER_BLOCK_TYPES, ["UpDecoderBlock2D"]);
  f.sameLength("down_block_types", downBlockTypes, "block_out_channels", blockOutChannels);
  f.sameLength("up_block_types", upBlockTypes, "block_out_channels", blockOutChannels);
  const normNumGroups = f.int("norm_num_groups", 32);
  for (const c of blockOutChannels) {
    if (c % normNumGroups !== 0) {
      throw new RangeError(
        `${f.className} config: norm_num_groups ${normNumGroups} must divide every block_out_channels entry: got [${blockOutChannels}]`,
      );
    }
  }
  return {
    inChannels: f.int("in_channels", 3),
    outChannels: f.int("out_channels", 3),
    downBlockTypes,
    upBlockTypes,
    blockOutChannels,
    layersPerBlock: f.int("layers_per_block", defaults.layersPerBlock),
    actFn: f.oneOf("act_fn", ACTIVATIONS, "silu", (s) => s.toLowerCase()),
    latentChannels: f.int("latent_channels", defaults.latentChannels),
    normNumGroups,
    midBlockAddAttention: f.bool("mid_block_add_attention", true),
  };
}

const EPS = 1e-6;

/**
 * The GraphBuilder of one AutoencoderKL or VQModel graph: `options.name` or `name`, weights in `options.dtype`
 * (fp32 by default), upcast as `options.upcast` or else the config's `force_upcast`, and the variant options.
 */
export function vaeGraphBuilder(
  cls: "AutoencoderKL" | "VQModel",
  part: "encoder" | "decoder",
  cfg: { readonly forceUpcast: boolean },
  weights: WeightSource,
  options: AutoencoderGraphOptions,
  name: string,
): GraphBuilder {
  const dtype = options.dtype ?? "fp32";
  return new GraphBuilder({
    name: options.name ?? name,
    weights,
    dtype,
    upcast: options.upcast ?? cfg.forceUpcast,
    docString: `diffusers ${cls} ${part} (${dtype})`,
    optimize: options.optimize,
    fixedDims: options.fixedDims,
  });
}

/**
 * `Encoder.forward` (vae.py) under module path `encoder`: conv_in → down blocks (downsample with padding 0, i.e. the
 * asymmetric pad) → mid block → conv_norm_out → SiLU (always, whatever act_fn) → conv_out with
 * `2·outChannels` channels when `doubleZ`.
 */
export function vaeEncoder(
  b: GraphBuilder,
  x: Value,
  cfg: VaeConfig,
  o: { outChannels: number; doubleZ: boolean },
): Value {
  const boc = cfg.blockOutChannels;
  const groups = cfg.normNumGroups;
  let h = conv2d(b, x, { name: "encoder.conv_in", inChannels: cfg.inChannels, outChannels: boc[0]!, padding: 1 });
  let outC = boc[0]!;
  for (const [i, type] of cfg.downBlockTypes.entries()) {
    const inC = outC;
    outC = boc[i]!;
    const name = `encoder.down_blocks.${i}`;
    const withAttention = type.replace(/^UNetRes/, "") === "AttnDownEncoderBlock2D";
    h = blockResnets(b, h, cfg, { name, layers: cfg.layersPerBlock, inC, outC, withAttention });
    if (i !== boc.length - 1) {
      h = downsample2D(b, h, {
        name: `${name}.downsamplers.0`,
        channels: outC,
        outChannels: outC,
        useConv: true,
        padding: 0,
      });
    }
  }
  const top = boc.at(-1)!;
  h = midBlock(b, h, "encoder.mid_block", cfg);
  h = groupNormActivation(b, h, { name: "encoder.conv_norm_out", channels: top, groups, eps: EPS, fn: "silu" });
  const outChannels = o.doubleZ ? 2 * o.outChannels : o.outChannels;
  return conv2d(b, h, { name: "encoder.conv_out", inChannels: top, outChannels, padding: 1 });
}

/**
 * `Decoder.forward` (vae.py, `norm_type="group"`) under module path `decoder`: conv_in → mid block → up blocks
 * (`layers_per_block + 1` resnets each, nearest ×2 + conv between) → conv_norm_out → SiLU → conv_out.
 */
export function vaeDecoder(b: GraphBuilder, z: Value, cfg: VaeConfig): Value {
  const boc = cfg.blockOutChannels;
  const groups = cfg.normNumGroups;
  const top = boc.at(-1)!;
  let h = conv2d(b, z, { name: "decoder.conv_in", inChannels: cfg.latentChannels, outChannels: top, padding: 1 });
  h = midBlock(b, h, "decoder.mid_block", cfg);
  const reversed = [...boc].reverse();
  let outC = reversed[0]!;
  for (const [i, type] of cfg.upBlockTypes.entries()) {
    const inC = outC;
    outC = reversed[i]!;
    const name = `decoder.up_blocks.${i}`;
    const withAttention = type.replace(/^UNetRes/, "") === "AttnUpDecoderBlock2D";
    h = blockResnets(b, h, cfg, { name, layers: cfg.layersPerBlock + 1, inC, outC, withAttention });
    if (i !== boc.length - 1) {
      h = upsample2D(b, h, { name: `${name}.upsamplers.0`, channels: outC, outChannels: outC, useConv: true });
    }
  }
  h = groupNormActivation(b, h, { name: "decoder.conv_norm_out", channels: boc[0]!, groups, eps: EPS, fn: "silu" });
  return conv2d(b, h, { name: "decoder.conv_out", inChannels: boc[0]!, outChannels: cfg.outChannels, padding: 1 });
}

/**
 * The resnets of one (Attn)DownEncoderBlock2D / (Attn)UpDecoderBlock2D, each followed by its attention in the Attn
 * variants (`layers` differs: the decoder's up blocks have one more).
 */
function blockResnets(
  b: GraphBuilder,
  x: Value,
  cfg: VaeConfig,
  o: { name: string; layers: number; inC: number; outC: number; withAttention: boolean },
): Value {
  let h = x;
  for (let j = 0; j < o.layers; j++) {
    h = resnetBlock2D(b, h, {
      name: `${o.name}.resnets.${j}`,
      inChannels: j === 0 ? o.inC : o.outC,
      outChannels: o.outC,
      groups: cfg.normNumGroups,
      eps: EPS,
      nonLinearity: cfg.actFn,
    });
    if (o.withAttention) h = decoderStyleAttention(b, h, `${o.name}.attentions.${j}`, o.outC, cfg.normNumGroups);
  }
  return h;
}

/** The UNetMidBlock2D of Encoder and Decoder: no time embedding, one head over the top block's channels. */
function midBlock(b: GraphBuilder, x: Value, name: string, cfg: VaeConfig): Value {
  const top = cfg.blockOutChannels.at(-1)!;
  return unetMidBlock2D(b, x, {
    name,
    inChannels: top,
    tembChannels: null,
    resnetEps: EPS,
    resnetActFn: cfg.actFn,
    outputScaleFactor: 1,
    resnetTimeScaleShift: "default",
    attentionHeadDim: top,
    resnetGroups: cfg.normNumGroups,
    addAttention: cfg.midBlockAddAttention,
  });
}

/** The Attention of Attn{Down,Up}{Encoder,Decoder}Block2D: one head of `channels` (attention_head_dim = channels). */
function decoderStyleAttention(b: GraphBuilder, x: Value, name: string, channels: number, groups: number): Value {
  return attention(b, x, {
    name,
    queryDim: channels,
    inputRank: 4,
    heads: 1,
    dimHead: channels,
    rescaleOutputFactor: 1,
    eps: EPS,
    normNumGroups: groups,
    residualConnection: true,
    bias: true,
  });
}

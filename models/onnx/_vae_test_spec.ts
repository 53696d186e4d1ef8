/**
 * Test helper: the state-dict entries (name, shape) diffusers' AutoencoderKL / VQModel have for a config, listed from
 * the module structure of vae.py and unet_2d_blocks.py, to fill random checkpoints for configurations the fixtures do
 * not cover.
 *
 * @module
 */
import type { VaeConfig } from "./_vae.ts";

type Spec = [string, number[]][];

function conv(name: string, o: number, i: number, k: number): Spec {
  return [[`${name}.weight`, [o, i, k, k]], [`${name}.bias`, [o]]];
}
function norm(name: string, c: number): Spec {
  return [[`${name}.weight`, [c]], [`${name}.bias`, [c]]];
}
function resnet(name: string, i: number, o: number): Spec {
  const s = [
    ...norm(`${name}.norm1`, i),
    ...conv(`${name}.conv1`, o, i, 3),
    ...norm(`${name}.norm2`, o),
    ...conv(`${name}.conv2`, o, o, 3),
  ];
  return i === o ? s : [...s, ...conv(`${name}.conv_shortcut`, o, i, 1)];
}
function attn(name: string, c: number): Spec {
  const s: Spec = [...norm(`${name}.group_norm`, c)];
  for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) {
    s.push([`${name}.${p}.weight`, [c, c]], [`${name}.${p}.bias`, [c]]);
  }
  return s;
}
function mid(name: string, c: number, withAttention: boolean): Spec {
  return [
    ...resnet(`${name}.resnets.0`, c, c),
    ...(withAttention ? attn(`${name}.attentions.0`, c) : []),
    ...resnet(`${name}.resnets.1`, c, c),
  ];
}

/** Parameters of the Encoder, Decoder and the quantisation layers of an AutoencoderKL (`kl`) or VQModel (`vq`). */
export function vaeParameterSpec(
  cfg: VaeConfig & { useQuantConv?: boolean; usePostQuantConv?: boolean },
  kind: "kl" | "vq",
  vq: { numEmbeddings: number; embedDim: number } = { numEmbeddings: 0, embedDim: 0 },
): Spec {
  const boc = cfg.blockOutChannels;
  const s: Spec = [...conv("encoder.conv_in", boc[0]!, cfg.inChannels, 3)];
  let out = boc[0]!;
  cfg.downBlockTypes.forEach((type, i) => {
    const inC = out;
    out = boc[i]!;
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      s.push(...resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? inC : out, out));
      if (type.includes("Attn")) s.push(...attn(`encoder.down_blocks.${i}.attentions.${j}`, out));
    }
    if (i < boc.length - 1) s.push(...conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, out, out, 3));
  });
  const top = boc.at(-1)!;
  s.push(...mid("encoder.mid_block", top, cfg.midBlockAddAttention), ...norm("encoder.conv_norm_out", top));
  const lc = cfg.latentChannels;
  s.push(...conv("encoder.conv_out", kind === "kl" ? 2 * lc : lc, top, 3));
  s.push(...conv("decoder.conv_in", top, lc, 3), ...mid("decoder.mid_block", top, cfg.midBlockAddAttention));
  const rev = [...boc].reverse();
  out = rev[0]!;
  cfg.upBlockTypes.forEach((type, i) => {
    const inC = out;
    out = rev[i]!;
    for (let j = 0; j < cfg.layersPerBlock + 1; j++) {
      s.push(...resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? inC : out, out));
      if (type.includes("Attn")) s.push(...attn(`decoder.up_blocks.${i}.attentions.${j}`, out));
    }
    if (i < boc.length - 1) s.push(...conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3));
  });
  s.push(...norm("decoder.conv_norm_out", boc[0]!), ...conv("decoder.conv_out", cfg.outChannels, boc[0]!, 3));
  if (kind === "kl") {
    if (cfg.useQuantConv !== false) s.push(...conv("quant_conv", 2 * lc, 2 * lc, 1));
    if (cfg.usePostQuantConv !== false) s.push(...conv("post_quant_conv", lc, lc, 1));
  } else {
    s.push(...conv("quant_conv", vq.embedDim, lc, 1), ...conv("post_quant_conv", lc, vq.embedDim, 1));
    s.push(["quantize.embedding.weight", [vq.numEmbeddings, vq.embedDim]]);
  }
  return s;
}

/**
 * Synthetic checkpoints: the exact state-dict names and shapes diffusers gives each model class for a config, filled
 * with seeded random values and written in the `save_pretrained` layout. Used to test and benchmark the converter on
 * the real block structure and widths of `CompVis/ldm-text2im-large-256` without downloading it.
 *
 * The parameter lists are written from the module constructors in diffusers (`unets/unet_2d_condition.py`,
 * `unets/unet_2d.py`, `unets/unet_2d_blocks.py`, `resnet.py`, `transformers/transformer_2d.py`, `attention.py`,
 * `autoencoders/vae.py`, `autoencoders/autoencoder_kl.py`, `autoencoders/vq_model.py`) and the LDMBert classes in
 * `pipelines/latent_diffusion/pipeline_latent_diffusion.py`; a test checks them against the tiny fixtures.
 *
 * @module
 */
import { join } from "node:path";
import { type DType, writeSafetensors } from "../checkpoint/mod.ts";
import { LDM_TEXT2IM_LARGE_256 } from "../onnx/real_configs.ts";

type Config = Readonly<Record<string, unknown>>;
/** A state-dict entry: name and torch shape. */
export type ParamSpec = readonly [name: string, shape: readonly number[]];

function get<T>(c: Config, key: string, fallback: T): T {
  const v = c[key];
  return v === undefined || v === null ? fallback : v as T;
}

function resnet(p: string, inC: number, outC: number, temb: number | null): ParamSpec[] {
  const out: ParamSpec[] = [
    [`${p}.norm1.weight`, [inC]],
    [`${p}.norm1.bias`, [inC]],
    [`${p}.conv1.weight`, [outC, inC, 3, 3]],
    [`${p}.conv1.bias`, [outC]],
  ];
  if (temb !== null) out.push([`${p}.time_emb_proj.weight`, [outC, temb]], [`${p}.time_emb_proj.bias`, [outC]]);
  out.push(
    [`${p}.norm2.weight`, [outC]],
    [`${p}.norm2.bias`, [outC]],
    [`${p}.conv2.weight`, [outC, outC, 3, 3]],
    [`${p}.conv2.bias`, [outC]],
  );
  if (inC !== outC) out.push([`${p}.conv_shortcut.weight`, [outC, inC, 1, 1]], [`${p}.conv_shortcut.bias`, [outC]]);
  return out;
}

function conv(p: string, inC: number, outC: number, k: number): ParamSpec[] {
  return [[`${p}.weight`, [outC, inC, k, k]], [`${p}.bias`, [outC]]];
}

function linear(p: string, inF: number, outF: number, bias = true): ParamSpec[] {
  return bias ? [[`${p}.weight`, [outF, inF]], [`${p}.bias`, [outF]]] : [[`${p}.weight`, [outF, inF]]];
}

function norm(p: string, c: number): ParamSpec[] {
  return [[`${p}.weight`, [c]], [`${p}.bias`, [c]]];
}

/** The `_from_deprecated_attn_block` spatial attention (VAE mid blocks, UNet2DModel Attn blocks). */
function spatialAttention(p: string, c: number): ParamSpec[] {
  return [
    ...norm(`${p}.group_norm`, c),
    ...linear(`${p}.to_q`, c, c),
    ...linear(`${p}.to_k`, c, c),
    ...linear(`${p}.to_v`, c, c),
    ...linear(`${p}.to_out.0`, c, c),
  ];
}

/** Transformer2DModel with conv proj_in/proj_out (use_linear_projection false) and one BasicTransformerBlock. */
function transformer2d(p: string, c: number, crossDim: number, linearProj: boolean): ParamSpec[] {
  const t = `${p}.transformer_blocks.0`;
  const proj = (name: string) => linearProj ? linear(`${p}.${name}`, c, c) : conv(`${p}.${name}`, c, c, 1);
  return [
    ...norm(`${p}.norm`, c),
    ...proj("proj_in"),
    ...norm(`${t}.norm1`, c),
    ...linear(`${t}.attn1.to_q`, c, c, false),
    ...linear(`${t}.attn1.to_k`, c, c, false),
    ...linear(`${t}.attn1.to_v`, c, c, false),
    ...linear(`${t}.attn1.to_out.0`, c, c),
    ...norm(`${t}.norm2`, c),
    ...linear(`${t}.attn2.to_q`, c, c, false),
    ...linear(`${t}.attn2.to_k`, crossDim, c, false),
    ...linear(`${t}.attn2.to_v`, crossDim, c, false),
    ...linear(`${t}.attn2.to_out.0`, c, c),
    ...norm(`${t}.norm3`, c),
    ...linear(`${t}.ff.net.0.proj`, c, c * 8),
    ...linear(`${t}.ff.net.2`, c * 4, c),
    ...proj("proj_out"),
  ];
}

interface UNetBlocks {
  attn: (prefix: string, c: number) => ParamSpec[];
  down: Record<string, boolean>;
  up: Record<string, boolean>;
  mid: (c: number, temb: number) => ParamSpec[];
}

function unetBody(c: Config, temb: number, blocks: UNetBlocks): ParamSpec[] {
  const channels = get<number[]>(c, "block_out_channels", [320, 640, 1280, 1280]);
  const layers = get<number>(c, "layers_per_block", 2);
  const downTypes = get<string[]>(c, "down_block_types", []);
  const upTypes = get<string[]>(c, "up_block_types", []);
  const out: ParamSpec[] = [];
  let output = channels[0]!;
  downTypes.forEach((type, i) => {
    if (!(type in blocks.down)) throw new RangeError(`down_block_types[${i}] ${type} is not supported here`);
    const input = output;
    output = channels[i]!;
    for (let j = 0; j < layers; j++) {
      out.push(...resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? input : output, output, temb));
      if (blocks.down[type]) out.push(...blocks.attn(`down_blocks.${i}.attentions.${j}`, output));
    }
    if (i < channels.length - 1) out.push(...conv(`down_blocks.${i}.downsamplers.0.conv`, output, output, 3));
  });
  out.push(...blocks.mid(channels.at(-1)!, temb));
  const rev = [...channels].reverse();
  output = rev[0]!;
  upTypes.forEach((type, i) => {
    if (!(type in blocks.up)) throw new RangeError(`up_block_types[${i}] ${type} is not supported here`);
    const prev = output;
    output = rev[i]!;
    const input = rev[Math.min(i + 1, channels.length - 1)]!;
    for (let j = 0; j <= layers; j++) {
      const skip = j === layers ? input : output;
      const resIn = j === 0 ? prev : output;
      out.push(...resnet(`up_blocks.${i}.resnets.${j}`, resIn + skip, output, temb));
      if (blocks.up[type]) out.push(...blocks.attn(`up_blocks.${i}.attentions.${j}`, output));
    }
    if (i < channels.length - 1) out.push(...conv(`up_blocks.${i}.upsamplers.0.conv`, output, output, 3));
  });
  return out;
}

/** State dict of `UNet2DConditionModel` for the LDM block types (CrossAttn/plain down and up blocks). */
export function unet2DConditionParams(c: Config): ParamSpec[] {
  const channels = get<number[]>(c, "block_out_channels", [320, 640, 1280, 1280]);
  const c0 = channels[0]!;
  const temb = c0 * 4;
  const cross = get<number>(c, "cross_attention_dim", 1280);
  const linearProj = get<boolean>(c, "use_linear_projection", false);
  const attn = (p: string, ch: number) => transformer2d(p, ch, cross, linearProj);
  return [
    ...conv("conv_in", get<number>(c, "in_channels", 4), c0, 3),
    ...linear("time_embedding.linear_1", c0, temb),
    ...linear("time_embedding.linear_2", temb, temb),
    ...unetBody(c, temb, {
      attn,
      down: { CrossAttnDownBlock2D: true, DownBlock2D: false },
      up: { CrossAttnUpBlock2D: true, UpBlock2D: false },
      mid: (ch, t) => [
        ...resnet("mid_block.resnets.0", ch, ch, t),
        ...attn("mid_block.attentions.0", ch),
        ...resnet("mid_block.resnets.1", ch, ch, t),
      ],
    }),
    ...norm("conv_norm_out", c0),
    ...conv("conv_out", c0, get<number>(c, "out_channels", 4), 3),
  ];
}

/** State dict of `UNet2DModel` (positional time embedding; plain and Attn down/up blocks; attention mid block). */
export function unet2DParams(c: Config): ParamSpec[] {
  const channels = get<number[]>(c, "block_out_channels", [224, 448, 672, 896]);
  const c0 = channels[0]!;
  const temb = c0 * 4;
  return [
    ...conv("conv_in", get<number>(c, "in_channels", 3), c0, 3),
    ...linear("time_embedding.linear_1", c0, temb),
    ...linear("time_embedding.linear_2", temb, temb),
    ...unetBody(c, temb, {
      attn: spatialAttention,
      down: { AttnDownBlock2D: true, DownBlock2D: false },
      up: { AttnUpBlock2D: true, UpBlock2D: false },
      mid: (ch, t) => [
        ...resnet("mid_block.resnets.0", ch, ch, t),
        ...spatialAttention("mid_block.attentions.0", ch),
        ...resnet("mid_block.resnets.1", ch, ch, t),
      ],
    }),
    ...norm("conv_norm_out", c0),
    ...conv("conv_out", c0, get<number>(c, "out_channels", 3), 3),
  ];
}

function vaeCoder(c: Config, encoderOut: number, latentIn: number): ParamSpec[] {
  const channels = get<number[]>(c, "block_out_channels", [64]);
  const layers = get<number>(c, "layers_per_block", 1);
  const out: ParamSpec[] = [...conv("encoder.conv_in", get<number>(c, "in_channels", 3), channels[0]!, 3)];
  let output = channels[0]!;
  channels.forEach((ch, i) => {
    const input = output;
    output = ch;
    for (let j = 0; j < layers; j++) {
      out.push(...resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? input : output, output, null));
    }
    if (i < channels.length - 1) out.push(...conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, output, output, 3));
  });
  const top = channels.at(-1)!;
  const mid = (p: string) => [
    ...resnet(`${p}.mid_block.resnets.0`, top, top, null),
    ...spatialAttention(`${p}.mid_block.attentions.0`, top),
    ...resnet(`${p}.mid_block.resnets.1`, top, top, null),
  ];
  out.push(...mid("encoder"), ...norm("encoder.conv_norm_out", top), ...conv("encoder.conv_out", top, encoderOut, 3));
  out.push(...conv("decoder.conv_in", latentIn, top, 3), ...mid("decoder"));
  const rev = [...channels].reverse();
  output = rev[0]!;
  rev.forEach((ch, i) => {
    const prev = output;
    output = ch;
    for (let j = 0; j <= layers; j++) {
      out.push(...resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : output, output, null));
    }
    if (i < channels.length - 1) out.push(...conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, output, output, 3));
  });
  out.push(
    ...norm("decoder.conv_norm_out", channels[0]!),
    ...conv("decoder.conv_out", channels[0]!, get<number>(c, "out_channels", 3), 3),
  );
  return out;
}

/** State dict of `AutoencoderKL` (encoder, quant_conv, post_quant_conv, decoder). */
export function autoencoderKLParams(c: Config): ParamSpec[] {
  const latent = get<number>(c, "latent_channels", 4);
  const coder = vaeCoder(c, 2 * latent, latent);
  const split = coder.findIndex(([n]) => n.startsWith("decoder."));
  return [
    ...coder.slice(0, split),
    ...conv("quant_conv", 2 * latent, 2 * latent, 1),
    ...conv("post_quant_conv", latent, latent, 1),
    ...coder.slice(split),
  ];
}

/** State dict of `VQModel` (encoder, quant_conv, codebook, post_quant_conv, decoder). */
export function vqModelParams(c: Config): ParamSpec[] {
  const latent = get<number>(c, "latent_channels", 3);
  const embed = get<number>(c, "vq_embed_dim", latent);
  const coder = vaeCoder(c, latent, embed);
  const split = coder.findIndex(([n]) => n.startsWith("decoder."));
  return [
    ...coder.slice(0, split),
    ...conv("quant_conv", latent, embed, 1),
    ["quantize.embedding.weight", [get<number>(c, "num_vq_embeddings", 256), embed]],
    ...conv("post_quant_conv", embed, latent, 1),
    ...coder.slice(split),
  ];
}

/** State dict of `LDMBertModel` (embeddings, pre-LN encoder layers, final LayerNorm, the unused `to_logits`). */
export function ldmBertParams(c: Config): ParamSpec[] {
  const d = get<number>(c, "d_model", 1280);
  const vocab = get<number>(c, "vocab_size", 30522);
  const heads = get<number>(c, "encoder_attention_heads", 8);
  const headDim = get<number>(c, "head_dim", 64);
  const ffn = get<number>(c, "encoder_ffn_dim", 5120);
  const out: ParamSpec[] = [
    ["model.embed_tokens.weight", [vocab, d]],
    ["model.embed_positions.weight", [get<number>(c, "max_position_embeddings", 77), d]],
  ];
  for (let i = 0; i < get<number>(c, "encoder_layers", 32); i++) {
    const p = `model.layers.${i}`;
    out.push(
      ...linear(`${p}.self_attn.k_proj`, d, heads * headDim, false),
      ...linear(`${p}.self_attn.v_proj`, d, heads * headDim, false),
      ...linear(`${p}.self_attn.q_proj`, d, heads * headDim, false),
      ...linear(`${p}.self_attn.out_proj`, heads * headDim, d),
      ...norm(`${p}.self_attn_layer_norm`, d),
      ...linear(`${p}.fc1`, d, ffn),
      ...linear(`${p}.fc2`, ffn, d),
      ...norm(`${p}.final_layer_norm`, d),
    );
  }
  out.push(...norm("model.layer_norm", d), ...linear("to_logits", d, vocab));
  return out;
}

/** Model classes → their state-dict enumerator. */
export const PARAMS_BY_CLASS: Readonly<Record<string, (c: Config) => ParamSpec[]>> = {
  UNet2DConditionModel: unet2DConditionParams,
  UNet2DModel: unet2DParams,
  AutoencoderKL: autoencoderKLParams,
  VQModel: vqModelParams,
  LDMBertModel: ldmBertParams,
};

/** FNV-1a of a string: a per-tensor seed, so every tensor's values depend only on (seed, name). */
function hashName(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Seeded values for one tensor, scaled like an initialised network so activations stay finite in fp16: weights
 * uniform in ±1/√fan_in, norm scales near 1, biases small.
 */
export function syntheticValues(name: string, shape: readonly number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = hashName(name, seed);
  const next = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const isNormScale = /norm[^.]*\.weight$/.test(name) || /layer_norm\.weight$/.test(name);
  const isEmbedding = /embed_(tokens|positions)\.weight$|quantize\.embedding\.weight$/.test(name);
  const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 0;
  const scale = isEmbedding ? 1 : shape.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.05;
  for (let i = 0; i < n; i++) out[i] = isNormScale ? 1 + (next() - 0.5) * 0.2 : (next() * 2 - 1) * scale;
  return out;
}

/** Options of {@linkcode writeSyntheticComponent} / {@linkcode writeSyntheticPipeline}. */
export interface SyntheticOptions {
  /** Stored dtype of the weights. @default "F16" */
  dtype?: Extract<DType, "F16" | "F32" | "BF16">;
  /** Seed of the values. @default 0 */
  seed?: number;
}

function encode(values: Float32Array, dtype: "F16" | "F32" | "BF16"): ArrayBufferView {
  if (dtype === "F32") return values;
  if (dtype === "F16") return new Float16Array(values);
  // bfloat16: round to nearest even on the upper 16 bits.
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Writes one model component folder (`config.json` + weights named as diffusers/transformers name them) with seeded
 * random values, tensor by tensor (memory stays near the largest tensor). Returns the number of parameters.
 */
export async function writeSyntheticComponent(
  dir: string,
  className: string,
  config: Config,
  { dtype = "F16", seed = 0 }: SyntheticOptions = {},
): Promise<number> {
  const enumerate = PARAMS_BY_CLASS[className];
  if (!enumerate) throw new RangeError(`className ${className} has no synthetic generator`);
  const params = enumerate(config);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const file = className === "LDMBertModel" ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
  await writeSafetensors(
    join(dir, file),
    params.map(([name, shape]) => ({
      name,
      dtype,
      shape,
      data: () => encode(syntheticValues(name, shape, seed), dtype),
    })),
    { metadata: { format: "pt" } },
  );
  return params.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
}

/**
 * Writes a synthetic `ldm-text2im-large-256`-shaped pipeline folder: `model_index.json`, scheduler config, a
 * tokenizer folder copied from `tokenizerDir`, and the requested model components at their real sizes (the others
 * are left out of `model_index.json`, so a converter sees a pipeline of just those).
 */
export async function writeSyntheticPipeline(
  dir: string,
  {
    components = ["unet", "vqvae", "bert"],
    tokenizerDir,
    ...options
  }: SyntheticOptions & { components?: readonly ("unet" | "vqvae" | "bert")[]; tokenizerDir?: string } = {},
): Promise<Record<string, number>> {
  const cfg = LDM_TEXT2IM_LARGE_256;
  await Deno.mkdir(join(dir, "scheduler"), { recursive: true });
  await Deno.writeTextFile(
    join(dir, "scheduler", "scheduler_config.json"),
    JSON.stringify(cfg.scheduler, null, 2) + "\n",
  );
  const index: Record<string, unknown> = { ...cfg.model_index };
  for (const c of ["unet", "vqvae", "bert"] as const) if (!components.includes(c)) delete index[c];
  if (tokenizerDir) {
    await Deno.mkdir(join(dir, "tokenizer"), { recursive: true });
    for await (const e of Deno.readDir(tokenizerDir)) {
      if (e.isFile) await Deno.copyFile(join(tokenizerDir, e.name), join(dir, "tokenizer", e.name));
    }
  } else delete index.tokenizer;
  await Deno.writeTextFile(join(dir, "model_index.json"), JSON.stringify(index, null, 2) + "\n");
  const counts: Record<string, number> = {};
  for (const c of components) {
    const className = (cfg.model_index[c] as readonly string[])[1]!;
    counts[c] = await writeSyntheticComponent(join(dir, c), className, cfg[c], options);
  }
  return counts;
}

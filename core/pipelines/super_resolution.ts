/**
 * `LDMSuperResolutionPipeline`: diffusers' `pipeline_latent_diffusion_superresolution.py` over ONNX graphs, plus
 * tiling for inputs too large to denoise at once.
 *
 * The loop, per diffusers (ldm-reference §1.2):
 * 1. An 8-bit image takes the PIL path: each side floored to a multiple of 32, Pillow-exact Lanczos resize when that
 *    changed the size, `x / 255 · 2 − 1`. A tensor is used as is.
 * 2. Latents `[B, in_channels / 2, h, w]` at the low-resolution size from the generator, times `initNoiseSigma`.
 * 3. For each timestep: `scaleModelInput(cat([latents, image], dim=1), t)` (the image channels are scaled too), UNet,
 *    `scheduler.step` (with the generator, as diffusers' global generator would continue).
 * 4. VQ decode (the graph quantises to the codebook first), `clamp(−1, 1)`, then `/ 2 + 0.5`, NHWC.
 *
 * Tiling (not in diffusers, which runs out of memory instead): when the input is larger than `tileSize`, step 3 runs
 * the UNet per overlapping tile and blends the noise predictions with a raised-cosine window before the single
 * scheduler step on the whole latent, and step 4 decodes overlapping tiles blended the same way (see `_tiling.ts`).
 *
 * @module
 */
import { f32, mulScalar, Tensor } from "../tensor/mod.ts";
import { createScheduler, createSchedulerByName, type Scheduler } from "../schedulers/mod.ts";
import { loadOnnxComponents, type Logger, type OnnxModel, silentLogger } from "../onnx/mod.ts";
import { assertRgbImage, type RgbImage } from "../image/mod.ts";
import { resizeLanczos } from "../image/mod.ts";
import {
  checkCallback,
  checkInteger,
  checkKnownKeys,
  checkNumber,
  checkSchedulerConfig,
  checkSchedulerName,
  checkSignal,
  firstNonFinite,
  resolveGenerator,
  throwIfAborted,
} from "./_checks.ts";
import { nchwToNhwc } from "./_layout.ts";
import { PreviewQueue } from "./_preview.ts";
import { blockFactor, configInteger, readPipelineConfigs } from "./_repository.ts";
import { planTiles, TiledRunner, type TilePlan } from "./_tiling.ts";
import { CallTimer, requireInputs, TimestepFeed } from "./_unet.ts";
import type {
  PipelineLoadOptions,
  RunTimings,
  SchedulerName,
  SuperResolutionOptions,
  SuperResolutionResult,
} from "./types.ts";

/** diffusers' PIL path floors each side to a multiple of this. */
const PIL_MULTIPLE = 32;
/** Largest low-resolution input, in pixels (the output has 16× as many for a 4× model). */
const MAX_INPUT_PIXELS = 1024 * 1024;
/** Largest tensor-path batch. */
const MAX_BATCH = 16;
/**
 * Memory allowed for one attention matrix (batch × heads × tokens² float32) when `tileSize` is `"auto"`. Attention
 * is what grows with the square of the tile area; convolution activations grow linearly and stay far below this.
 */
const ATTENTION_BUDGET_BYTES = 2 ** 30;
/** Bounds of the automatic tile edge (low-resolution pixels). */
const AUTO_TILE_MIN = 64, AUTO_TILE_MAX = 1024;

const OPTION_KEYS = [
  "image",
  "numInferenceSteps",
  "eta",
  "scheduler",
  "schedulerConfig",
  "seed",
  "generator",
  "signal",
  "onProgress",
  "previewEvery",
  "onPreview",
  "tileSize",
  "tileOverlap",
];

/** What an {@linkcode LDMSuperResolutionPipeline} is made of; `load()` builds it from a converted repository. */
export interface SuperResolutionComponents {
  /** UNet2DModel: `sample` `[B, 6, h, w]`, `timestep` → `out_sample` `[B, 3, h, w]`. */
  unet: OnnxModel;
  /** VQModel decoder with quantisation: `latent_sample` `[B, 3, h, w]` → `sample` `[B, 3, f·h, f·w]`. */
  vqvaeDecoder: OnnxModel;
  /** `scheduler/scheduler_config.json`. */
  schedulerConfig: Readonly<Record<string, unknown>>;
  /** `unet/config.json` (`in_channels`, `block_out_channels`). */
  unetConfig: Readonly<Record<string, unknown>>;
  /** `vqvae/config.json` (`block_out_channels`). */
  vqvaeConfig: Readonly<Record<string, unknown>>;
  /** Where to log. @default silent */
  logger?: Logger;
}

/** Facts about a loaded super-resolution pipeline. */
export interface SuperResolutionInfo {
  /** Execution provider per component. */
  executionProviders: { unet: string; vqvaeDecoder: string };
  /** Output side ÷ input side (the VQ decoder's factor, 4 for the CompVis checkpoint). */
  upscaleFactor: number;
  /** Image inputs are floored to multiples of this per side (diffusers' PIL path). */
  sizeMultiple: number;
  /** Tensor inputs and tiles must be multiples of this (the UNet's down-sampling). */
  tensorMultiple: number;
  /** The repository's scheduler class. */
  schedulerClass: string;
}

/**
 * The largest tile edge (a multiple of `align`, in [64, 1024]) whose biggest self-attention fits
 * {@linkcode ATTENTION_BUDGET_BYTES}: `batch · heads · (edge / divisor)⁴ · 4` bytes for attention at `1 / divisor` of
 * the tile's resolution.
 */
function attentionTile(divisor: number, heads: number, batch: number, align: number): number {
  const tokens = Math.sqrt(ATTENTION_BUDGET_BYTES / (4 * heads * batch));
  const edge = Math.floor((divisor * Math.sqrt(tokens)) / align) * align;
  return Math.min(AUTO_TILE_MAX, Math.max(AUTO_TILE_MIN, edge));
}

/**
 * Automatic tile edges from the configs. UNet2DModel: attention first appears in down block i (`Attn*`), at
 * `1 / 2^i` of the input, with `channels / attention_head_dim` heads (the mid block's attention, deeper down, is
 * smaller). VQModel decoder: one-head attention in its mid block at the latent (= low-resolution) size. For the
 * CompVis checkpoint this gives 480 px for the UNet and 128 px for the decoder; no attention means the maximum.
 */
export function autoTiles(
  unet: Readonly<Record<string, unknown>>,
  vqvae: Readonly<Record<string, unknown>>,
  batch: number,
  align: number,
): { unet: number; decoder: number } {
  const types = Array.isArray(unet["down_block_types"]) ? unet["down_block_types"] as unknown[] : [];
  const channels = Array.isArray(unet["block_out_channels"]) ? unet["block_out_channels"] as number[] : [];
  const first = types.findIndex((t) => typeof t === "string" && t.includes("Attn"));
  const hasMidAttention = unet["add_attention"] !== false;
  let unetTile = AUTO_TILE_MAX;
  if (first >= 0 || hasMidAttention) {
    const level = first >= 0 ? first : channels.length - 1;
    const ch = channels[level] ?? 1;
    const headDim = typeof unet["attention_head_dim"] === "number" ? unet["attention_head_dim"] as number : ch;
    unetTile = attentionTile(2 ** level, Math.max(1, Math.round(ch / headDim)), batch, align);
  }
  const decoderTile = vqvae["mid_block_add_attention"] === false ? AUTO_TILE_MAX : attentionTile(1, 1, batch, align);
  return { unet: unetTile, decoder: decoderTile };
}

/**
 * 4× super-resolution Latent Diffusion (`CompVis/ldm-super-resolution-4x-openimages` and models of the same layout)
 * on ONNX Runtime.
 *
 * @example
 * ```ts ignore
 * import { LDMSuperResolutionPipeline } from "@ldm/core/pipelines";
 * import { decodeImage, encodeImage, toRgbImages } from "@ldm/core/image";
 * await using sr = await LDMSuperResolutionPipeline.load("models/builtin/ldm-super-resolution-tiny");
 * const image = await decodeImage(await Deno.readFile("small.png"));
 * const { images } = await sr.upscale({ image, numInferenceSteps: 50, seed: 0 });
 * await Deno.writeFile("big.png", await encodeImage(toRgbImages(images)[0]!, "png"));
 * ```
 */
export class LDMSuperResolutionPipeline {
  readonly #c: SuperResolutionComponents;
  readonly #logger: Logger;
  readonly #align: number;
  readonly #factor: number;
  readonly #latentChannels: number;
  #disposed = false;
  /** Facts about this pipeline. */
  readonly info: SuperResolutionInfo;

  /**
   * Loads a converted `LDMSuperResolutionPipeline` repository and creates its two sessions.
   *
   * @throws {TypeError} when `dir` is not such a repository (the message names the missing or bad file).
   * @throws {Error} when no execution provider can run a component.
   */
  static async load(dir: string, options: PipelineLoadOptions = {}): Promise<LDMSuperResolutionPipeline> {
    const { schedulerConfig, unetConfig, vqvaeConfig } = await readPipelineConfigs(
      dir,
      "LDMSuperResolutionPipeline",
      options,
    );
    // textEmbeddingCache is for text to image (loadPipeline passes one set of options to either class).
    const { textEmbeddingCache: _unused, ...sessionOptions } = options;
    const sessions = await loadOnnxComponents(dir, {
      unet: "unet/model.onnx",
      vqvaeDecoder: "vqvae/decoder.onnx",
    }, sessionOptions);
    try {
      return new LDMSuperResolutionPipeline({
        unet: sessions.unet,
        vqvaeDecoder: sessions.vqvaeDecoder,
        schedulerConfig,
        unetConfig,
        vqvaeConfig,
        ...(options.logger ? { logger: options.logger } : {}),
      });
    } catch (e) {
      await sessions.dispose();
      throw e;
    }
  }

  /**
   * Builds the pipeline from loaded components (tests inject fakes here).
   * @throws {TypeError} when a config lacks a field the loop needs or a graph lacks an input.
   */
  constructor(components: SuperResolutionComponents) {
    this.#c = components;
    this.#logger = components.logger ?? silentLogger;
    this.#align = blockFactor(components.unetConfig, "unet/config.json");
    this.#factor = blockFactor(components.vqvaeConfig, "vqvae/config.json");
    // diffusers: latents_shape = (batch, in_channels // 2, h, w).
    this.#latentChannels = Math.floor(configInteger(components.unetConfig, "in_channels", "unet/config.json") / 2);
    requireInputs(components.unet, ["sample", "timestep"]);
    requireInputs(components.vqvaeDecoder, ["latent_sample"]);
    const scheduler = createScheduler({ ...components.schedulerConfig });
    this.info = {
      executionProviders: {
        unet: components.unet.executionProvider,
        vqvaeDecoder: components.vqvaeDecoder.executionProvider,
      },
      upscaleFactor: this.#factor,
      sizeMultiple: PIL_MULTIPLE,
      tensorMultiple: this.#align,
      schedulerClass: scheduler.className,
    };
  }

  /** diffusers' `preprocess`: floor to ×32, Lanczos, `[1, 3, h, w]` in [-1, 1]. */
  #preprocess(image: RgbImage): Tensor {
    assertRgbImage(image);
    const w = image.width - image.width % PIL_MULTIPLE;
    const h = image.height - image.height % PIL_MULTIPLE;
    if (w === 0 || h === 0) {
      throw new RangeError(
        `image must be at least ${PIL_MULTIPLE}×${PIL_MULTIPLE} pixels (each side is floored to a multiple of ` +
          `${PIL_MULTIPLE}, as diffusers does): got ${image.width}×${image.height}`,
      );
    }
    if (w * h > MAX_INPUT_PIXELS) {
      throw new RangeError(`image must have at most ${MAX_INPUT_PIXELS} pixels: got ${w}×${h} = ${w * h}`);
    }
    if (w !== image.width || h !== image.height) {
      this.#logger.debug(`super-resolution input ${image.width}×${image.height} resized to ${w}×${h} (Lanczos)`);
    }
    const rgb = w === image.width && h === image.height ? image : resizeLanczos(image, w, h);
    const plane = w * h;
    const out = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        // np.array(image).astype(np.float32) / 255.0, then 2.0 * image - 1.0, in float32.
        out[c * plane + p] = f32(2 * f32(rgb.data[p * 3 + c]! / 255) - 1);
      }
    }
    return new Tensor(out, [1, 3, h, w]);
  }

  #checkTensorImage(t: Tensor): Tensor {
    const [b, c, h, w] = t.shape;
    if (t.shape.length !== 4 || c !== 3) {
      throw new RangeError(`image tensor must be [B, 3, h, w]: got [${t.shape.join(", ")}]`);
    }
    checkInteger("image batch", b, 1, MAX_BATCH);
    for (const [name, v] of [["height", h!], ["width", w!]] as const) {
      if (v < this.#align || v % this.#align !== 0) {
        throw new RangeError(`image tensor ${name} must be a positive multiple of ${this.#align}: got ${v}`);
      }
    }
    if (h! * w! > MAX_INPUT_PIXELS) {
      throw new RangeError(`image must have at most ${MAX_INPUT_PIXELS} pixels: got ${w}×${h} = ${h! * w!}`);
    }
    const bad = firstNonFinite(t.data);
    if (bad >= 0) throw new RangeError(`image tensor must hold finite values: element ${bad} is ${t.data[bad]}`);
    return t;
  }

  /** UNet and decoder tile grids for a `batch × h × w` input (see `tileSize`). */
  #plans(batch: number, h: number, w: number, tileSize: unknown, tileOverlap: unknown): {
    unet: TilePlan;
    decoder: TilePlan;
  } {
    let unetTile: number, decoderTile: number;
    if (tileSize === undefined || tileSize === "auto") {
      const auto = autoTiles(this.#c.unetConfig, this.#c.vqvaeConfig, batch, this.#align);
      unetTile = auto.unet;
      decoderTile = auto.decoder;
    } else if (tileSize === 0) {
      unetTile = decoderTile = Math.max(h, w);
    } else {
      const min = Math.max(16, 2 * this.#align);
      if (typeof tileSize !== "number") {
        throw new TypeError(
          `tileSize must be "auto", 0 or an integer in [${min}, 65536]: got ${JSON.stringify(tileSize)}`,
        );
      }
      checkInteger("tileSize", tileSize, min, 65536);
      unetTile = decoderTile = Math.floor(tileSize / this.#align) * this.#align;
    }
    const plan = (tile: number) => {
      if (tile >= h && tile >= w) return planTiles(h, w, Math.max(h, w), 0, this.#align);
      const overlap = checkInteger("tileOverlap", tileOverlap, 0, tile - this.#align, Math.floor(tile / 4));
      return planTiles(h, w, tile, overlap, this.#align);
    };
    if (tileOverlap !== undefined) checkInteger("tileOverlap", tileOverlap, 0, 65536);
    return { unet: plan(unetTile), decoder: plan(decoderTile) };
  }

  #makeScheduler(name: SchedulerName | undefined, overrides: Readonly<Record<string, unknown>>): Scheduler {
    const base = this.#c.schedulerConfig;
    return name === undefined
      ? createScheduler({ ...base, ...overrides })
      : createSchedulerByName(name, base, overrides);
  }

  /** VQ-decodes latents (tiled like the UNet) into `[B, H, W, 3]` in [0, 1]. */
  async #decode(latents: Tensor, tiles: TiledRunner, timer: CallTimer): Promise<Tensor> {
    const x = await tiles.run(latents, (tile) => timer.run(this.#c.vqvaeDecoder, { latent_sample: tile }, "sample"));
    // image = clamp(image, -1, 1); image = image / 2 + 0.5 (clamp first, unlike text2im).
    const d = x.data;
    for (let j = 0; j < d.length; j++) d[j] = f32(f32(Math.min(Math.max(d[j]!, -1), 1) / 2) + 0.5);
    return nchwToNhwc(x);
  }

  /**
   * Upscales an image (4× for the CompVis checkpoint) as diffusers' `LDMSuperResolutionPipeline.__call__` with
   * `output_type="np"`, tiling large inputs.
   *
   * @returns `images` `[B, f·h, f·w, 3]` in [0, 1], the seed, scheduler, tile count and timings.
   * @throws {TypeError} / {RangeError} for bad options (before any model runs).
   * @throws `signal.reason` when aborted.
   */
  async upscale(options: SuperResolutionOptions): Promise<SuperResolutionResult> {
    if (this.#disposed) throw new Error("LDMSuperResolutionPipeline used after dispose()");
    if (typeof options !== "object" || options === null) throw new TypeError("upscale() needs an options object");
    checkKnownKeys(options, OPTION_KEYS, "upscale");
    const steps = checkInteger("numInferenceSteps", options.numInferenceSteps, 1, 1000, 100);
    const eta = checkNumber("eta", options.eta, 0, 1, 0);
    const signal = checkSignal("signal", options.signal);
    const onProgress = checkCallback("onProgress", options.onProgress);
    const previewEvery = checkInteger("previewEvery", options.previewEvery, 0, 10000, 0);
    const onPreview = checkCallback("onPreview", options.onPreview);
    if (previewEvery > 0 && onPreview === undefined) {
      throw new TypeError(`previewEvery is ${previewEvery} but no onPreview callback was given`);
    }
    const schedulerName = checkSchedulerName(options.scheduler);
    const schedulerConfig = checkSchedulerConfig(options.schedulerConfig);
    if (options.image === undefined) throw new TypeError("image is required: an RgbImage or a [B, 3, h, w] Tensor");
    const image = options.image instanceof Tensor
      ? this.#checkTensorImage(options.image)
      : this.#preprocess(options.image);
    const [batch, , h, w] = image.shape as [number, number, number, number];
    const plans = this.#plans(batch, h, w, options.tileSize, options.tileOverlap);
    const { generator, seed } = resolveGenerator(options);
    const scheduler = this.#makeScheduler(schedulerName, schedulerConfig);

    const t0 = performance.now();
    const unetTimer = new CallTimer(), decodeTimer = new CallTimer(), previewTimer = new CallTimer();
    let latents = generator.randn([batch, this.#latentChannels, h, w]);
    scheduler.setTimesteps(steps);
    latents = mulScalar(latents, scheduler.initNoiseSigma);
    const timesteps = Array.from(scheduler.timesteps);
    if (plans.unet.count > 1 || plans.decoder.count > 1) {
      this.#logger.debug(
        `super-resolution ${w}×${h}: UNet ${plans.unet.count} tile(s) of ${plans.unet.cols.size}×${plans.unet.rows.size}` +
          ` per step, decoder ${plans.decoder.count} tile(s) of ${plans.decoder.cols.size}×${plans.decoder.rows.size}`,
      );
    }
    // Built once per run, not per step: `cat([latents, image], dim=1)` with the image channels written now and the
    // latent channels rewritten every step, the timestep feed, and the tile runners (blending windows, buffers).
    const lc = this.#latentChannels, ic = image.shape[1]!, plane = h * w;
    const input = Tensor.zeros([batch, lc + ic, h, w]);
    for (let b = 0; b < batch; b++) {
      input.data.set(image.data.subarray(b * ic * plane, (b + 1) * ic * plane), (b * (lc + ic) + lc) * plane);
    }
    const timestep = new TimestepFeed(this.#c.unet, batch);
    const unetTiles = new TiledRunner(plans.unet, 1), decoderTiles = new TiledRunner(plans.decoder, this.#factor);
    const previews = new PreviewQueue(onPreview);
    let x0: Tensor | undefined;
    for (let i = 0; i < timesteps.length; i++) {
      throwIfAborted(signal);
      previews.throwIfFailed();
      const t = timesteps[i]!;
      for (let b = 0; b < batch; b++) {
        input.data.set(latents.data.subarray(b * lc * plane, (b + 1) * lc * plane), b * (lc + ic) * plane);
      }
      const scaled = scheduler.scaleModelInput(input, t);
      const feed = timestep.at(t);
      const noise = await unetTiles.run(
        scaled,
        (tile) => unetTimer.run(this.#c.unet, { sample: tile, timestep: feed }, "out_sample"),
      );
      const res = scheduler.step(noise, t, latents, { eta, generator });
      latents = res.prevSample;
      x0 = res.predOriginalSample;
      onProgress?.({ step: i + 1, totalSteps: timesteps.length, timestep: t, elapsedMs: performance.now() - t0 });
      if (previewEvery > 0 && (i + 1) % previewEvery === 0 && i + 1 < timesteps.length) {
        if (previews.busy) {
          this.#logger.debug(`preview at step ${i + 1} skipped: the previous onPreview has not settled`);
        } else {
          const images = await this.#decode(x0 ?? latents, decoderTiles, previewTimer);
          previews.deliver({
            step: i + 1,
            totalSteps: timesteps.length,
            images,
            itemOfImage: Array<number>(batch).fill(0),
          });
        }
      }
    }
    await previews.settle();
    throwIfAborted(signal);
    const images = await this.#decode(latents, decoderTiles, decodeTimer);
    const timings: RunTimings = {
      totalMs: performance.now() - t0,
      textEncoderMs: 0,
      unetMs: unetTimer.ms,
      unetCalls: unetTimer.calls,
      decodeMs: decodeTimer.ms,
      previewMs: previewTimer.ms,
      steps: timesteps.length,
      textCacheHits: 0,
    };
    this.#logger.debug(
      `super-resolution: ${timesteps.length} steps of ${scheduler.className}, ${plans.unet.count} tile(s), ${
        Math.round(timings.totalMs)
      } ms`,
    );
    return {
      images,
      seed,
      scheduler: scheduler.className,
      timings,
      tiles: plans.unet.count,
      decoderTiles: plans.decoder.count,
    };
  }

  /** Releases the ONNX sessions. The pipeline cannot be used afterwards. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#c.unet.dispose();
    await this.#c.vqvaeDecoder.dispose();
  }

  /** `await using sr = await LDMSuperResolutionPipeline.load(dir)` releases the sessions at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

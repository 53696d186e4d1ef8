/**
 * `LDMTextToImagePipeline`: diffusers' `pipelines/latent_diffusion/pipeline_latent_diffusion.py` over ONNX graphs.
 *
 * The loop, per diffusers (ldm-reference §1.1), with the deliberate differences marked ★:
 * 1. Tokenise every prompt to 77 ids (`[CLS] … [SEP] [PAD]…`) and run LDMBert without attention mask; with
 *    classifier-free guidance also encode the unconditional texts (★ the negative prompts, `""` by default).
 *    ★ A per-pipeline cache keeps `""`'s embedding and those of recent prompts (`_text_cache.ts`), so a guided run
 *    encodes only its prompts and a repeated run skips the encoder; results are bit for bit those of encoding.
 * 2. Draw latents `[B, C, h/f, w/f]` from the generator (or take the caller's), ★ times `initNoiseSigma`.
 * 3. For each timestep t: ★ `scaleModelInput`; UNet on `[uncond; cond]` as one batch (or on cond alone when the
 *    guidance weight is ≤ 1); `uncond + w·(cond − uncond)`; `scheduler.step` (★ with the generator, so DDIM η > 0
 *    and Euler-ancestral noise continue the seeded stream as diffusers' global generator would).
 *    The UNet's inputs (`[uncond; cond]` latents buffer, text states, timestep) are built once per run (again only
 *    when a batch item leaves) and rewritten in place per step; guidance is computed in place in the UNet's output.
 * 4. `latents / scaling_factor` → VAE decoder → `(x / 2 + 0.5).clamp(0, 1)` → NHWC.
 * ★ Image size is checked against the real VAE scale factor (diffusers hard-codes 8).
 *
 * For DDIM, PNDM and DPM-Solver the ★ scalings are identities, so results equal diffusers'; for LMS, Euler and
 * Euler-ancestral they make the pipeline correct where diffusers' is not.
 *
 * @module
 */
import { join } from "node:path";
import { f32, mulScalar, Tensor } from "../tensor/mod.ts";
import type { Generator } from "../random/mod.ts";
import { createScheduler, createSchedulerByName, type Scheduler } from "../schedulers/mod.ts";
import { BertTokenizer } from "../tokenizer/mod.ts";
import { type Int64Feed, loadOnnxComponents, type Logger, type OnnxModel, silentLogger } from "../onnx/mod.ts";
import {
  checkCallback,
  checkInteger,
  checkKnownKeys,
  checkNumber,
  checkSchedulerConfig,
  checkSchedulerName,
  checkSeed,
  checkSignal,
  checkString,
  checkTensor,
  resolveGenerator,
  throwIfAborted,
} from "./_checks.ts";
import { concatBatch, nchwToNhwc, sliceBatch } from "./_layout.ts";
import { blockFactor, configInteger, configNumber, readPipelineConfigs } from "./_repository.ts";
import { TextEmbeddingCache, type TextEmbeddingCacheOptions, type TextEmbeddingCacheStats } from "./_text_cache.ts";
import { PreviewQueue } from "./_preview.ts";
import { CallTimer, requireInputs, TimestepFeed } from "./_unet.ts";
import type {
  BatchItemResult,
  BatchResult,
  ImageResult,
  PipelineLoadOptions,
  PreviewImages,
  RunTimings,
  SchedulerName,
  StepProgress,
  TextToImageBatchItem,
  TextToImageBatchOptions,
  TextToImageOptions,
} from "./types.ts";

/** Tokens per prompt: diffusers' pipeline pads/truncates to 77 whatever the tokenizer's own maximum. */
const MAX_LENGTH = 77;
/** Largest image side accepted (memory grows with the square of the latent area in self-attention). */
const MAX_SIDE = 1024;
/** Largest total batch (images per call). */
const MAX_BATCH = 64;
/** Images decoded per VAE call. */
const DECODE_CHUNK = 8;

/** Turns prompts into `[batch, 77]` int64 ids; {@linkcode BertTokenizer} is one. */
export interface PromptTokenizer {
  /** Ids of each text, padded/truncated to `maxLength`, as one `[batch, maxLength]` int64 array. */
  encodeBatch(texts: readonly string[], options: { maxLength: number }): Int64Feed;
}

/** What an {@linkcode LDMTextToImagePipeline} is made of; `load()` builds it from a converted repository. */
export interface TextToImageComponents {
  /** LDMBert: `input_ids` int64 `[B, 77]` → `last_hidden_state` `[B, 77, D]`. */
  bert: OnnxModel;
  /** UNet2DConditionModel: `sample`, `timestep`, `encoder_hidden_states` → `out_sample`. */
  unet: OnnxModel;
  /** AutoencoderKL decoder: `latent_sample` → `sample`. */
  vaeDecoder: OnnxModel;
  /** The prompt tokenizer. */
  tokenizer: PromptTokenizer;
  /** `scheduler/scheduler_config.json`. */
  schedulerConfig: Readonly<Record<string, unknown>>;
  /** `unet/config.json` (`in_channels`, `sample_size`, `block_out_channels`). */
  unetConfig: Readonly<Record<string, unknown>>;
  /** `vqvae/config.json` (`block_out_channels`, `scaling_factor`). */
  vaeConfig: Readonly<Record<string, unknown>>;
  /**
   * Bounds of the prompt-embedding cache; `false` caches nothing, not even the unconditional `""`.
   * @default { maxEntries: 32, maxBytes: 16 MiB }
   */
  textEmbeddingCache?: TextEmbeddingCacheOptions | false;
  /** Where to log. @default silent */
  logger?: Logger;
}

/** Facts about a loaded text-to-image pipeline (for `GET /models`-style descriptions). */
export interface TextToImageInfo {
  /** Execution provider per component. */
  executionProviders: { bert: string; unet: string; vaeDecoder: string };
  /** Default image width (`unet.sample_size × VAE scale factor`). */
  defaultWidth: number;
  /** Default image height (`unet.sample_size × VAE scale factor`). */
  defaultHeight: number;
  /** Width and height must be multiples of this (the VAE scale factor). */
  sizeMultiple: number;
  /** Pixels per latent cell. */
  vaeScaleFactor: number;
  /** Latent channels. */
  latentChannels: number;
  /** The repository's scheduler class, e.g. `"DDIMScheduler"`. */
  schedulerClass: string;
}

interface Group {
  /** Item index (batch) or 0. */
  item: number;
  prompts: string[];
  negatives: string[];
  generator: Generator;
  seed: number | undefined;
  scheduler: Scheduler;
  latents: Tensor;
  x0: Tensor | undefined;
  signal: AbortSignal | undefined;
  cond?: Tensor;
  uncond?: Tensor;
}

/**
 * What the UNet is fed for one set of active groups: built when a run starts and again only when a batch item leaves,
 * never per step.
 */
interface StepInputs {
  /** Active groups these inputs are for. */
  count: number;
  /** Latent rows (images) of the active groups. */
  rows: number;
  /**
   * `sample`: `[uncond; cond]` latents (or the groups' latents without guidance), rewritten in place every step; the
   * cond half starts at row `rows`. `undefined` for one group without guidance, whose scaled latents are fed as is.
   */
  sample: Tensor | undefined;
  /** `encoder_hidden_states` in the same row order. */
  context: Tensor;
  /** `timestep`, refilled every step. */
  timestep: TimestepFeed;
}

interface Shared {
  steps: number;
  guidance: number;
  eta: number;
  height: number;
  width: number;
  signal: AbortSignal | undefined;
  onProgress: ((p: StepProgress) => void) | undefined;
  previewEvery: number;
  onPreview: ((p: PreviewImages) => void | Promise<void>) | undefined;
}

const SHARED_KEYS = [
  "numInferenceSteps",
  "eta",
  "scheduler",
  "schedulerConfig",
  "signal",
  "onProgress",
  "previewEvery",
  "onPreview",
  "guidanceScale",
  "height",
  "width",
] as const;
const GENERATE_KEYS = [
  ...SHARED_KEYS,
  "prompt",
  "negativePrompt",
  "seed",
  "generator",
  "numImagesPerPrompt",
  "latents",
];
const BATCH_KEYS = [...SHARED_KEYS, "items"];
const ITEM_KEYS = ["prompt", "negativePrompt", "seed", "numImages", "latents", "signal"];

function emptyTimings(): RunTimings {
  return {
    totalMs: 0,
    textEncoderMs: 0,
    unetMs: 0,
    unetCalls: 0,
    decodeMs: 0,
    previewMs: 0,
    steps: 0,
    textCacheHits: 0,
  };
}

/**
 * Text-to-image Latent Diffusion (`CompVis/ldm-text2im-large-256` and models of the same layout) on ONNX Runtime.
 *
 * @example
 * ```ts ignore
 * import { LDMTextToImagePipeline } from "@ldm/core/pipelines";
 * import { encodeImage, toRgbImages } from "@ldm/core/image";
 * await using pipe = await LDMTextToImagePipeline.load("models/builtin/ldm-text2im-tiny");
 * const { images } = await pipe.generate({ prompt: "a big red circle on a blue background", guidanceScale: 5, seed: 1 });
 * await Deno.writeFile("out.png", await encodeImage(toRgbImages(images)[0]!, "png"));
 * ```
 */
export class LDMTextToImagePipeline {
  readonly #c: TextToImageComponents;
  readonly #logger: Logger;
  readonly #vaeScale: number;
  readonly #sizeMultiple: number;
  readonly #latentChannels: number;
  readonly #scalingFactor: number;
  readonly #defaultSize: number;
  readonly #textCache: TextEmbeddingCache | undefined;
  #disposed = false;
  /** Facts about this pipeline. */
  readonly info: TextToImageInfo;

  /**
   * Loads a converted `LDMTextToImagePipeline` repository and creates its three sessions.
   *
   * @throws {TypeError} when `dir` is not such a repository (the message names the missing or bad file).
   * @throws {Error} when no execution provider can run a component.
   */
  static async load(dir: string, options: PipelineLoadOptions = {}): Promise<LDMTextToImagePipeline> {
    const { schedulerConfig, unetConfig, vqvaeConfig: vaeConfig } = await readPipelineConfigs(
      dir,
      "LDMTextToImagePipeline",
      options,
    );
    let tokenizer: BertTokenizer;
    try {
      tokenizer = await BertTokenizer.fromDirectory(join(dir, "tokenizer"));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new TypeError(`${join(dir, "tokenizer")} has neither tokenizer.json nor vocab.txt`);
      }
      throw e;
    }
    const { textEmbeddingCache, ...sessionOptions } = options;
    const sessions = await loadOnnxComponents(dir, {
      bert: "bert/model.onnx",
      unet: "unet/model.onnx",
      vaeDecoder: "vqvae/decoder.onnx",
    }, sessionOptions);
    try {
      return new LDMTextToImagePipeline({
        bert: sessions.bert,
        unet: sessions.unet,
        vaeDecoder: sessions.vaeDecoder,
        tokenizer,
        schedulerConfig,
        unetConfig,
        vaeConfig,
        ...(textEmbeddingCache === undefined ? {} : { textEmbeddingCache }),
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
  constructor(components: TextToImageComponents) {
    this.#c = components;
    this.#logger = components.logger ?? silentLogger;
    const { unetConfig, vaeConfig, schedulerConfig } = components;
    this.#vaeScale = blockFactor(vaeConfig, "vqvae/config.json");
    // The UNet graphs take any latent size (diffusers forwards `upsample_size` for odd sizes), so only the VAE
    // factor constrains the image size (diffusers hard-codes 8 here).
    this.#sizeMultiple = this.#vaeScale;
    this.#latentChannels = configInteger(unetConfig, "in_channels", "unet/config.json");
    this.#scalingFactor = configNumber(vaeConfig, "scaling_factor", "vqvae/config.json", 0.18215);
    this.#defaultSize = configInteger(unetConfig, "sample_size", "unet/config.json") * this.#vaeScale;
    const cacheOptions = components.textEmbeddingCache;
    if (
      cacheOptions !== undefined && cacheOptions !== false &&
      (typeof cacheOptions !== "object" || cacheOptions === null)
    ) {
      throw new TypeError(
        `textEmbeddingCache must be false or { maxEntries?, maxBytes? }: got ${JSON.stringify(cacheOptions)}`,
      );
    }
    if (cacheOptions) checkKnownKeys(cacheOptions, ["maxEntries", "maxBytes"], "textEmbeddingCache");
    // "" is pinned: every guided run without a negative prompt needs its embedding.
    this.#textCache = cacheOptions === false ? undefined : new TextEmbeddingCache(cacheOptions ?? {}, [""]);
    requireInputs(components.bert, ["input_ids"]);
    requireInputs(components.unet, ["sample", "timestep", "encoder_hidden_states"]);
    requireInputs(components.vaeDecoder, ["latent_sample"]);
    // Fail at load time, not on the first request, when the scheduler config is unusable.
    const scheduler = createScheduler({ ...schedulerConfig });
    this.info = {
      executionProviders: {
        bert: components.bert.executionProvider,
        unet: components.unet.executionProvider,
        vaeDecoder: components.vaeDecoder.executionProvider,
      },
      defaultWidth: this.#defaultSize,
      defaultHeight: this.#defaultSize,
      sizeMultiple: this.#sizeMultiple,
      vaeScaleFactor: this.#vaeScale,
      latentChannels: this.#latentChannels,
      schedulerClass: scheduler.className,
    };
  }

  /**
   * Sizes and hit/miss counters of the text-embedding cache (`undefined` when built with
   * `textEmbeddingCache: false`).
   */
  get textEmbeddingCacheStats(): TextEmbeddingCacheStats | undefined {
    return this.#textCache?.stats();
  }

  /** A fresh scheduler for one run: the repository's, or `name` built from its config (diffusers' `from_config`). */
  #makeScheduler(name: SchedulerName | undefined, overrides: Readonly<Record<string, unknown>>): Scheduler {
    const base = this.#c.schedulerConfig;
    return name === undefined
      ? createScheduler({ ...base, ...overrides })
      : createSchedulerByName(name, base, overrides);
  }

  #checkShared(options: TextToImageBatchOptions | TextToImageOptions, latents: Tensor | undefined): Shared & {
    scheduler: SchedulerName | undefined;
    schedulerConfig: Readonly<Record<string, unknown>>;
  } {
    const steps = checkInteger("numInferenceSteps", options.numInferenceSteps, 1, 1000, 50);
    const guidance = checkNumber("guidanceScale", options.guidanceScale, 0, 100, 1);
    const eta = checkNumber("eta", options.eta, 0, 1, 0);
    const m = this.#sizeMultiple;
    const fromLatents = (i: number) =>
      latents instanceof Tensor && latents.shape.length === 4 ? latents.shape[i]! * this.#vaeScale : this.#defaultSize;
    const height = options.height === undefined ? fromLatents(2) : options.height;
    const width = options.width === undefined ? fromLatents(3) : options.width;
    for (const [name, v] of [["height", height], ["width", width]] as const) {
      checkInteger(name, v, m, MAX_SIDE);
      if (v % m !== 0) {
        throw new RangeError(`${name} must be a multiple of ${m} (the VAE scale factor): got ${v}`);
      }
    }
    const previewEvery = checkInteger("previewEvery", options.previewEvery, 0, 10000, 0);
    const onPreview = checkCallback("onPreview", options.onPreview);
    if (previewEvery > 0 && onPreview === undefined) {
      throw new TypeError(`previewEvery is ${previewEvery} but no onPreview callback was given`);
    }
    return {
      steps,
      guidance,
      eta,
      height,
      width,
      signal: checkSignal("signal", options.signal),
      onProgress: checkCallback("onProgress", options.onProgress),
      previewEvery,
      onPreview,
      scheduler: checkSchedulerName(options.scheduler),
      schedulerConfig: checkSchedulerConfig(options.schedulerConfig),
    };
  }

  /**
   * Generates images for one prompt or a list of prompts (one batch), as diffusers' `LDMTextToImagePipeline.__call__`
   * with `output_type="np"`.
   *
   * @returns `images` `[prompts × numImagesPerPrompt, H, W, 3]` in [0, 1], the seed, the scheduler and timings.
   * @throws {TypeError} / {RangeError} for bad options (before any model runs).
   * @throws `signal.reason` when aborted.
   */
  async generate(options: TextToImageOptions): Promise<ImageResult> {
    this.#checkOpen();
    if (typeof options !== "object" || options === null) throw new TypeError("generate() needs an options object");
    checkKnownKeys(options, GENERATE_KEYS, "generate");
    const prompts = typeof options.prompt === "string" ? [options.prompt] : options.prompt;
    if (!Array.isArray(prompts) || prompts.length === 0) {
      throw new TypeError(
        `prompt must be a string or a non-empty array of strings: got ${
          Array.isArray(prompts) ? "an empty array" : typeof options.prompt
        }`,
      );
    }
    prompts.forEach((p, i) => checkString(`prompt[${i}]`, p));
    const neg = options.negativePrompt;
    let negatives: string[];
    if (neg === undefined || typeof neg === "string") {
      negatives = prompts.map(() => neg ?? "");
    } else if (Array.isArray(neg)) {
      if (neg.length !== prompts.length) {
        throw new RangeError(
          `negativePrompt must be a string or have one entry per prompt (${prompts.length}): got ${neg.length}`,
        );
      }
      negatives = neg.map((n, i) => checkString(`negativePrompt[${i}]`, n));
    } else {
      throw new TypeError(`negativePrompt must be a string or an array of strings: got ${typeof neg}`);
    }
    const perPrompt = checkInteger("numImagesPerPrompt", options.numImagesPerPrompt, 1, MAX_BATCH, 1);
    const batch = prompts.length * perPrompt;
    if (batch > MAX_BATCH) {
      throw new RangeError(`prompts × numImagesPerPrompt must be at most ${MAX_BATCH}: got ${batch}`);
    }
    const shared = this.#checkShared(options, options.latents);
    const latentShape = [batch, this.#latentChannels, shared.height / this.#vaeScale, shared.width / this.#vaeScale];
    const latents = options.latents === undefined ? undefined : checkTensor("latents", options.latents, latentShape);
    const { generator, seed } = resolveGenerator(options);
    const group: Group = {
      item: 0,
      prompts: prompts.flatMap((p) => Array<string>(perPrompt).fill(p)),
      negatives: negatives.flatMap((p) => Array<string>(perPrompt).fill(p)),
      generator,
      seed,
      scheduler: this.#makeScheduler(shared.scheduler, shared.schedulerConfig),
      latents: latents ?? generator.randn(latentShape),
      x0: undefined,
      signal: undefined,
    };
    const { results, timings, scheduler } = await this.#run([group], shared);
    const r = results[0]!;
    if (r.status !== "done") throw r.reason; // unreachable: only batch items have their own signals
    return { images: r.images, seed, scheduler, timings };
  }

  /**
   * Runs several requests that share size, steps, scheduler, guidance and η in one UNet batch per step. Each item has
   * its own prompt, negative prompt, seed (its own generator and scheduler) and optional abort signal; its images are
   * those a `generate` call with the same values would give.
   *
   * @throws {TypeError} / {RangeError} for bad options (naming `items[i].field`).
   * @throws `signal.reason` when the batch-wide signal aborts (item signals only drop their item).
   */
  async generateBatch(options: TextToImageBatchOptions): Promise<BatchResult> {
    this.#checkOpen();
    if (typeof options !== "object" || options === null) {
      throw new TypeError("generateBatch() needs an options object");
    }
    checkKnownKeys(options, BATCH_KEYS, "generateBatch");
    const items = options.items;
    if (!Array.isArray(items) || items.length === 0) {
      throw new TypeError("items must be a non-empty array of { prompt, negativePrompt?, seed?, numImages? }");
    }
    const firstLatents = (items as TextToImageBatchItem[]).find((i) => i?.latents !== undefined)?.latents;
    const shared = this.#checkShared(options, firstLatents);
    const h = shared.height / this.#vaeScale, w = shared.width / this.#vaeScale;
    let total = 0;
    const groups = (items as TextToImageBatchItem[]).map((item, i): Group => {
      const at = `items[${i}]`;
      if (typeof item !== "object" || item === null) throw new TypeError(`${at} must be an object: got ${item}`);
      checkKnownKeys(item, ITEM_KEYS, at);
      const prompt = checkString(`${at}.prompt`, item.prompt);
      const negative = item.negativePrompt === undefined
        ? ""
        : checkString(`${at}.negativePrompt`, item.negativePrompt);
      const n = checkInteger(`${at}.numImages`, item.numImages, 1, MAX_BATCH, 1);
      total += n;
      const shape = [n, this.#latentChannels, h, w];
      const latents = item.latents === undefined ? undefined : checkTensor(`${at}.latents`, item.latents, shape);
      const seedGiven = checkSeed(`${at}.seed`, item.seed);
      const { generator, seed } = resolveGenerator({ ...(seedGiven === undefined ? {} : { seed: seedGiven }) });
      return {
        item: i,
        prompts: Array<string>(n).fill(prompt),
        negatives: Array<string>(n).fill(negative),
        generator,
        seed,
        scheduler: this.#makeScheduler(shared.scheduler, shared.schedulerConfig),
        latents: latents ?? generator.randn(shape),
        x0: undefined,
        signal: checkSignal(`${at}.signal`, item.signal),
      };
    });
    if (total > MAX_BATCH) throw new RangeError(`the items' images must total at most ${MAX_BATCH}: got ${total}`);
    const { results, timings, scheduler } = await this.#run(groups, shared);
    return { items: results, scheduler, timings };
  }

  /**
   * Gives each group its `[n, 77, D]` cond (and uncond) embeddings, each distinct text of the run once, from the
   * cache or from one encoder call (in chunks of 16) as {@linkcode TextEmbeddingCache.lookup} splits them; returns
   * how many texts the cache answered. A partial hit is encoded again instead of split off: it would only save rows
   * of a call made anyway, while what matters is kept: the `""` row of every guided run, and the whole encoder call
   * for a repeated run.
   */
  async #encodeText(groups: Group[], cfg: boolean, timer: CallTimer): Promise<number> {
    const texts = [...new Set(groups.flatMap((g) => cfg ? [...g.prompts, ...g.negatives] : g.prompts))];
    const { cached, encode } = this.#textCache?.lookup(texts) ?? { cached: new Map<string, Tensor>(), encode: texts };
    const rows = new Map(cached);
    for (let i = 0; i < encode.length; i += 16) {
      const chunk = encode.slice(i, i + 16);
      const ids = this.#c.tokenizer.encodeBatch(chunk, { maxLength: MAX_LENGTH });
      const out = await timer.run(this.#c.bert, { input_ids: ids }, "last_hidden_state");
      chunk.forEach((t, j) => {
        // A copy, so that a cache entry holds its own row, not the whole chunk's buffer.
        const row = new Tensor(sliceBatch(out, j, j + 1).data.slice(), [1, ...out.shape.slice(1)]);
        rows.set(t, row);
        this.#textCache?.set(t, row);
      });
    }
    const gather = (list: string[]) => concatBatch(list.map((t) => rows.get(t)!));
    for (const g of groups) {
      g.cond = gather(g.prompts);
      if (cfg) g.uncond = gather(g.negatives);
    }
    return cached.size;
  }

  /** VAE-decodes latents (already in the scheduler's space) into `[N, H, W, 3]` images in [0, 1]. */
  async #decode(latents: Tensor, timer: CallTimer): Promise<Tensor> {
    const parts: Tensor[] = [];
    const n = latents.shape[0]!;
    for (let i = 0; i < n; i += DECODE_CHUNK) {
      // diffusers: `latents = 1 / scaling_factor * latents` (python float → float32 scalar multiply).
      const z = mulScalar(sliceBatch(latents, i, Math.min(n, i + DECODE_CHUNK)), 1 / this.#scalingFactor);
      const x = await timer.run(this.#c.vaeDecoder, { latent_sample: z }, "sample");
      // `(image / 2 + 0.5).clamp(0, 1)`, each op rounded to float32.
      const d = x.data;
      for (let j = 0; j < d.length; j++) d[j] = Math.min(Math.max(f32(f32(d[j]! / 2) + 0.5), 0), 1);
      parts.push(x);
    }
    return nchwToNhwc(concatBatch(parts));
  }

  /**
   * The UNet inputs for `active`: the `sample` buffer, `encoder_hidden_states` (`[uncond…; cond…]` with guidance)
   * and the `timestep` feed. Called when a run starts and when an item leaves the batch, not per step.
   */
  #stepInputs(active: readonly Group[], cfg: boolean, h: number, w: number): StepInputs {
    const rows = active.reduce((n, g) => n + g.latents.shape[0]!, 0);
    const batch = cfg ? 2 * rows : rows;
    const context = concatBatch(
      cfg ? [...active.map((g) => g.uncond!), ...active.map((g) => g.cond!)] : active.map((g) => g.cond!),
    );
    return {
      count: active.length,
      rows,
      sample: cfg || active.length > 1 ? Tensor.zeros([batch, this.#latentChannels, h, w]) : undefined,
      context,
      timestep: new TimestepFeed(this.#c.unet, batch),
    };
  }

  async #run(
    groups: Group[],
    shared: Shared,
  ): Promise<{ results: BatchItemResult[]; timings: RunTimings; scheduler: string }> {
    const t0 = performance.now();
    const timings = emptyTimings();
    const textTimer = new CallTimer(), unetTimer = new CallTimer(), decodeTimer = new CallTimer();
    const previewTimer = new CallTimer();
    const results: (BatchItemResult | undefined)[] = groups.map(() => undefined);
    const cfg = shared.guidance > 1;
    if (!cfg && groups.some((g) => g.negatives.some((n) => n !== ""))) {
      this.#logger.warn(`negativePrompt ignored: guidanceScale is ${shared.guidance} (≤ 1 runs no unconditional pass)`);
    }
    for (const g of groups) {
      g.scheduler.setTimesteps(shared.steps);
      // ★ diffusers' text2im pipeline omits this; it is 1 for DDIM/PNDM/DPM (see module doc).
      g.latents = mulScalar(g.latents, g.scheduler.initNoiseSigma);
    }
    const scheduler = groups[0]!.scheduler;
    const timesteps = Array.from(scheduler.timesteps);
    const dropAborted = () => {
      for (const g of groups) {
        if (results[g.item] === undefined && g.signal?.aborted) {
          results[g.item] = { status: "aborted", reason: g.signal.reason };
          this.#logger.debug(`batch item ${g.item} aborted; continuing with the others`);
        }
      }
      return groups.filter((g) => results[g.item] === undefined);
    };
    const h = shared.height / this.#vaeScale, w = shared.width / this.#vaeScale;
    const previews = new PreviewQueue(shared.onPreview);

    throwIfAborted(shared.signal);
    let active = dropAborted();
    if (active.length > 0) timings.textCacheHits = await this.#encodeText(active, cfg, textTimer);
    const g32 = f32(shared.guidance);
    // Items only ever leave a batch, so a change of the active set shows as a change of its size.
    let inputs: StepInputs | undefined;
    for (let i = 0; i < timesteps.length && active.length > 0; i++) {
      throwIfAborted(shared.signal);
      previews.throwIfFailed();
      active = dropAborted();
      if (active.length === 0) break;
      if (inputs?.count !== active.length) inputs = this.#stepInputs(active, cfg, h, w);
      const t = timesteps[i]!;
      // ★ scaleModelInput per group (its scheduler tracks its own step index), written into the [uncond; cond]
      // batch in place (both halves get the same latents).
      let sample: Tensor;
      if (inputs.sample === undefined) {
        sample = active[0]!.scheduler.scaleModelInput(active[0]!.latents, t);
      } else {
        sample = inputs.sample;
        const half = inputs.rows * (sample.size / sample.shape[0]!);
        let at = 0;
        for (const g of active) {
          const x = g.scheduler.scaleModelInput(g.latents, t).data;
          sample.data.set(x, at);
          if (cfg) sample.data.set(x, at + half);
          at += x.length;
        }
      }
      const out = await unetTimer.run(this.#c.unet, {
        sample,
        timestep: inputs.timestep.at(t),
        encoder_hidden_states: inputs.context,
      }, "out_sample");
      let noise = out;
      if (cfg) {
        // noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond), in float32, written over the
        // uncond half of the UNet's output (a fresh buffer every call), so guidance allocates nothing.
        const d = out.data, half = d.length / 2;
        for (let j = 0; j < half; j++) d[j] = f32(d[j]! + f32(g32 * f32(d[half + j]! - d[j]!)));
        noise = new Tensor(d.subarray(0, half), [inputs.rows, ...out.shape.slice(1)]);
      }
      let row = 0;
      for (const g of active) {
        const n = g.latents.shape[0]!;
        const res = g.scheduler.step(active.length === 1 ? noise : sliceBatch(noise, row, row + n), t, g.latents, {
          eta: shared.eta,
          generator: g.generator,
        });
        row += n;
        g.latents = res.prevSample;
        g.x0 = res.predOriginalSample;
      }
      shared.onProgress?.({
        step: i + 1,
        totalSteps: timesteps.length,
        timestep: t,
        elapsedMs: performance.now() - t0,
      });
      if (shared.previewEvery > 0 && (i + 1) % shared.previewEvery === 0 && i + 1 < timesteps.length) {
        if (previews.busy) {
          this.#logger.debug(`preview at step ${i + 1} skipped: the previous onPreview has not settled`);
        } else {
          const images = await this.#decode(concatBatch(active.map((g) => g.x0 ?? g.latents)), previewTimer);
          previews.deliver({
            step: i + 1,
            totalSteps: timesteps.length,
            images,
            itemOfImage: active.flatMap((g) => Array<number>(g.latents.shape[0]!).fill(g.item)),
          });
        }
      }
    }
    await previews.settle();
    throwIfAborted(shared.signal);
    active = dropAborted();
    if (active.length > 0) {
      const images = await this.#decode(concatBatch(active.map((g) => g.latents)), decodeTimer);
      let row = 0;
      for (const g of active) {
        const n = g.latents.shape[0]!;
        results[g.item] = { status: "done", images: sliceBatch(images, row, row + n), seed: g.seed ?? 0 };
        row += n;
      }
    }
    timings.textEncoderMs = textTimer.ms;
    timings.unetMs = unetTimer.ms;
    timings.unetCalls = unetTimer.calls;
    timings.decodeMs = decodeTimer.ms;
    timings.previewMs = previewTimer.ms;
    timings.steps = timesteps.length;
    timings.totalMs = performance.now() - t0;
    this.#logger.debug(
      `text2im: ${groups.length} group(s), ${timesteps.length} steps of ${scheduler.className} in ${
        Math.round(timings.totalMs)
      } ms (UNet ${Math.round(timings.unetMs)} ms)`,
    );
    return { results: results as BatchItemResult[], timings, scheduler: scheduler.className };
  }

  #checkOpen(): void {
    if (this.#disposed) throw new Error("LDMTextToImagePipeline used after dispose()");
  }

  /** Releases the ONNX sessions. The pipeline cannot be used afterwards. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#c.bert.dispose();
    await this.#c.unet.dispose();
    await this.#c.vaeDecoder.dispose();
  }

  /** `await using pipe = await LDMTextToImagePipeline.load(dir)` releases the sessions at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/**
 * diffusers pipeline folders as `save_pretrained` writes them: `model_index.json` naming each component's
 * `[library, class]`, and one sub-folder per component with `config.json` (or `scheduler_config.json`, tokenizer
 * files) and weights.
 *
 * @module
 */
import { basename, join } from "node:path";
import { openWeights } from "./weights.ts";
import type { CheckpointWeights } from "./types.ts";

/** One `model_index.json` entry: the library and class that `from_pretrained` would instantiate. */
export interface PipelineComponentSpec {
  /** `"diffusers"`, `"transformers"`, or the pipeline module for classes defined there (`"latent_diffusion"`). */
  library: string;
  /** e.g. `"UNet2DConditionModel"`, `"LDMBertModel"`, `"DDIMScheduler"`, `"BertTokenizer"`. */
  className: string;
}

/** A parsed pipeline folder. */
export interface PipelineFolder {
  /** The folder. */
  readonly dir: string;
  /** `model_index.json` `_class_name`, e.g. `"LDMTextToImagePipeline"`. */
  readonly className: string;
  /** `_diffusers_version` when present. */
  readonly diffusersVersion: string | undefined;
  /** Components by name (sub-folder), in file order. Entries saved as `[null, null]` (absent optional parts) are left out. */
  readonly components: Readonly<Record<string, PipelineComponentSpec>>;
  /** `model_index.json` as parsed. */
  readonly modelIndex: Readonly<Record<string, unknown>>;
  /** Opens a model component's config and weights (see {@linkcode openComponent}). */
  openComponent(name: string, options?: OpenComponentOptions): Promise<ModelComponent>;
}

/** Options for {@linkcode openComponent}. */
export interface OpenComponentOptions {
  /**
   * Weights variant, as diffusers' `variant=`: `"fp16"` picks `diffusion_pytorch_model.fp16.safetensors` etc.
   * Without it variant files are ignored.
   */
  variant?: string;
}

/** A model component: its `config.json` and its weights. Close it to release the weight files. */
export interface ModelComponent {
  /** The component folder. */
  readonly dir: string;
  /** `config.json` as parsed (`_class_name` included when the file has one). */
  readonly config: Readonly<Record<string, unknown>>;
  /** The weights, read lazily. */
  readonly weights: CheckpointWeights;
  /** The weights file (or index) that was chosen. */
  readonly weightsPath: string;
  /** Closes the weights. */
  close(): void;
}

/** Weight file names in diffusers' order of preference: safetensors first, then pickles; single file, then index. */
function candidates(variant: string | undefined): string[] {
  const v = variant ? `.${variant}` : "";
  const out: string[] = [];
  for (const stem of ["diffusion_pytorch_model", "model"]) {
    out.push(`${stem}${v}.safetensors`, `${stem}.safetensors.index${v}.json`);
  }
  for (const stem of ["diffusion_pytorch_model", "pytorch_model"]) {
    out.push(`${stem}${v}.bin`, `${stem}.bin.index${v}.json`);
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readJsonObject(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Deno.errors.NotFound(`${what} not found: ${path}`);
    throw e;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`${path}: ${what} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new TypeError(`${path}: ${what} must be a JSON object`);
  }
  return v as Record<string, unknown>;
}

/**
 * Finds the weights file of a model component folder, in diffusers' order: `diffusion_pytorch_model.safetensors`,
 * its sharded index, `model.safetensors` (transformers models such as LDMBert), its index, then the `.bin` forms.
 *
 * @throws {Deno.errors.NotFound} listing every name tried (and any variant files present that were not asked for).
 */
export async function findWeightsFile(dir: string, { variant }: OpenComponentOptions = {}): Promise<string> {
  const tried = candidates(variant);
  for (const name of tried) {
    const p = join(dir, name);
    if (await exists(p)) return p;
  }
  let hint = "";
  if (!variant) {
    const others: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (
          e.isFile && /\.(safetensors|bin|json)$/.test(e.name) &&
          /^(diffusion_pytorch_model|model|pytorch_model)\./.test(e.name)
        ) {
          others.push(e.name);
        }
      }
    } catch { /* the folder itself is missing: reported below */ }
    if (others.length) hint = `; found ${others.sort().join(", ")} (a weights variant? pass variant, e.g. "fp16")`;
  }
  throw new Deno.errors.NotFound(`no weights in ${dir}: tried ${tried.join(", ")}${hint}`);
}

/**
 * Opens one model component folder (`unet/`, `vqvae/`, `bert/`, ...): parses `config.json` and opens the weights.
 *
 * @throws {Deno.errors.NotFound} naming the missing `config.json` or the weight names tried.
 * @throws {SyntaxError} when `config.json` is not valid JSON.
 * @throws {RangeError} / {Error} from {@linkcode openWeights} for truncated or unsafe weight files.
 */
export async function openComponent(dir: string, options: OpenComponentOptions = {}): Promise<ModelComponent> {
  const config = await readJsonObject(join(dir, "config.json"), "component config.json");
  const weightsPath = await findWeightsFile(dir, options);
  const weights = await openWeights(weightsPath);
  return { dir, config: Object.freeze(config), weights, weightsPath, close: () => weights.close() };
}

/**
 * Parses a pipeline folder's `model_index.json`.
 *
 * @example Opening the UNet of a text-to-image checkpoint
 * ```ts ignore
 * const pipe = await openPipelineFolder("ldm-text2im-large-256");
 * console.log(pipe.className, pipe.components.unet); // LDMTextToImagePipeline { library: "diffusers", ... }
 * const unet = await pipe.openComponent("unet");
 * try {
 *   console.log(unet.config.block_out_channels, unet.weights.names().length);
 * } finally {
 *   unet.close();
 * }
 * ```
 *
 * @throws {Deno.errors.NotFound} naming `<dir>/model_index.json` when it is missing.
 * @throws {TypeError} when `_class_name` is missing or a component entry is not `[library, class]`.
 */
export async function openPipelineFolder(dir: string): Promise<PipelineFolder> {
  const path = join(dir, "model_index.json");
  const index = await readJsonObject(path, "model_index.json");
  const className = index._class_name;
  if (typeof className !== "string" || className === "") {
    throw new TypeError(`${path}: _class_name must be a non-empty string: got ${JSON.stringify(className)}`);
  }
  const components: Record<string, PipelineComponentSpec> = {};
  for (const [name, v] of Object.entries(index)) {
    if (name.startsWith("_")) continue;
    if (Array.isArray(v) && v.length === 2 && v[0] === null && v[1] === null) continue;
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== "string" || typeof v[1] !== "string") {
      throw new TypeError(`${path}: component '${name}' must be [library, class]: got ${JSON.stringify(v)}`);
    }
    if (name !== basename(name) || name === "." || name === "..") {
      throw new TypeError(`${path}: component name '${name}' is not a folder name`);
    }
    components[name] = { library: v[0], className: v[1] };
  }
  const version = index._diffusers_version;
  return {
    dir,
    className,
    diffusersVersion: typeof version === "string" ? version : undefined,
    components: Object.freeze(components),
    modelIndex: Object.freeze(index),
    openComponent(name: string, options?: OpenComponentOptions) {
      if (!Object.hasOwn(components, name)) {
        return Promise.reject(
          new RangeError(`${path} has no component '${name}'; components: ${Object.keys(components).join(", ")}`),
        );
      }
      return openComponent(join(dir, name), options);
    },
  };
}

/**
 * Reading a converted repository's JSON files with errors that name the file and the field.
 *
 * @module
 */
import { join } from "node:path";
import { checkKnownKeys } from "./_checks.ts";

/** A parsed JSON object. */
export type JsonObject = Record<string, unknown>;

/**
 * Reads `dir/rel` as a JSON object.
 * @throws {TypeError} naming the file when it is missing, not JSON, or not an object.
 */
export async function readJsonObject(dir: string, rel: string): Promise<JsonObject> {
  const path = join(dir, rel);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new TypeError(`${path} not found (is ${dir} a converted repository?)`);
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`${path} is not valid JSON: ${e instanceof Error ? e.message : e}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${path} must hold a JSON object`);
  }
  return value as JsonObject;
}

/** Checks `model_index.json`'s `_class_name`. */
export async function readModelIndex(dir: string, expected: string): Promise<JsonObject> {
  const index = await readJsonObject(dir, "model_index.json");
  const name = index["_class_name"];
  if (name !== expected) {
    throw new TypeError(
      `${join(dir, "model_index.json")} names ${JSON.stringify(name)}; this pipeline loads ${expected} repositories`,
    );
  }
  return index;
}

/** The component configs both pipelines read. */
export interface PipelineConfigs {
  /** `scheduler/scheduler_config.json`. */
  schedulerConfig: JsonObject;
  /** `unet/config.json`. */
  unetConfig: JsonObject;
  /** `vqvae/config.json`. */
  vqvaeConfig: JsonObject;
}

/**
 * The start of both pipelines' `load()`: checks the option keys (one set for either class, as `loadPipeline` passes
 * them), that `model_index.json` names `className`, and reads the scheduler, unet and vqvae configs.
 * @throws {TypeError} naming an unknown option, or the missing or bad file.
 */
export async function readPipelineConfigs(dir: string, className: string, options: object): Promise<PipelineConfigs> {
  checkKnownKeys(
    options,
    ["executionProviders", "intraOpNumThreads", "logger", "textEmbeddingCache"],
    `${className}.load`,
  );
  await readModelIndex(dir, className);
  const [schedulerConfig, unetConfig, vqvaeConfig] = await Promise.all([
    readJsonObject(dir, "scheduler/scheduler_config.json"),
    readJsonObject(dir, "unet/config.json"),
    readJsonObject(dir, "vqvae/config.json"),
  ]);
  return { schedulerConfig, unetConfig, vqvaeConfig };
}

/** A positive integer field of a component config. */
export function configInteger(config: JsonObject, key: string, file: string): number {
  const v = config[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new TypeError(`${file}: ${key} must be a positive integer: got ${JSON.stringify(v)}`);
  }
  return v;
}

/** A positive number field of a component config, or `fallback` when absent. */
export function configNumber(config: JsonObject, key: string, file: string, fallback?: number): number {
  const v = config[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new TypeError(`${file}: ${key} must be a positive number: got ${JSON.stringify(v)}`);
  }
  return v;
}

/** `2 ** (len(block_out_channels) - 1)`: the spatial factor of a diffusers VAE or the down-sampling of a UNet. */
export function blockFactor(config: JsonObject, file: string): number {
  const v = config["block_out_channels"];
  if (!Array.isArray(v) || v.length === 0) {
    throw new TypeError(`${file}: block_out_channels must be a non-empty array: got ${JSON.stringify(v)}`);
  }
  return 2 ** (v.length - 1);
}

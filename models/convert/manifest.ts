/**
 * `ldm_onnx.json`: the manifest the converter writes at the root of a converted repository. It says which converter
 * and precision produced the graphs, what each component is, each graph's file, inputs and outputs, and the SHA-256
 * of every file in the repository and of every source file it was converted from. Pipelines and servers read it to
 * find graphs and to report models (`/v1/models`); {@linkcode verifyRepository} checks a repository against it.
 *
 * @module
 */
import type { GraphOptimizations } from "../onnx/optimize.ts";
import { join } from "node:path";
import { sha256File } from "./_hash.ts";

/** The manifest's file name at the repository root. */
export const MANIFEST_FILE = "ldm_onnx.json";
/** Version of the manifest layout this module reads and writes. */
export const MANIFEST_FORMAT_VERSION = 1;
/** Version of the converter (bump when graphs it writes change for the same input). */
export const CONVERTER_VERSION = "0.1.0";

/** Size and SHA-256 (lower-case hex) of one file. */
export interface ManifestFile {
  sha256: string;
  bytes: number;
}

/** A graph input or output, as the graph declares it. */
export interface ManifestTensor {
  name: string;
  /** Element type: `"float32"` or `"int64"` for every graph the converter writes. */
  type: string;
  /** Sizes, or symbolic names such as `"batch"`; absent when the graph leaves the shape open. */
  dims?: (number | string)[];
}

/** One ONNX graph of a component. */
export interface ManifestGraph {
  /** Path relative to the repository root, e.g. `"unet/model.onnx"`. */
  file: string;
  /** External weight file relative to the repository root, or null when every weight is embedded. */
  externalData: string | null;
  inputs: ManifestTensor[];
  outputs: ManifestTensor[];
  /** Checkpoint parameters the graph holds. */
  parameters: number;
  /** Bytes of weights in the graph (after dtype conversion). */
  weightBytes: number;
  /**
   * The execution-provider fusions of an optimised graph (`models/onnx` `resolveOptimizations`), absent for the plain
   * graph. A graph whose `target` is `cuda` or `webgpu` needs that provider (its contrib operators have no CPU kernel).
   */
  optimizations?: GraphOptimizations;
  /** Input dimensions fixed at conversion (`--fixed-size`), absent when every dimension is dynamic. */
  fixedDims?: Record<string, number>;
}

/** One `model_index.json` component, converted or copied. */
export interface ManifestComponent {
  /** `model_index.json` library (`"diffusers"`, `"transformers"`, `"latent_diffusion"`). */
  library: string;
  /** `model_index.json` class, e.g. `"UNet2DConditionModel"`. */
  className: string;
  /** `"converted"` for networks, `"copied"` for scheduler/tokenizer folders, `"skipped"` when not asked for. */
  kind: "converted" | "copied" | "skipped";
  /** Graphs by role (`model`, `encoder`, `decoder`); converted components only. */
  graphs?: Record<string, ManifestGraph>;
  /** Parameters in the source checkpoint (all tensors); converted components only. */
  parameters?: number;
  /** Source tensors no graph uses (e.g. LDMBert's `to_logits.*`); converted components only. */
  unusedWeights?: string[];
}

/** The whole manifest. */
export interface LdmOnnxManifest {
  format: "ldm-onnx";
  formatVersion: number;
  converter: { name: string; version: string };
  /** `model_index.json` `_class_name`, e.g. `"LDMTextToImagePipeline"`. */
  pipeline: string;
  /** Precision of the graphs' weights. Graph inputs and outputs are float32/int64 either way. */
  dtype: "fp32" | "fp16";
  /** What was converted: the source folder's name, its diffusers version, and every file read, hashed. */
  source: { name: string; diffusersVersion: string | null; files: Record<string, ManifestFile> };
  components: Record<string, ManifestComponent>;
  /** Every file of the repository except the manifest, by path relative to the root. */
  files: Record<string, ManifestFile>;
}

function fail(path: string, what: string): never {
  throw new TypeError(`${path}: ${what}`);
}

/**
 * Reads and checks the manifest of a converted repository.
 *
 * @throws {Deno.errors.NotFound} naming `<dir>/ldm_onnx.json` when the folder is not a converted repository.
 * @throws {TypeError} naming the field when the manifest is malformed or of an unknown format version.
 */
export async function readManifest(dir: string): Promise<LdmOnnxManifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`${path} not found: not a converted repository (run deno task convert)`);
    }
    throw e;
  }
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (m?.format !== "ldm-onnx") fail(path, `format must be "ldm-onnx": got ${JSON.stringify(m?.format)}`);
  if (m.formatVersion !== MANIFEST_FORMAT_VERSION) {
    fail(
      path,
      `formatVersion ${JSON.stringify(m.formatVersion)} is not supported (expected ${MANIFEST_FORMAT_VERSION})`,
    );
  }
  if (m.dtype !== "fp32" && m.dtype !== "fp16") {
    fail(path, `dtype must be "fp32" or "fp16": got ${JSON.stringify(m.dtype)}`);
  }
  if (typeof m.pipeline !== "string") fail(path, "pipeline must be a string");
  for (const key of ["components", "files", "source"] as const) {
    if (typeof m[key] !== "object" || m[key] === null) fail(path, `${key} must be an object`);
  }
  for (const [name, c] of Object.entries(m.components as Record<string, ManifestComponent>)) {
    if (!["converted", "copied", "skipped"].includes(c?.kind)) fail(path, `components.${name}.kind is invalid`);
    for (const [role, g] of Object.entries(c.graphs ?? {})) {
      if (typeof g?.file !== "string" || !Array.isArray(g.inputs) || !Array.isArray(g.outputs)) {
        fail(path, `components.${name}.graphs.${role} must have file, inputs and outputs`);
      }
    }
  }
  return m as unknown as LdmOnnxManifest;
}

/** One discrepancy found by {@linkcode verifyRepository}. */
export interface VerifyProblem {
  file: string;
  problem: "missing" | "size" | "sha256" | "unlisted";
  detail: string;
}

/**
 * Re-hashes every file the manifest lists and reports files that are missing, changed, or present but unlisted.
 * An empty result means the repository is exactly what the converter wrote.
 */
export async function verifyRepository(dir: string): Promise<VerifyProblem[]> {
  const manifest = await readManifest(dir);
  const problems: VerifyProblem[] = [];
  for (const [file, want] of Object.entries(manifest.files)) {
    let got: ManifestFile;
    try {
      got = await sha256File(join(dir, file));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        problems.push({ file, problem: "missing", detail: "listed in the manifest but absent" });
        continue;
      }
      throw e;
    }
    if (got.bytes !== want.bytes) {
      problems.push({ file, problem: "size", detail: `${got.bytes} bytes, manifest says ${want.bytes}` });
    } else if (got.sha256 !== want.sha256) {
      problems.push({ file, problem: "sha256", detail: `sha256 ${got.sha256}, manifest says ${want.sha256}` });
    }
  }
  for (const file of await listFiles(dir)) {
    if (file !== MANIFEST_FILE && !Object.hasOwn(manifest.files, file)) {
      problems.push({ file, problem: "unlisted", detail: "present but not in the manifest" });
    }
  }
  return problems;
}

/** Every regular file under `dir`, as sorted `/`-separated relative paths. @internal */
export async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else if (e.isFile) out.push(rel);
  }
  return out.sort();
}

/**
 * `convertPipeline()`: a diffusers pipeline folder → a converted repository of ONNX graphs, written atomically.
 *
 * Steps: parse `model_index.json`; check every component's class is one this project converts or copies; open each
 * model component (config + weights, lazily); build its graphs with the builders in `models/onnx`; save them into a
 * temporary folder beside `outDir`; copy `model_index.json`, `scheduler/`, `tokenizer/` and each `config.json`; hash
 * everything into `ldm_onnx.json`; rename the folder into place. Any failure or abort removes the temporary folder,
 * so `outDir` is either absent/untouched or complete.
 *
 * @module
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import { type ModelComponent, openPipelineFolder, type PipelineComponentSpec } from "../checkpoint/mod.ts";
import type { CheckpointWeights } from "../checkpoint/mod.ts";
import { sha256File } from "./_hash.ts";
import { COPIED_CLASSES, type GraphSpec, MODEL_CLASSES } from "./_graphs.ts";
import {
  CONVERTER_VERSION,
  type LdmOnnxManifest,
  listFiles,
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  type ManifestComponent,
  type ManifestFile,
  type ManifestGraph,
  type ManifestTensor,
} from "./manifest.ts";
import type { GraphValueSpec } from "../onnx/builder.ts";
import { isPlain, type OptimizeOptions, resolveOptimizations } from "../onnx/optimize.ts";

/** Weight bytes above which a graph's weights go to external data (see {@linkcode ConvertOptions}). */
export const DEFAULT_EXTERNAL_DATA_THRESHOLD = 1_000_000_000;

/** Where the converter logs (a subset of the functions' `Logger`, so that one can be passed as is). */
export interface ConvertLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** Progress events, in order: `start`, then per graph `graph-start`, `weight`×n, `graph-done`, then `hash`×n, `done`. */
export type ConvertProgress =
  | { kind: "start"; components: string[]; graphs: number; dtype: "fp32" | "fp16" }
  | {
    kind: "graph-start";
    component: string;
    /** Repository-relative file, e.g. `"unet/model.onnx"`. */
    file: string;
    /** 1-based position among all graphs of this conversion. */
    index: number;
    total: number;
    /** Checkpoint weights the graph reads. */
    weights: number;
  }
  | { kind: "weight"; component: string; file: string; name: string; done: number; total: number; bytes: number }
  | {
    kind: "graph-done";
    component: string;
    file: string;
    parameters: number;
    bytes: number;
    externalData: string | null;
    seconds: number;
  }
  | { kind: "hash"; file: string; bytes: number }
  | { kind: "done"; seconds: number };

/** Options of {@linkcode convertPipeline}. */
export interface ConvertOptions {
  /** Precision of the graph weights (inputs/outputs stay float32). @default "fp32" */
  dtype?: "fp32" | "fp16";
  /** Model components to convert (sub-folder names, e.g. `["unet"]`); the others are marked skipped. @default all */
  components?: readonly string[];
  /** Source weights variant (`"fp16"` reads `diffusion_pytorch_model.fp16.safetensors`). @default none */
  variant?: string;
  /** Replace an existing `outDir` (only after the new repository is complete). @default false */
  overwrite?: boolean;
  /**
   * Graphs whose weights exceed this many bytes keep their weights in `<graph>.onnx_data` beside the graph (ONNX
   * external data, 4 KiB-aligned tensors). Protobuf cannot hold a model over 2 GiB at all, and onnxruntime parses an
   * embedded model into a second in-memory copy, so every graph of a real-size checkpoint (UNet fp16 1.75 GB / fp32
   * 3.49 GB, LDMBert fp16 1.16 GB / fp32 2.33 GB) goes external while VAEs and the tiny models stay single files.
   * @default 1_000_000_000 ({@linkcode DEFAULT_EXTERNAL_DATA_THRESHOLD})
   */
  externalDataThreshold?: number;
  /** Hash the source files into the manifest (reads every source file once more). @default true */
  hashSources?: boolean;
  /** Called for every progress event. */
  onProgress?: (event: ConvertProgress) => void;
  /** Receives informational messages and warnings. */
  logger?: ConvertLogger;
  /** Aborts the conversion (checked before every weight); the temporary output is removed. */
  signal?: AbortSignal;
  /**
   * Build graphs specialised for one execution provider (onnxruntime contrib operators and rewrites; see
   * `models/onnx/optimize.ts` and bench/PERFORMANCE.md) instead of the plain, portable graphs. A repository converted
   * for `cuda` or `webgpu` then needs that provider; one converted for `cpu` runs on every provider.
   * @default none (plain graphs)
   */
  optimize?: OptimizeOptions;
  /**
   * Fix the denoising UNet's latent size (and optionally its batch, i.e. 2 × images with guidance): the UNet gets
   * `{ batch, height, width, sequence: 77 }`, the VAE/VQ decoder `{ latent_height, latent_width }` (its batch stays
   * dynamic: the pipelines decode per image), LDMBert
   * `{ sequence: 77 }`; encoders stay dynamic. Such graphs only take those sizes.
   * @default none (dynamic sizes)
   */
  fixedSize?: { batch?: number; height: number; width: number };
}

/** LDMBert's `max_position_embeddings`: the text length the pipeline always pads to. */
const TEXT_LENGTH = 77;

/** The fixed dims of one graph for `fixedSize` (see {@linkcode ConvertOptions.fixedSize}). */
function fixedDimsFor(
  className: string,
  role: string,
  fixedSize: ConvertOptions["fixedSize"],
): Record<string, number> | undefined {
  if (!fixedSize) return undefined;
  const { batch, height, width } = fixedSize;
  if (className === "UNet2DConditionModel" || className === "UNet2DModel") {
    return { ...(batch !== undefined ? { batch } : {}), height, width, sequence: TEXT_LENGTH };
  }
  if (role === "decoder") return { latent_height: height, latent_width: width };
  if (className === "LDMBertModel") return { sequence: TEXT_LENGTH };
  return undefined;
}

/** What {@linkcode convertPipeline} wrote. */
export interface ConvertResult {
  /** The repository folder (absolute). */
  outDir: string;
  /** The manifest as written to `ldm_onnx.json`. */
  manifest: LdmOnnxManifest;
  /** Total parameters in the converted graphs. */
  parameters: number;
  /** Total bytes of the repository. */
  bytes: number;
  /** Wall-clock seconds. */
  seconds: number;
}

const SUPPORTED = () =>
  `models: ${Object.keys(MODEL_CLASSES).join(", ")}; copied: ${Object.keys(COPIED_CLASSES).join(", ")}`;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

async function pathExists(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Copies the regular files of `src` (following symlinks, as in Hugging Face cache snapshots) into `dst`. */
async function copyTree(src: string, dst: string): Promise<string[]> {
  await Deno.mkdir(dst, { recursive: true });
  const copied: string[] = [];
  for await (const e of Deno.readDir(src)) {
    const from = join(src, e.name);
    const info = e.isSymlink ? await Deno.stat(from) : e;
    if (info.isDirectory) copied.push(...(await copyTree(from, join(dst, e.name))).map((f) => `${e.name}/${f}`));
    else if (info.isFile) {
      await Deno.copyFile(from, join(dst, e.name));
      copied.push(e.name);
    }
  }
  return copied.sort();
}

/**
 * A {@linkcode CheckpointWeights} seen through the builders' `WeightSource` lens, reporting each read and honouring the
 * abort signal between weights.
 */
class ReportingWeights {
  done = 0;
  constructor(
    readonly store: CheckpointWeights,
    readonly onRead: (name: string, bytes: number) => void,
    readonly signal: AbortSignal | undefined,
  ) {}
  has(name: string): boolean {
    return this.store.has(name);
  }
  info(name: string) {
    return this.store.info(name);
  }
  async readFloat32(name: string): Promise<Float32Array> {
    this.signal?.throwIfAborted();
    const data = await this.store.readFloat32(name);
    this.done++;
    this.onRead(name, data.byteLength);
    return data;
  }
}

interface Plan {
  name: string;
  spec: PipelineComponentSpec;
  graphs: readonly GraphSpec[] | null;
  copy: boolean;
  selected: boolean;
}

/**
 * Converts a diffusers pipeline folder (`save_pretrained` layout) into a repository of ONNX graphs:
 *
 * | path | inputs → outputs |
 * | --- | --- |
 * | `bert/model.onnx` | `input_ids` int64 [B, 77] → `last_hidden_state` |
 * | `unet/model.onnx` | `sample`, `timestep` float32 [B](, `encoder_hidden_states`) → `out_sample` |
 * | `vqvae/encoder.onnx` | `sample` → `latent_mean`, `latent_std` (AutoencoderKL) / `latents` (VQModel) |
 * | `vqvae/decoder.onnx` | `latent_sample` → `sample` (VQModel: quantised to the codebook first) |
 *
 * plus `model_index.json`, `scheduler/`, `tokenizer/`, each component's `config.json` and `ldm_onnx.json`.
 *
 * @example Converting the tiny test pipeline
 * ```ts ignore
 * const { manifest } = await convertPipeline("tests/fixtures/diffusers-tiny/ldm-text2im", "out/ldm-tiny", {
 *   dtype: "fp32",
 * });
 * console.log(Object.keys(manifest.files));
 * ```
 *
 * @throws {RangeError} for a bad option (named with its value), a component class this project cannot convert, a
 * config value the graph builders do not support, or truncated / inconsistent weights; {@linkcode Deno.errors.NotFound}
 * naming a missing `model_index.json`, `config.json` or weights file; {@linkcode Deno.errors.AlreadyExists} when
 * `outDir` exists and `overwrite` is not set; the signal's reason when aborted. `outDir` is never left half-written.
 */
export async function convertPipeline(
  srcDir: string,
  outDir: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  const {
    dtype = "fp32",
    components: only,
    variant,
    overwrite = false,
    externalDataThreshold = DEFAULT_EXTERNAL_DATA_THRESHOLD,
    hashSources = true,
    onProgress = () => {},
    logger,
    signal,
    fixedSize,
  } = options;
  if (dtype !== "fp32" && dtype !== "fp16") {
    throw new RangeError(`dtype must be "fp32" or "fp16": got ${JSON.stringify(dtype)}`);
  }
  const optimizations = resolveOptimizations(options.optimize);
  if (fixedSize !== undefined) {
    for (const key of ["batch", "height", "width"] as const) {
      const v = fixedSize[key];
      if ((v !== undefined || key !== "batch") && !(Number.isSafeInteger(v) && v! > 0)) {
        throw new RangeError(`fixedSize.${key} must be a positive integer: got ${JSON.stringify(v)}`);
      }
    }
  }
  if (!(Number.isFinite(externalDataThreshold) && externalDataThreshold > 0)) {
    throw new RangeError(`externalDataThreshold must be a positive number of bytes: got ${externalDataThreshold}`);
  }
  const t0 = performance.now();
  signal?.throwIfAborted();
  const src = resolve(srcDir);
  const out = resolve(outDir);
  if (out === src || out.startsWith(src + "/")) throw new RangeError(`outDir must not be inside srcDir: got ${out}`);

  // 1. Plan: every component must be convertible or copyable before anything is written.
  const pipe = await openPipelineFolder(src);
  const plan: Plan[] = [];
  for (const [name, spec] of Object.entries(pipe.components)) {
    const graphs = MODEL_CLASSES[spec.className] ?? null;
    const copy = Object.hasOwn(COPIED_CLASSES, spec.className);
    if (!graphs && !copy) {
      throw new RangeError(
        `${join(src, "model_index.json")}: component '${name}' has class ${spec.className}, which this converter ` +
          `does not support (${SUPPORTED()})`,
      );
    }
    plan.push({ name, spec, graphs, copy, selected: !only || only.includes(name) });
  }
  const modelNames = plan.filter((p) => p.graphs).map((p) => p.name);
  for (const c of only ?? []) {
    if (!modelNames.includes(c)) {
      throw new RangeError(`components: '${c}' is not a model component of ${src} (have: ${modelNames.join(", ")})`);
    }
  }
  const existing = await pathExists(out);
  if (existing && !overwrite) {
    const empty = existing.isDirectory && (await Array.fromAsync(Deno.readDir(out))).length === 0;
    if (!empty) {
      throw new Deno.errors.AlreadyExists(
        `outDir already exists: ${out} (pass overwrite: true, or --overwrite, to replace it)`,
      );
    }
  }

  const tmp = join(dirname(out), `.${basename(out)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  await Deno.mkdir(dirname(out), { recursive: true });
  await Deno.mkdir(tmp);
  const opened: ModelComponent[] = [];
  try {
    // 2. Open every selected model component first: missing configs/weights fail before any heavy work.
    const jobs: { plan: Plan; component: ModelComponent }[] = [];
    for (const p of plan) {
      if (!p.graphs || !p.selected) continue;
      const component = await pipe.openComponent(p.name, variant ? { variant } : {});
      opened.push(component);
      jobs.push({ plan: p, component });
    }
    const totalGraphs = jobs.reduce((n, j) => n + j.plan.graphs!.length, 0);
    onProgress({ kind: "start", components: jobs.map((j) => j.plan.name), graphs: totalGraphs, dtype });

    const sourceFiles = new Set<string>([join(src, "model_index.json")]);
    const components: Record<string, ManifestComponent> = {};
    let graphIndex = 0;
    let parameters = 0;
    for (const p of plan) {
      const base = { library: p.spec.library, className: p.spec.className };
      if (p.copy) {
        const from = join(src, p.name);
        if (!(await pathExists(from))?.isDirectory) {
          throw new Deno.errors.NotFound(`component folder not found: ${from} (listed in model_index.json)`);
        }
        for (const f of await copyTree(from, join(tmp, p.name))) sourceFiles.add(join(from, f));
        components[p.name] = { ...base, kind: "copied" };
      } else if (!p.selected) {
        components[p.name] = { ...base, kind: "skipped" };
      }
    }

    // 3. Build and save each graph.
    for (const { plan: p, component } of jobs) {
      const store = component.weights;
      const dir = join(tmp, p.name);
      await Deno.mkdir(dir, { recursive: true });
      await Deno.copyFile(join(component.dir, "config.json"), join(dir, "config.json"));
      sourceFiles.add(join(component.dir, "config.json"));
      for (const f of store.files) sourceFiles.add(f);
      if (component.weightsPath.endsWith(".index.json")) sourceFiles.add(component.weightsPath);
      const graphs: Record<string, ManifestGraph> = {};
      const used = new Set<string>();
      for (const g of p.graphs!) {
        graphIndex++;
        const file = `${p.name}/${g.file}`;
        const tg = performance.now();
        let reads = 0;
        let total = 0;
        const weights = new ReportingWeights(store, (name, bytes) => {
          onProgress({ kind: "weight", component: p.name, file, name, done: ++reads, total, bytes });
        }, signal);
        let builder;
        try {
          const fixedDims = fixedDimsFor(p.spec.className, g.role, fixedSize);
          builder = g.build(component.config, weights, {
            dtype,
            name: `${p.name}_${g.role}`,
            ...(isPlain(optimizations) ? {} : { optimize: optimizations }),
            ...(fixedDims ? { fixedDims } : {}),
          });
        } catch (e) {
          throw withContext(e, `${p.name} (${p.spec.className}) ${g.role}`);
        }
        const names = builder.weightNames;
        const signature = builder.signature;
        total = names.length;
        for (const n of names) used.add(n);
        const graphParams = names.reduce((acc, n) => acc + numel(store.info(n).shape), 0);
        onProgress({
          kind: "graph-start",
          component: p.name,
          file,
          index: graphIndex,
          total: totalGraphs,
          weights: total,
        });
        let saved;
        try {
          saved = await builder.save(join(dir, g.file), { externalDataThreshold });
        } catch (e) {
          signal?.throwIfAborted();
          throw withContext(e, `${p.name} (${p.spec.className}) ${g.role}`);
        }
        const externalData = saved.externalDataPath ? `${p.name}/${basename(saved.externalDataPath)}` : null;
        graphs[g.role] = {
          file,
          externalData,
          inputs: signature.inputs.map(toManifestTensor),
          outputs: signature.outputs.map(toManifestTensor),
          parameters: graphParams,
          weightBytes: saved.weightBytes,
          ...(isPlain(builder.optimizations) ? {} : { optimizations: builder.optimizations }),
          ...(Object.keys(builder.fixedDims).length > 0 ? { fixedDims: { ...builder.fixedDims } } : {}),
        };
        parameters += graphParams;
        onProgress({
          kind: "graph-done",
          component: p.name,
          file,
          parameters: graphParams,
          bytes: saved.weightBytes,
          externalData,
          seconds: (performance.now() - tg) / 1000,
        });
      }
      const unusedWeights = store.names().filter((n) => !used.has(n));
      if (unusedWeights.length > 0) {
        logger?.info(`${p.name}: ${unusedWeights.length} checkpoint tensors are not used by any graph`, {
          component: p.name,
          unused: unusedWeights.slice(0, 20),
        });
      }
      components[p.name] = {
        library: p.spec.library,
        className: p.spec.className,
        kind: "converted",
        graphs,
        parameters: store.names().reduce((acc, n) => acc + numel(store.info(n).shape), 0),
        unusedWeights,
      };
      store.close();
    }
    await Deno.copyFile(join(src, "model_index.json"), join(tmp, "model_index.json"));

    // 4. Hash the repository (and the sources) into the manifest.
    signal?.throwIfAborted();
    const files: Record<string, ManifestFile> = {};
    let bytes = 0;
    for (const f of await listFiles(tmp)) {
      signal?.throwIfAborted();
      files[f] = await sha256File(join(tmp, f));
      bytes += files[f].bytes;
      onProgress({ kind: "hash", file: f, bytes: files[f].bytes });
    }
    const sources: Record<string, ManifestFile> = {};
    if (hashSources) {
      for (const f of [...sourceFiles].sort()) {
        signal?.throwIfAborted();
        sources[relative(src, f)] = await sha256File(f);
      }
    }
    const ordered: Record<string, ManifestComponent> = {};
    for (const p of plan) ordered[p.name] = components[p.name]!;
    const manifest: LdmOnnxManifest = {
      format: "ldm-onnx",
      formatVersion: MANIFEST_FORMAT_VERSION,
      converter: { name: "@ldm/models/convert", version: CONVERTER_VERSION },
      pipeline: pipe.className,
      dtype,
      source: { name: basename(src), diffusersVersion: pipe.diffusersVersion ?? null, files: sources },
      components: ordered,
      files,
    };
    await Deno.writeTextFile(join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");

    // 5. Move into place. With overwrite the old repository is replaced only now, when the new one is complete.
    signal?.throwIfAborted();
    const now = await pathExists(out);
    if (now) {
      const old = join(dirname(out), `.${basename(out)}.${crypto.randomUUID().slice(0, 8)}.old.tmp`);
      await Deno.rename(out, old);
      await Deno.rename(tmp, out);
      await Deno.remove(old, { recursive: true });
    } else {
      await Deno.rename(tmp, out);
    }
    const seconds = (performance.now() - t0) / 1000;
    onProgress({ kind: "done", seconds });
    logger?.info(`converted ${src} → ${out}`, { parameters, bytes, seconds });
    return { outDir: out, manifest, parameters, bytes, seconds };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  } finally {
    for (const c of opened) c.close();
  }
}

function toManifestTensor(v: GraphValueSpec): ManifestTensor {
  return v.dims ? { name: v.name, type: v.type, dims: [...v.dims] } : { name: v.name, type: v.type };
}

/** Prefixes a builder error with the component it came from, keeping its class (RangeError stays RangeError). */
function withContext(e: unknown, where: string): unknown {
  if (e instanceof Error && !e.message.startsWith(where)) {
    try {
      e.message = `${where}: ${e.message}`;
    } catch { /* read-only message: keep the error as is */ }
  }
  return e;
}

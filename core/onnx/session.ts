/**
 * The only module that imports onnxruntime-node. Everything else talks to ONNX graphs through {@linkcode OnnxModel}.
 *
 * What it adds over a bare `InferenceSession`:
 * - execution providers tried in order (explicit list, else `LDM_EXECUTION_PROVIDERS`, else CPU), each skip logged
 *   with its reason (not in this onnxruntime build, no WebGPU adapter, CUDA libraries missing, …);
 * - feeds checked against the graph's own metadata before running (names, element types, ranks, fixed dimensions),
 *   float tensors converted to int64 where the graph wants int64 (e.g. an integer UNet `timestep`), and failures
 *   rethrown with the dims and dtypes of every feed.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { Tensor } from "../tensor/mod.ts";

/** Element types a graph input or output can have, as this project uses them. */
export type OnnxElementType = "float32" | "float16" | "int64" | "int32" | "bool" | "string" | "unknown";

/** Name, element type and shape (numbers, symbolic names or undefined) of one graph input or output. */
export interface OnnxValueInfo {
  /** The input or output name, e.g. `"timestep"`. */
  readonly name: string;
  /** Its element type. */
  readonly type: OnnxElementType;
  /** Dimensions: a number when fixed, the symbolic name when dynamic, `undefined` when unknown. */
  readonly shape: readonly (number | string | undefined)[];
}

/** An int64 feed: ids for the text encoder. Values must be safe integers. */
export interface Int64Feed {
  /** The values, row-major. */
  readonly int64: BigInt64Array;
  /** The dimensions. */
  readonly shape: readonly number[];
}

/**
 * A value to feed a graph input: a float32 {@linkcode Tensor} or an int64 array. A `Tensor` fed to an int64 input is
 * converted when every value is an integer (so callers need not know whether a graph exports `timestep` as float
 * or int64).
 */
export type OnnxFeed = Tensor | Int64Feed;

/**
 * Where this module and the pipelines log. Structurally compatible with `functions/`' logger; pass
 * `console` for quick scripts.
 */
export interface Logger {
  /** Detail (per-run timings, feeds). */
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** Normal events (which provider a component got). */
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Something was skipped or ignored (a provider that failed, an option without effect). */
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

/** Options for {@linkcode loadOnnxModel}. */
export interface LoadOnnxModelOptions {
  /**
   * Execution providers to try, in order, e.g. `["webgpu", "cpu"]`.
   * @default {@linkcode defaultExecutionProviders}() (`LDM_EXECUTION_PROVIDERS`, else `["cpu"]`)
   */
  executionProviders?: readonly string[];
  /** Threads for the CPU provider's operators; 0 lets onnxruntime decide. @default 0 */
  intraOpNumThreads?: number;
  /** Name used in log lines and errors (e.g. `"unet"`). @default "model" */
  name?: string;
  /** Receives which provider was chosen and why others were skipped. */
  logger?: Logger;
  /**
   * Providers already known not to work in this load (provider → reason), shared between the components of one
   * repository so a missing WebGPU adapter is probed once, not per component. Filled in by this call.
   */
  knownFailures?: Map<string, string>;
  /**
   * onnxruntime's graph optimisation level. `"disabled"` is for a graph that onnxruntime already optimised (see
   * `optimizedModelFilePath`). @default onnxruntime's default, `"all"`
   */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /**
   * Write the session-optimised graph here (onnxruntime's `optimizedModelFilePath`; its weights go to
   * `<file>_data`), so that later loads of that file with `graphOptimizationLevel: "disabled"` skip onnxruntime's
   * optimisation and pre-packing work (the real-size UNet on CPU: 2.0–2.9 s → 0.55–0.65 s per session, see
   * bench/PERFORMANCE.md). With `"all"` the file holds layouts for this machine's CPU (NCHWc blocks of its vector
   * width): make it on the machine that serves, do not ship it.
   */
  optimizedModelFilePath?: string;
  /**
   * The execution provider the graph was optimised for: `optimizations.target` of its `ldm_onnx.json` entry
   * (`loadOnnxComponents` reads it). A graph optimised for `cuda` or `webgpu` holds fused contrib operators that only
   * that provider implements (CUDA's `GroupNorm`, `BiasSplitGelu`): when another provider in the list cannot create
   * its session for want of such a kernel, the load fails with an error naming the target and that provider instead
   * of onnxruntime's "Could not find an implementation for …". A session another provider can run (no such
   * operator in this graph) is created, with a warning. `null`/`undefined`/`"cpu"`: no check.
   */
  optimizedFor?: string | null;
}

/** Targets of optimised graphs whose fused operators only their own provider implements. */
const GPU_TARGETS: readonly string[] = ["cuda", "webgpu"];

/** onnxruntime graph optimisation levels. */
export const GRAPH_OPTIMIZATION_LEVELS = ["disabled", "basic", "extended", "layout", "all"] as const;

/** One of {@linkcode GRAPH_OPTIMIZATION_LEVELS}. */
export type GraphOptimizationLevel = typeof GRAPH_OPTIMIZATION_LEVELS[number];

/** Checks the tuning options of {@linkcode LoadOnnxModelOptions} and maps them to onnxruntime session options. */
function tuningOptions(options: LoadOnnxModelOptions): ort.InferenceSession.SessionOptions {
  const out: ort.InferenceSession.SessionOptions = {};
  const level = options.graphOptimizationLevel;
  if (level !== undefined) {
    if (!GRAPH_OPTIMIZATION_LEVELS.includes(level)) {
      throw new RangeError(
        `graphOptimizationLevel must be one of ${GRAPH_OPTIMIZATION_LEVELS.join(", ")}: got ${JSON.stringify(level)}`,
      );
    }
    out.graphOptimizationLevel = level;
  }
  const file = options.optimizedModelFilePath;
  if (file !== undefined) {
    if (typeof file !== "string" || file === "") {
      throw new RangeError(`optimizedModelFilePath must be a file path: got ${JSON.stringify(file)}`);
    }
    out.optimizedModelFilePath = file;
    // Graphs over 2 GB cannot be one protobuf file: weights of 1 KiB or more go beside it, as the converter does.
    out.extra = {
      session: {
        "optimized_model_external_initializers_file_name": `${file.split(/[\\/]/).at(-1)}_data`,
        "optimized_model_external_initializers_min_size_in_bytes": "1024",
      },
    };
  }
  // (onnxruntime-node 1.30 ignores `freeDimensionOverrides`: fixed sizes come from the converter's --fixed-size.)
  return out;
}

/** A loaded ONNX graph. Release it with `dispose()`. */
export interface OnnxModel {
  /** The name given at load time (for messages). */
  readonly name: string;
  /** The graph's inputs as onnxruntime reports them. */
  readonly inputs: readonly OnnxValueInfo[];
  /** The graph's outputs as onnxruntime reports them. */
  readonly outputs: readonly OnnxValueInfo[];
  /** The execution provider the session was created with. */
  readonly executionProvider: string;
  /**
   * Runs the graph. Float outputs come back as {@linkcode Tensor}s keyed by output name.
   * @throws {TypeError} when a feed is missing, unknown, or does not fit the input's element type, rank or fixed dims.
   * @throws {Error} when onnxruntime fails; the message lists every feed's dtype and shape.
   */
  run(feeds: Readonly<Record<string, OnnxFeed>>): Promise<Record<string, Tensor>>;
  /** Releases the native session. Calling `run` afterwards throws. */
  dispose(): Promise<void>;
}

/** Environment variable read by {@linkcode defaultExecutionProviders}. */
export const EXECUTION_PROVIDERS_ENV = "LDM_EXECUTION_PROVIDERS";

/**
 * Parses a comma-separated provider list such as `"webgpu, cpu"` (lower-cased, blanks and duplicates dropped).
 * @throws {RangeError} when the list names no provider.
 */
export function parseExecutionProviders(text: string, source = EXECUTION_PROVIDERS_ENV): string[] {
  const list = [...new Set(text.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0))];
  if (list.length === 0) {
    throw new RangeError(`${source} must list at least one execution provider (e.g. "webgpu,cpu"): got "${text}"`);
  }
  return list;
}

/**
 * The providers to use when the caller names none: `LDM_EXECUTION_PROVIDERS` when set (and readable without a
 * permission prompt), else `["cpu"]`.
 */
export function defaultExecutionProviders(): string[] {
  let text: string | undefined;
  try {
    const state = Deno.permissions.querySync({ name: "env", variable: EXECUTION_PROVIDERS_ENV }).state;
    if (state === "granted") text = Deno.env.get(EXECUTION_PROVIDERS_ENV);
  } catch {
    text = undefined;
  }
  return text === undefined || text.trim() === "" ? ["cpu"] : parseExecutionProviders(text);
}

/** Providers compiled into this onnxruntime-node, with whether their libraries ship in the npm package. */
export function availableExecutionProviders(): { name: string; bundled: boolean }[] {
  return ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled }));
}

function toInfo(m: ort.InferenceSession.ValueMetadata): OnnxValueInfo {
  if (!m.isTensor) return { name: m.name, type: "unknown", shape: [] };
  const t = m.type as string;
  const type: OnnxElementType = t === "float32" || t === "float16" || t === "int64" || t === "int32" ||
      t === "bool" || t === "string"
    ? t
    : "unknown";
  return {
    name: m.name,
    type,
    shape: m.shape.map((d) => (typeof d === "number" && d >= 0) || typeof d === "string" ? d : undefined),
  };
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * A one-line reason for a failed provider: the known environment problems in words (with what fixes them), else
 * onnxruntime's message without its source-location prefix.
 */
export function explainProviderFailure(provider: string, message: string): string {
  if (/Failed to get a WebGPU adapter/i.test(message)) {
    return "no WebGPU adapter (no GPU reachable through Vulkan: needs libvulkan1 and the GPU's Vulkan driver/ICD)";
  }
  if (/Failed to load shared library/i.test(message) && (provider === "cuda" || provider === "tensorrt")) {
    return `the ${provider.toUpperCase()} provider library is not installed (onnxruntime-node downloads it at install ` +
      "time with ONNXRUNTIME_NODE_INSTALL=cuda12; needs CUDA 12 and cuDNN 9)";
  }
  const kernel = missingKernel(message);
  if (kernel !== undefined) {
    return `the ${provider} provider has no kernel for operator ${kernel.op} (opset ${kernel.version}, node ` +
      `'${kernel.node}'); a graph with fused operators of another provider (converted with --optimize-for) needs ` +
      "that provider";
  }
  const line = message.split("\n").map((l) => l.trim()).find((l) => l.length > 0) ?? message;
  // Drop "/onnxruntime_src/...cc:123 function(...)" prefixes: keep what follows the last "was false." or the text.
  const tail = line.replace(/^\/\S+:\d+ .*? (was false\.|failed\.)\s*/, "");
  return tail.length > 300 ? `${tail.slice(0, 300)}…` : tail;
}

/** The operator, opset and node of onnxruntime's "Could not find an implementation for Op(ver) node with name 'n'". */
function missingKernel(message: string): { op: string; version: string; node: string } | undefined {
  const m = /Could not find an implementation for ([\w.]+)\((\d+)\) node with name '([^']*)'/.exec(message);
  return m === null ? undefined : { op: m[1]!, version: m[2]!, node: m[3]! };
}

/** A short reason for a provider failure that will not change for another graph of the same process. */
function isEnvironmentFailure(message: string): boolean {
  return /adapter|shared library|not (supported|available|found|registered)|no such|cannot open|libcu|vulkan/i.test(
    message,
  );
}

/**
 * Loads an ONNX graph from a file path or bytes with the first execution provider that works, logging which one it
 * got and why each earlier one was skipped.
 *
 * @throws {Error} naming every provider that failed and why, when none could create the session.
 * @example
 * ```ts ignore
 * import { loadOnnxModel } from "@ldm/core/onnx";
 * const unet = await loadOnnxModel("models/builtin/ldm-text2im-tiny/unet/model.onnx", { name: "unet" });
 * console.log(unet.executionProvider, unet.inputs.map((i) => `${i.name}: ${i.type}`));
 * await unet.dispose();
 * ```
 */
export async function loadOnnxModel(
  source: string | Uint8Array,
  options: LoadOnnxModelOptions = {},
): Promise<OnnxModel> {
  const providers = options.executionProviders ?? defaultExecutionProviders();
  const name = options.name ?? "model";
  const logger = options.logger ?? silentLogger;
  const known = options.knownFailures ?? new Map<string, string>();
  const intraOp = options.intraOpNumThreads ?? 0;
  if (!Number.isInteger(intraOp) || intraOp < 0) {
    throw new RangeError(`intraOpNumThreads must be an integer >= 0: got ${intraOp}`);
  }
  if (providers.length === 0) throw new RangeError("executionProviders must name at least one provider: got []");
  const tuning = tuningOptions(options);
  const compiled = new Set(availableExecutionProviders().map((b) => b.name));
  const failures: string[] = [];
  const target = options.optimizedFor ?? null;
  const gpuTarget = target !== null && GPU_TARGETS.includes(target) ? target : null;
  /** Providers that failed for want of a kernel of the graph's target, with the operator. */
  const wrongProvider: { provider: string; op: string; node: string }[] = [];
  for (const provider of providers) {
    let reason = known.get(provider);
    if (reason === undefined && !compiled.has(provider)) {
      reason = `not in this onnxruntime-node build (it has: ${[...compiled].join(", ")})`;
      known.set(provider, reason);
    }
    if (reason !== undefined) {
      failures.push(`${provider}: ${reason}`);
      logger.warn(`${name}: skipped execution provider ${provider}: ${reason}`, { component: name, provider, reason });
      continue;
    }
    const started = performance.now();
    try {
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        ...tuning,
        executionProviders: [provider],
        ...(intraOp > 0 ? { intraOpNumThreads: intraOp } : {}),
      };
      const session = typeof source === "string"
        ? await ort.InferenceSession.create(source, sessionOptions)
        : await ort.InferenceSession.create(source, sessionOptions);
      const ms = Math.round(performance.now() - started);
      logger.info(`${name}: session created on ${provider} in ${ms} ms`, { component: name, provider, ms });
      if (gpuTarget !== null && provider !== gpuTarget) {
        logger.warn(`${name}: graph optimised for ${gpuTarget} runs on ${provider} (it has no ${gpuTarget}-only op)`, {
          component: name,
          provider,
          target: gpuTarget,
        });
      }
      return wrap(session, provider, name);
    } catch (e) {
      const raw = errorMessage(e);
      const kernel = missingKernel(raw);
      if (gpuTarget !== null && provider !== gpuTarget && kernel !== undefined) {
        wrongProvider.push({ provider, op: kernel.op, node: kernel.node });
      }
      const message = explainProviderFailure(provider, raw);
      if (isEnvironmentFailure(raw)) known.set(provider, message);
      failures.push(`${provider}: ${message}`);
      logger.warn(`${name}: skipped execution provider ${provider}: ${message}`, {
        component: name,
        provider,
        reason: message,
        error: raw,
      });
    }
  }
  if (gpuTarget !== null && wrongProvider.length > 0) {
    const w = wrongProvider[0]!;
    const targetFailure = failures.find((f) => f.startsWith(`${gpuTarget}: `));
    const why = targetFailure !== undefined
      ? `it fell back to ${w.provider} because ${targetFailure}`
      : `${gpuTarget} is not in executionProviders [${providers.join(", ")}]`;
    const others = failures.filter((f) => !f.startsWith(`${gpuTarget}: `) && !f.startsWith(`${w.provider}: `));
    throw new Error(
      `${name}: the graph is optimised for ${gpuTarget} (ldm_onnx.json optimizations.target "${gpuTarget}") and ` +
        `cannot run on the ${w.provider} execution provider, which has no kernel for its fused operator ${w.op} ` +
        `(node '${w.node}'); ${why}. Load it with executionProviders ["${gpuTarget}"] on a machine where that ` +
        `provider works, or convert the model without --optimize-for ${gpuTarget} (or with --optimize-for cpu) to ` +
        `run it on ${w.provider}.${others.length > 0 ? ` Other providers: ${others.join("; ")}` : ""}`,
    );
  }
  throw new Error(
    `Could not create an ONNX session for ${name} with any of [${providers.join(", ")}]: ${failures.join("; ")}`,
  );
}

function describeFeed(name: string, v: OnnxFeed): string {
  return v instanceof Tensor ? `${name}: float32 [${v.shape.join(", ")}]` : `${name}: int64 [${v.shape.join(", ")}]`;
}

/** Checks a feed against the input's metadata and converts it to an `ort.Tensor`. */
function toOrtTensor(model: string, info: OnnxValueInfo, v: OnnxFeed): ort.Tensor {
  const shape = v.shape;
  if (info.shape.length > 0 || info.type !== "unknown") {
    if (shape.length !== info.shape.length) {
      throw new TypeError(
        `${model} input '${info.name}' needs rank ${info.shape.length} [${info.shape.join(", ")}]: got [${
          shape.join(", ")
        }]`,
      );
    }
    info.shape.forEach((d, i) => {
      if (typeof d === "number" && d !== shape[i]) {
        throw new TypeError(
          `${model} input '${info.name}' needs dimension ${i} = ${d} ([${info.shape.join(", ")}]): got [${
            shape.join(", ")
          }]`,
        );
      }
    });
  }
  if (info.type === "int64") {
    if (v instanceof Tensor) {
      const out = new BigInt64Array(v.size);
      for (let i = 0; i < v.size; i++) {
        const x = v.data[i]!;
        if (!Number.isInteger(x)) {
          throw new TypeError(
            `${model} input '${info.name}' is int64 but the value ${x} at index ${i} is not an integer ` +
              `(a graph exported with an integer timestep cannot take fractional LMS/Euler timesteps)`,
          );
        }
        out[i] = BigInt(x);
      }
      return new ort.Tensor("int64", out, [...shape]);
    }
    return new ort.Tensor("int64", v.int64, [...shape]);
  }
  if (info.type === "float32" || info.type === "unknown") {
    if (v instanceof Tensor) return new ort.Tensor("float32", v.data, [...shape]);
    if (info.type === "unknown") return new ort.Tensor("int64", v.int64, [...shape]);
    throw new TypeError(`${model} input '${info.name}' is float32: got an int64 feed`);
  }
  throw new TypeError(
    `${model} input '${info.name}' has element type ${info.type}; only float32 and int64 inputs can be fed ` +
      `(export fp16 graphs with float32 inputs and outputs)`,
  );
}

function wrap(session: ort.InferenceSession, provider: string, name: string): OnnxModel {
  let disposed = false;
  const inputs = session.inputMetadata.map(toInfo);
  const outputs = session.outputMetadata.map(toInfo);
  return {
    name,
    inputs,
    outputs,
    executionProvider: provider,
    async run(feeds) {
      if (disposed) throw new Error(`${name}: OnnxModel.run() called after dispose()`);
      const given = Object.keys(feeds);
      const unknown = given.filter((k) => !inputs.some((i) => i.name === k));
      if (unknown.length > 0) {
        throw new TypeError(
          `${name} has no input named ${unknown.map((k) => `'${k}'`).join(", ")} (inputs: ${
            inputs.map((i) => i.name).join(", ")
          })`,
        );
      }
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const info of inputs) {
        const v = feeds[info.name];
        if (v === undefined) {
          throw new TypeError(
            `${name} needs input '${info.name}' (${info.type} [${info.shape.join(", ")}]); got: ${given.join(", ")}`,
          );
        }
        ortFeeds[info.name] = toOrtTensor(name, info, v);
      }
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await session.run(ortFeeds);
      } catch (e) {
        const described = Object.entries(feeds).map(([k, v]) => describeFeed(k, v)).join(", ");
        throw new Error(`${name} failed on ${provider} with feeds {${described}}: ${errorMessage(e)}`);
      }
      const result: Record<string, Tensor> = {};
      for (const [key, t] of Object.entries(out)) {
        if (t.type !== "float32") {
          throw new TypeError(`${name} output '${key}' is ${t.type}; this project's graphs return float32`);
        }
        result[key] = new Tensor(t.data as Float32Array, t.dims);
      }
      return result;
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await session.release();
    },
  };
}

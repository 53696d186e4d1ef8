/**
 * The only module that imports onnxruntime-node. Everything else talks to ONNX graphs through {@linkcode OnnxModel}.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { Tensor } from "../tensor/mod.ts";

/** Element types a graph input or output can have, as this project uses them. */
export type OnnxElementType = "float32" | "float16" | "int64" | "int32" | "bool" | "string" | "unknown";

/** Name, element type and shape (numbers, symbolic names or undefined) of one graph input or output. */
export interface OnnxValueInfo {
  readonly name: string;
  readonly type: OnnxElementType;
  readonly shape: readonly (number | string | undefined)[];
}

/** An int64 feed: ids for the text encoder. Values must be safe integers. */
export interface Int64Feed {
  readonly int64: BigInt64Array;
  readonly shape: readonly number[];
}

/** A value to feed a graph input: a float32 {@linkcode Tensor} or an int64 array. */
export type OnnxFeed = Tensor | Int64Feed;

/** Options for {@linkcode loadOnnxModel}. */
export interface LoadOnnxModelOptions {
  /**
   * Execution providers to try, in order, e.g. `["webgpu", "cpu"]`.
   * @default ["cpu"]
   */
  executionProviders?: readonly string[];
  /** Threads for the CPU provider's operators; 0 lets onnxruntime decide. @default 0 */
  intraOpNumThreads?: number;
}

/** A loaded ONNX graph. Release it with `dispose()`. */
export interface OnnxModel {
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  /** The execution provider the session was created with. */
  readonly executionProvider: string;
  /** Runs the graph. Float outputs come back as {@linkcode Tensor}s keyed by output name. */
  run(feeds: Readonly<Record<string, OnnxFeed>>): Promise<Record<string, Tensor>>;
  /** Releases the native session. Calling `run` afterwards throws. */
  dispose(): Promise<void>;
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

/**
 * Loads an ONNX graph from a file path or bytes with the first execution provider that works.
 *
 * @throws {Error} naming every provider that failed and why, when none could create the session.
 */
export async function loadOnnxModel(
  source: string | Uint8Array,
  options: LoadOnnxModelOptions = {},
): Promise<OnnxModel> {
  const providers = options.executionProviders ?? ["cpu"];
  const failures: string[] = [];
  for (const provider of providers) {
    try {
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: [provider],
        ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
      };
      const session = typeof source === "string"
        ? await ort.InferenceSession.create(source, sessionOptions)
        : await ort.InferenceSession.create(source, sessionOptions);
      return wrap(session, provider);
    } catch (e) {
      failures.push(`${provider}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new Error(`Could not create an ONNX session with any of [${providers.join(", ")}]: ${failures.join("; ")}`);
}

function wrap(session: ort.InferenceSession, provider: string): OnnxModel {
  let disposed = false;
  return {
    inputs: session.inputMetadata.map(toInfo),
    outputs: session.outputMetadata.map(toInfo),
    executionProvider: provider,
    async run(feeds) {
      if (disposed) throw new Error("OnnxModel.run() called after dispose()");
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, v] of Object.entries(feeds)) {
        ortFeeds[name] = v instanceof Tensor
          ? new ort.Tensor("float32", v.data, [...v.shape])
          : new ort.Tensor("int64", v.int64, [...v.shape]);
      }
      const out = await session.run(ortFeeds);
      const result: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(out)) {
        if (t.type !== "float32") {
          throw new TypeError(`ONNX output '${name}' is ${t.type}; this project's graphs return float32`);
        }
        result[name] = new Tensor(t.data as Float32Array, t.dims);
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

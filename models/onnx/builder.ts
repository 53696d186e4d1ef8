/**
 * A small typed DSL that builds ONNX graphs (default domain, opset 17; onnxruntime's com.microsoft contrib operators
 * when a node asks for that domain) from diffusers checkpoints, reading weights lazily from a {@linkcode WeightSource}
 * and streaming them to disk when the graph is saved. A builder also carries the graph variant being built
 * ({@linkcode GraphBuilder.optimizations}, {@linkcode GraphBuilder.fixedDims}) for the blocks to read.
 *
 * Precision: a builder has a *weight type* (how float weights are stored) and a *compute type* (the element type of
 * float activations). `dtype: "fp32"` stores and computes float32. `dtype: "fp16"` stores float16 and computes float16
 * unless `upcast` is set (diffusers' `force_upcast`: weights rounded to fp16, compute in float32). Graph inputs and
 * outputs are always float32 or int64: onnxruntime-node cannot take float16 tensors from Deno (see
 * shared/notes/gpu.md), so callers cast inputs with {@linkcode GraphBuilder.toCompute} and {@linkcode
 * GraphBuilder.output} casts float16 results back. Which ops stay in float32 is decided by the blocks that emit them
 * (normalisation statistics, softmax, timestep embedding, Resize scales), not by post-processing.
 *
 * @module
 */
import { toFloat16 } from "./_fp16.ts";
import {
  checkFixedDims,
  type GraphOptimizations,
  isPlain,
  type OptimizeOptions,
  resolveOptimizations,
} from "./optimize.ts";
import {
  concatBytes,
  DATA_TYPE,
  ELEMENT_SIZE,
  type ElementType,
  elementTypeOfCode,
  FIELD,
  type IAttributeProto,
  type IModelProto,
  type INodeProto,
  type ITensorProto,
  type IValueInfoProto,
  lengthPrefix,
  LITTLE_ENDIAN,
  onnx,
} from "./_proto.ts";

export type { ElementType } from "./_proto.ts";

/** A dimension of a graph input or output: a fixed size or a symbolic name such as `"batch"`. */
export type Dim = number | string;

/** Float element types activations can have. */
export type FloatType = "float32" | "float16";

/** Model precision of a converted graph. */
export type ModelDtype = "fp32" | "fp16";

/** A value (tensor) in a graph under construction. Only values made by the same builder may be used as inputs. */
export interface Value {
  /** The ONNX value name. */
  readonly name: string;
  /** Its element type. */
  readonly type: ElementType;
}

/** What a weight source says about one tensor. */
export interface WeightInfo {
  /** Stored dtype, e.g. `"F32"`, `"F16"`, `"BF16"` (informational: {@linkcode WeightSource.readFloat32} converts). */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/**
 * Where the builder reads weights from: the subset of the checkpoint `WeightStore` it needs. Names are the
 * checkpoint's state-dict keys (e.g. `"decoder.conv_in.weight"`). Data is read only when the graph is serialised.
 */
export interface WeightSource {
  has(name: string): boolean;
  /** @throws when `name` is not in the source. */
  info(name: string): WeightInfo;
  /** The tensor's elements as float32, row-major, `product(info(name).shape)` of them. */
  readFloat32(name: string): Promise<Float32Array>;
}

/** A float attribute whose value happens to be an integer (`{ float: 1 }`). */
export interface FloatAttribute {
  readonly float: number;
}
/** A list-of-floats attribute whose values happen to be integers. */
export interface FloatsAttribute {
  readonly floats: readonly number[];
}
/** A tensor attribute (e.g. `ConstantOfShape.value`). */
export interface TensorAttribute {
  readonly tensor: {
    readonly type: ElementType;
    readonly shape: readonly number[];
    readonly values: readonly number[];
  };
}
/**
 * An attribute value. Numbers are INT when they are integers and the attribute name is not a known float attribute
 * (`epsilon`, `alpha`, `beta`, ...), FLOAT otherwise; arrays likewise (INTS/FLOATS); strings STRING.
 */
export type AttributeValue =
  | number
  | string
  | readonly number[]
  | readonly string[]
  | FloatAttribute
  | FloatsAttribute
  | TensorAttribute;

/** Attributes of a node by name. `undefined` entries are left out. */
export type Attributes = Readonly<Record<string, AttributeValue | undefined>>;

/** Options of {@linkcode GraphBuilder.op}. */
export interface OpOptions {
  /**
   * Node name. Use the diffusers module path (`"down_blocks.0.resnets.1.conv1"`); made unique with a `_N` suffix if
   * taken. Default: `<scope>/<OpType>`.
   */
  name?: string;
  /** Element type of the output when the builder's inference (first input's type, Shape → int64, ...) is wrong. */
  outputType?: ElementType;
  /**
   * Operator domain, e.g. {@linkcode MS_DOMAIN} for onnxruntime's contrib operators (`MultiHeadAttention`,
   * `GroupNorm`, ...). The model then imports that domain at version 1. Default: the ONNX default domain.
   */
  domain?: string;
}

/** The domain of onnxruntime's contrib operators (`onnxruntime/core/graph/contrib_ops`). */
export const MS_DOMAIN = "com.microsoft";

/** Options of {@linkcode GraphBuilder.weight}. */
export interface WeightOptions {
  /**
   * Element type of the returned value. Default: the builder's compute type, stored as its weight type (a Cast
   * follows when they differ, i.e. fp16 weights with `upcast`). Given explicitly, the weight is stored in that type
   * (e.g. float32 norm parameters in an fp16 graph).
   */
  type?: FloatType;
  /** Store the 2-D weight transposed (`[out, in]` → `[in, out]`, for `MatMul` of a torch `Linear`). */
  transpose?: boolean;
  /**
   * Shape to give the initializer in the graph when it differs from the checkpoint's but holds the same elements in
   * the same order (e.g. a GroupNorm weight `[C]` stored as `[C, 1, 1]` to broadcast over `[N, C, H, W]`).
   */
  storeAs?: readonly number[];
  /** Other checkpoint shapes with the same elements in the same order that are accepted (e.g. `[C, C, 1, 1]`). */
  acceptShapes?: readonly (readonly number[])[];
  /** Other checkpoint names to try, in order, when `name` is absent (deprecated diffusers parameter names). */
  aliases?: readonly string[];
  /**
   * Take only rows `[start, end)` of the checkpoint tensor's first axis (before `transpose`/`storeAs`): e.g. the
   * `hidden` and `gate` halves of a GEGLU projection as two weights, so the graph needs no Split. `shape` is still
   * the whole checkpoint shape.
   */
  rows?: readonly [number, number];
  /**
   * Store a tensor computed from the checkpoint tensor instead of the tensor itself (e.g. the 2×2 phase kernels of a
   * sub-pixel upsampling convolution derived from a 3×3 kernel). `fn` gets the checkpoint values (row-major, `shape`)
   * when the graph is serialised and returns `product(derive.shape)` values; `name` tells derived tensors of one
   * checkpoint tensor apart (it becomes part of the initializer name). Not combinable with `transpose`, `storeAs` or
   * `rows`.
   */
  derive?: {
    readonly name: string;
    readonly shape: readonly number[];
    readonly fn: (values: Float32Array) => Float32Array;
  };
}

/** Options of {@linkcode GraphBuilder}'s constructor. */
export interface GraphBuilderOptions {
  /** Graph name (GraphProto.name), e.g. `"vae_decoder"`. */
  name: string;
  /** Where weights come from. Required as soon as {@linkcode GraphBuilder.weight} is called. */
  weights?: WeightSource;
  /** Weight precision. @default "fp32" */
  dtype?: ModelDtype;
  /** With `dtype: "fp16"`, compute in float32 anyway (diffusers' `force_upcast`). Ignored for fp32. @default false */
  upcast?: boolean;
  /** Default-domain opset version (≥ 17: LayerNormalization). @default 17 */
  opset?: number;
  /** GraphProto.doc_string. */
  docString?: string;
  /** ModelProto.metadata_props. */
  metadata?: Readonly<Record<string, string>>;
  /**
   * Contrib-operator fusions for one execution provider (see `optimize.ts`); blocks read the resolved choices from
   * {@linkcode GraphBuilder.optimizations}. Default: none, the plain portable graph.
   */
  optimize?: OptimizeOptions | GraphOptimizations | null;
  /**
   * Sizes for symbolic input/output dimensions, e.g. `{ batch: 2, height: 32, width: 32, sequence: 77 }`: inputs
   * declared with those names get fixed sizes, so onnxruntime can fold every shape computation and plan memory once.
   * Names no input uses are ignored (one map can serve every graph of a model).
   */
  fixedDims?: Readonly<Record<string, number>>;
}

/** Options of {@linkcode GraphBuilder.save}. */
export interface SaveOptions {
  /**
   * When all weights together exceed this many bytes, tensors of 1 KiB or more go to an external data file beside the
   * graph (ONNX external-data convention); otherwise everything is embedded. Protobuf cannot parse messages over 2 GiB,
   * so the default leaves some room below that. @default 2_000_000_000
   */
  externalDataThreshold?: number;
  /** File name of the external data, relative to the graph's folder. @default `<graph file name>_data` */
  externalDataName?: string;
}

/** What {@linkcode GraphBuilder.save} wrote. */
export interface SaveResult {
  /** Path of the `.onnx` file. */
  readonly path: string;
  /** Path of the external data file, or null when every weight is embedded. */
  readonly externalDataPath: string | null;
  /** Bytes of weight data written (embedded and external). */
  readonly weightBytes: number;
}

/** Name, element type and dimensions (absent: unknown shape) of a graph input or output. */
export interface GraphValueSpec {
  readonly name: string;
  readonly type: ElementType;
  readonly dims?: readonly Dim[];
}

/** The inputs and outputs of a graph, in declaration order. */
export interface GraphSignature {
  readonly inputs: readonly GraphValueSpec[];
  readonly outputs: readonly GraphValueSpec[];
}

/** Counts describing a graph, for logs and tests. */
export interface GraphStats {
  readonly nodes: number;
  readonly initializers: number;
  /** Bytes of weight data the graph will contain once saved (checkpoint weights and constants). */
  readonly weightBytes: number;
  /** Number of nodes per op type (contrib operators as `"com.microsoft.MultiHeadAttention"`). */
  readonly opCounts: Readonly<Record<string, number>>;
}

/** Attribute names whose numeric values are FLOAT in the ONNX operators this project uses. */
const FLOAT_ATTRIBUTES = new Set([
  "alpha",
  "beta",
  "gamma",
  "epsilon",
  "bias",
  "lambd",
  "momentum",
  "spatial_scale",
  "extrapolation_value",
  "cubic_coeff_a",
  "value_float",
  "value_floats",
]);

/** Ops whose output is int64 whatever their input. */
const INT64_OUTPUT_OPS = new Set(["Shape", "Size", "ArgMax", "ArgMin", "NonZero"]);
/** Ops whose output is bool. */
const BOOL_OUTPUT_OPS = new Set([
  "Equal",
  "Less",
  "Greater",
  "LessOrEqual",
  "GreaterOrEqual",
  "Not",
  "And",
  "Or",
  "Xor",
  "IsNaN",
  "IsInf",
]);

/** Tensors of at least this many bytes go to the external data file when external data is used. */
const EXTERNAL_MIN_BYTES = 1024;
/** Alignment of tensors in the external data file, so that runtimes may memory-map them. */
const EXTERNAL_ALIGNMENT = 4096;
/** Largest embedded weight total `toBytes()` accepts (protobuf's 2 GiB message limit, minus room for the graph). */
const EMBEDDED_LIMIT = 2_000_000_000;

interface NodeRecord {
  readonly proto: INodeProto;
}

interface LazyInitializer {
  readonly name: string;
  readonly source: string;
  readonly sourceShape: readonly number[];
  /** Rows `[start, end)` of the first axis, or null for the whole tensor. */
  readonly rows: readonly [number, number] | null;
  /** Computes the stored values from the checkpoint's, or null. */
  readonly derive: ((values: Float32Array) => Float32Array) | null;
  readonly shape: readonly number[];
  readonly type: FloatType;
  readonly transpose: boolean;
  readonly byteLength: number;
}

interface ConstInitializer {
  readonly name: string;
  readonly type: ElementType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function shapeString(shape: readonly Dim[]): string {
  return `[${shape.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isElementType(t: unknown): t is ElementType {
  return typeof t === "string" && Object.hasOwn(DATA_TYPE, t);
}

/** Little-endian bytes of typed array data (copied only on a big-endian machine, which ONNX raw_data forbids). */
function rawBytes(a: Float32Array | Float16Array | BigInt64Array | Int32Array | Uint8Array): Uint8Array {
  if (!LITTLE_ENDIAN && a.BYTES_PER_ELEMENT > 1) {
    throw new Error("ONNX raw_data is little-endian; this builder does not support big-endian machines");
  }
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function encodeValues(type: ElementType, values: ArrayLike<number> | BigInt64Array): Uint8Array {
  switch (type) {
    case "float32":
      return rawBytes(values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>));
    case "float16":
      return rawBytes(toFloat16(Float32Array.from(values as ArrayLike<number>), "constant"));
    case "int64": {
      if (values instanceof BigInt64Array) return rawBytes(values);
      const out = new BigInt64Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = (values as ArrayLike<number>)[i]!;
        if (!Number.isSafeInteger(v)) {
          throw new RangeError(`int64 constant value ${i} must be a safe integer: got ${v}`);
        }
        out[i] = BigInt(v);
      }
      return rawBytes(out);
    }
    case "int32":
      return rawBytes(Int32Array.from(values as ArrayLike<number>));
    case "bool":
      return rawBytes(Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0)));
  }
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c]!;
  }
  return out;
}

function valueInfo(name: string, type: ElementType, dims: readonly Dim[] | undefined): IValueInfoProto {
  const shape = dims ? { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } : null;
  return { name, type: { tensorType: shape ? { elemType: DATA_TYPE[type], shape } : { elemType: DATA_TYPE[type] } } };
}

/**
 * Builds one ONNX graph. Typical use:
 *
 * @example Build and serialise a one-op graph
 * ```ts
 * import { GraphBuilder } from "@ldm/models/onnx";
 * const b = new GraphBuilder({ name: "double" });
 * const x = b.input("x", "float32", ["batch", 4]);
 * b.output(b.op("Mul", [x, b.scalar(2, "float32")]), "y", ["batch", 4]);
 * const bytes = await b.toBytes();
 * console.log(bytes.length > 0);
 * ```
 */
export class GraphBuilder {
  /** Weight precision. */
  readonly dtype: ModelDtype;
  /** Element type float activations have inside the graph. */
  readonly computeType: FloatType;
  /** Element type checkpoint weights are stored as (unless a weight asks for another). */
  readonly weightType: FloatType;
  /** Default-domain opset version. */
  readonly opset: number;
  /** The fusions blocks may emit ({@linkcode PLAIN_GRAPH} unless `optimize` was given). */
  readonly optimizations: GraphOptimizations;
  /** Sizes that replace symbolic dimensions of inputs and outputs. */
  readonly fixedDims: Readonly<Record<string, number>>;
  readonly #name: string;
  readonly #weights: WeightSource | undefined;
  readonly #docString: string;
  readonly #metadata: Readonly<Record<string, string>>;
  readonly #nodes: NodeRecord[] = [];
  readonly #inputs: IValueInfoProto[] = [];
  readonly #outputs: IValueInfoProto[] = [];
  readonly #signature: { inputs: GraphValueSpec[]; outputs: GraphValueSpec[] } = { inputs: [], outputs: [] };
  readonly #lazy: LazyInitializer[] = [];
  readonly #consts: ConstInitializer[] = [];
  /** Every value name in the graph (inputs, initializers, node outputs). */
  readonly #valueNames = new Set<string>();
  readonly #nodeNames = new Set<string>();
  readonly #weightCache = new Map<string, Value>();
  readonly #constCache = new Map<string, Value>();
  readonly #scopes: string[] = [];
  readonly #nextSuffix = new Map<string, number>();
  /** Non-default operator domains used by nodes (imported at version 1). */
  readonly #domains = new Set<string>();

  /**
   * @throws {RangeError} on an unknown dtype or an opset below 17.
   */
  constructor(options: GraphBuilderOptions) {
    const { name, weights, dtype = "fp32", upcast = false, opset = 17, docString = "" } = options;
    if (dtype !== "fp32" && dtype !== "fp16") {
      throw new RangeError(`dtype must be "fp32" or "fp16": got ${JSON.stringify(dtype)}`);
    }
    if (!Number.isInteger(opset) || opset < 17) {
      throw new RangeError(`opset must be an integer >= 17 (LayerNormalization): got ${opset}`);
    }
    this.#name = name;
    this.#weights = weights;
    this.dtype = dtype;
    this.weightType = dtype === "fp16" ? "float16" : "float32";
    this.computeType = dtype === "fp16" && !upcast ? "float16" : "float32";
    this.opset = opset;
    this.optimizations = resolveOptimizations(options.optimize);
    this.fixedDims = checkFixedDims(options.fixedDims);
    this.#docString = docString;
    const metadata = { ...options.metadata };
    // Record a variant in the model so that loaders and benchmarks can tell it from the plain graph.
    if (!isPlain(this.optimizations)) metadata["ldm_optimizations"] = JSON.stringify(this.optimizations);
    if (Object.keys(this.fixedDims).length > 0) metadata["ldm_fixed_dims"] = JSON.stringify(this.fixedDims);
    this.#metadata = metadata;
  }

  /** Graph name. */
  get name(): string {
    return this.#name;
  }

  // ---------------------------------------------------------------------------------------------- naming

  /**
   * Runs `fn` with `name` appended to the naming scope: unnamed nodes created inside are called `<scope>/<OpType>`.
   * Blocks use their diffusers module path as scope (`"decoder.mid_block.attentions.0"`).
   */
  scope<T>(name: string, fn: () => T): T {
    this.#scopes.push(name);
    try {
      return fn();
    } finally {
      this.#scopes.pop();
    }
  }

  /** The current naming scope (`""` at top level). */
  get currentScope(): string {
    return this.#scopes.at(-1) ?? "";
  }

  /** `base`, or `base_N` with the first free N (remembered per base, so naming stays linear in graph size). */
  #unique(taken: Set<string>, base: string): string {
    let name = base;
    let i = this.#nextSuffix.get(base) ?? 1;
    while (taken.has(name)) name = `${base}_${i++}`;
    this.#nextSuffix.set(base, i);
    taken.add(name);
    return name;
  }

  #uniqueNodeName(base: string): string {
    return this.#unique(this.#nodeNames, base);
  }

  #uniqueValueName(base: string): string {
    return this.#unique(this.#valueNames, base);
  }

  #check(v: Value | null | undefined, what: string): string {
    if (v === null || v === undefined) return "";
    if (!this.#valueNames.has(v.name)) {
      throw new TypeError(`${what}: value '${v.name}' does not belong to graph '${this.#name}'`);
    }
    return v.name;
  }

  // ---------------------------------------------------------------------------------------------- inputs/outputs

  /**
   * Declares a graph input. Float inputs must be float32 (see the module doc); cast them with
   * {@linkcode GraphBuilder.toCompute}.
   *
   * @throws {TypeError} on a float16 input or a name already used.
   */
  input(name: string, type: ElementType, dims: readonly Dim[]): Value {
    if (type === "float16") {
      throw new TypeError(`input '${name}': graph inputs must be float32, not float16 (cast inside the graph)`);
    }
    if (this.#valueNames.has(name)) throw new TypeError(`input '${name}': the name is already used in the graph`);
    dims = this.#fix(dims);
    this.#valueNames.add(name);
    this.#inputs.push(valueInfo(name, type, dims));
    this.#signature.inputs.push({ name, type, dims: [...dims] });
    return { name, type };
  }

  /**
   * Declares `value` a graph output called `name` with `dims` (left out: shape unknown, rank included). float16 values
   * are cast to float32 first; a value with another name is renamed through an Identity node.
   *
   * @throws {TypeError} when `name` is already a value of the graph other than `value`, or already an output.
   */
  output(value: Value, name: string, dims?: readonly Dim[]): void {
    this.#check(value, `output '${name}'`);
    if (dims) dims = this.#fix(dims);
    if (this.#outputs.some((o) => o.name === name)) throw new TypeError(`output '${name}' is declared twice`);
    let type = value.type;
    if (value.name !== name || type === "float16") {
      if (this.#valueNames.has(name)) {
        throw new TypeError(`output '${name}': the name is already used by another value of the graph`);
      }
      this.#valueNames.add(name);
      const nodeName = this.#uniqueNodeName(`output/${name}`);
      const proto: INodeProto = type === "float16"
        ? { opType: "Cast", name: nodeName, input: [value.name], output: [name], attribute: [intAttr("to", 1)] }
        : { opType: "Identity", name: nodeName, input: [value.name], output: [name] };
      this.#nodes.push({ proto });
      if (type === "float16") type = "float32";
    }
    this.#outputs.push(valueInfo(name, type, dims));
    this.#signature.outputs.push(dims ? { name, type, dims: [...dims] } : { name, type });
  }

  /** `dims` with symbolic names that {@linkcode GraphBuilder.fixedDims} sizes replaced by those sizes. */
  #fix(dims: readonly Dim[]): Dim[] {
    return dims.map((d) => (typeof d === "string" && Object.hasOwn(this.fixedDims, d) ? this.fixedDims[d]! : d));
  }

  /** The graph's inputs and outputs as declared so far (copies). */
  get signature(): GraphSignature {
    const copy = (v: GraphValueSpec): GraphValueSpec => (v.dims ? { ...v, dims: [...v.dims] } : { ...v });
    return { inputs: this.#signature.inputs.map(copy), outputs: this.#signature.outputs.map(copy) };
  }

  // ---------------------------------------------------------------------------------------------- weights

  /** Whether the weight source has `name` (false without a source). */
  hasWeight(name: string): boolean {
    return this.#weights?.has(name) ?? false;
  }

  /**
   * A checkpoint weight as an initializer, checked now against `shape` and read only when the graph is serialised.
   * Asking twice for the same weight in the same form returns the same value.
   *
   * @param name the checkpoint name (`"encoder.conv_in.weight"`), also the initializer name.
   * @param shape the shape the graph expects, as the checkpoint stores it (torch layout).
   * @throws {Error} naming the weight when there is no weight source, the weight is missing (listing the aliases
   *   tried) or its shape differs (expected and actual).
   */
  weight(name: string, shape: readonly number[], options: WeightOptions = {}): Value {
    const source = this.#weights;
    if (!source) throw new Error(`graph '${this.#name}' needs weight '${name}' but was built without a weight source`);
    const candidates = [name, ...(options.aliases ?? [])];
    const found = candidates.find((c) => source.has(c));
    if (found === undefined) {
      const tried = candidates.length > 1 ? ` (also tried ${candidates.slice(1).map((c) => `'${c}'`).join(", ")})` : "";
      throw new Error(`weight '${name}' is missing from the checkpoint${tried}; expected shape ${shapeString(shape)}`);
    }
    const info = source.info(found);
    const accepted = [shape, ...(options.acceptShapes ?? [])];
    if (!accepted.some((s) => sameShape(info.shape, s))) {
      const alt = accepted.length > 1 ? ` (or ${accepted.slice(1).map(shapeString).join(", ")})` : "";
      throw new Error(
        `weight '${found}' has shape ${shapeString(info.shape)}; expected ${shapeString(shape)}${alt}`,
      );
    }
    const transpose = options.transpose ?? false;
    if (transpose && shape.length !== 2) {
      throw new TypeError(`weight '${found}': transpose needs a 2-D shape, got ${shapeString(shape)}`);
    }
    const rows = options.rows ?? null;
    if (rows !== null) {
      const [start, end] = rows;
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start || end > shape[0]!) {
        throw new RangeError(
          `weight '${found}': rows must be [start, end) with 0 <= start < end <= ${shape[0]}: got [${rows.join(", ")}]`,
        );
      }
    }
    const derive = options.derive ?? null;
    if (derive !== null && (transpose || rows !== null || options.storeAs)) {
      throw new TypeError(`weight '${found}': derive cannot be combined with transpose, rows or storeAs`);
    }
    const sliced = derive !== null ? derive.shape : rows === null ? shape : [rows[1] - rows[0], ...shape.slice(1)];
    let stored: readonly number[] = transpose ? [sliced[1]!, sliced[0]!] : options.storeAs ?? sliced;
    if (transpose && options.storeAs) stored = options.storeAs;
    if (product(stored) !== product(sliced)) {
      throw new TypeError(
        `weight '${found}': storeAs ${shapeString(stored)} does not hold the ${product(sliced)} elements of ${
          shapeString(sliced)
        }`,
      );
    }
    const valueType = options.type ?? this.computeType;
    const storedType = options.type ?? this.weightType;
    const key = `${found}|${storedType}|${valueType}|${transpose}|${stored.join(",")}|${rows?.join("-") ?? ""}|${
      derive?.name ?? ""
    }`;
    const cached = this.#weightCache.get(key);
    if (cached) return cached;
    const initName = this.#uniqueValueName(
      derive !== null ? `${found}/${derive.name}` : rows === null ? found : `${found}[${rows[0]}:${rows[1]}]`,
    );
    this.#lazy.push({
      name: initName,
      source: found,
      sourceShape: [...info.shape],
      rows: rows === null ? null : [rows[0], rows[1]],
      derive: derive?.fn ?? null,
      shape: [...stored],
      type: storedType,
      transpose,
      byteLength: product(stored) * ELEMENT_SIZE[storedType],
    });
    let value: Value = { name: initName, type: storedType };
    if (valueType !== storedType) value = this.cast(value, valueType, { name: `${initName}/Cast` });
    this.#weightCache.set(key, value);
    return value;
  }

  // ---------------------------------------------------------------------------------------------- constants

  /**
   * A constant tensor embedded in the graph. Small constants with equal contents are shared.
   *
   * @throws {TypeError} when the number of values does not match `shape`.
   */
  constant(
    values: ArrayLike<number> | BigInt64Array,
    shape: readonly number[],
    type: ElementType,
    options: { name?: string } = {},
  ): Value {
    if (!isElementType(type)) throw new TypeError(`constant: unknown element type ${JSON.stringify(type)}`);
    if (values.length !== product(shape)) {
      throw new TypeError(`constant: ${values.length} values do not fill shape ${shapeString(shape)}`);
    }
    const bytes = encodeValues(type, values);
    const small = bytes.length <= 256 && options.name === undefined;
    const key = small ? `${type}|${shape.join(",")}|${Array.from(bytes).join(",")}` : "";
    if (small) {
      const cached = this.#constCache.get(key);
      if (cached) return cached;
    }
    const name = this.#uniqueValueName(options.name ?? `const/${this.currentScope || "graph"}`);
    this.#consts.push({ name, type, shape: [...shape], bytes: bytes.slice() });
    const value: Value = { name, type };
    if (small) this.#constCache.set(key, value);
    return value;
  }

  /** A 1-D int64 constant (shapes, axes, pads, split sizes). */
  constInt64(values: readonly number[]): Value {
    return this.constant(values, [values.length], "int64");
  }

  /** A scalar (0-D) constant of `type`, by default the compute type. */
  scalar(value: number, type: ElementType = this.computeType): Value {
    return this.constant([value], [], type);
  }

  // ---------------------------------------------------------------------------------------------- nodes

  /**
   * Adds a node with one output and returns that output.
   *
   * @param opType an ONNX operator (`"Conv"`, `"MatMul"`, ...) of the default domain unless `options.domain` says
   *   otherwise.
   * @param inputs the node's inputs; `null` leaves an optional input empty.
   * @throws {TypeError} when an input does not belong to this graph.
   */
  op(opType: string, inputs: readonly (Value | null)[], attributes: Attributes = {}, options: OpOptions = {}): Value {
    return this.#node(
      opType,
      inputs,
      1,
      attributes,
      options.name,
      options.outputType ? [options.outputType] : [],
      options.domain,
    )[0]!;
  }

  /**
   * Adds a node with `outputs` outputs (e.g. Split) and returns them.
   *
   * @throws {TypeError} when an input does not belong to this graph or `outputs` is not a positive integer.
   */
  opMulti(
    opType: string,
    inputs: readonly (Value | null)[],
    outputs: number,
    attributes: Attributes = {},
    options: {
      name?: string;
      outputTypes?: readonly ElementType[];
      domain?: string;
      /** Indices of optional outputs to leave unnamed (not computed); their returned values cannot be used. */
      omitOutputs?: readonly number[];
    } = {},
  ): Value[] {
    if (!Number.isInteger(outputs) || outputs < 1) {
      throw new TypeError(`${opType}: outputs must be a positive integer: got ${outputs}`);
    }
    return this.#node(
      opType,
      inputs,
      outputs,
      attributes,
      options.name,
      options.outputTypes ?? [],
      options.domain,
      new Set(options.omitOutputs ?? []),
    );
  }

  #node(
    opType: string,
    inputs: readonly (Value | null)[],
    outputs: number,
    attributes: Attributes,
    name: string | undefined,
    outputTypes: readonly ElementType[],
    domain: string | undefined,
    omitted: ReadonlySet<number> = new Set(),
  ): Value[] {
    const nodeName = this.#uniqueNodeName(name ?? (this.currentScope ? `${this.currentScope}/${opType}` : opType));
    const inputNames = inputs.map((v, i) => this.#check(v, `${nodeName} (${opType}) input ${i}`));
    const inferred = inferOutputType(opType, inputs, attributes);
    const outs: Value[] = [];
    for (let i = 0; i < outputs; i++) {
      const type = outputTypes[i] ?? inferred;
      // An empty name marks an optional output as absent (ONNX IR); #check refuses it as an input later.
      if (omitted.has(i)) outs.push({ name: "", type });
      else outs.push({ name: this.#uniqueValueName(outputs === 1 ? nodeName : `${nodeName}:${i}`), type });
    }
    const attribute: IAttributeProto[] = [];
    for (const [key, value] of Object.entries(attributes)) {
      if (value !== undefined) attribute.push(encodeAttribute(key, value, nodeName));
    }
    const proto: INodeProto = { opType, name: nodeName, input: inputNames, output: outs.map((o) => o.name), attribute };
    if (domain !== undefined && domain !== "") {
      proto.domain = domain;
      this.#domains.add(domain);
    }
    this.#nodes.push({ proto });
    return outs;
  }

  /** Casts `value` to `type`; returns `value` itself when it already has that type. */
  cast(value: Value, type: ElementType, options: { name?: string } = {}): Value {
    if (value.type === type) return value;
    return this.op("Cast", [value], { to: DATA_TYPE[type] }, { name: options.name, outputType: type });
  }

  /** Casts a float value to the compute type (no-op when it has it). */
  toCompute(value: Value): Value {
    return this.cast(value, this.computeType);
  }

  /** `Shape(value)` (int64 1-D). */
  shape(value: Value): Value {
    return this.op("Shape", [value]);
  }

  // ---------------------------------------------------------------------------------------------- serialisation

  /** Node, initializer and byte counts of the graph so far. */
  get stats(): GraphStats {
    const opCounts: Record<string, number> = {};
    for (const n of this.#nodes) {
      const key = n.proto.domain ? `${n.proto.domain}.${n.proto.opType}` : n.proto.opType!;
      opCounts[key] = (opCounts[key] ?? 0) + 1;
    }
    return {
      nodes: this.#nodes.length,
      initializers: this.#lazy.length + this.#consts.length,
      weightBytes: this.#lazy.reduce((n, w) => n + w.byteLength, 0) +
        this.#consts.reduce((n, c) => n + c.bytes.length, 0),
      opCounts,
    };
  }

  /** Names of the checkpoint weights the graph uses, in the order they were asked for. */
  get weightNames(): readonly string[] {
    return [...new Set(this.#lazy.map((w) => w.source))];
  }

  /**
   * The model as pieces: the ModelProto fields other than `graph`, then the graph's length prefix and its fields
   * other than the checkpoint weights that go inline, and for every such weight the prefix that precedes its bytes.
   * Lengths are computed from the expected shapes, so no weight is read before it is written.
   */
  #layout(external: ReadonlyMap<string, { location: string; offset: number; length: number }>): {
    head: Uint8Array;
    inline: { weight: LazyInitializer; prefix: Uint8Array }[];
  } {
    if (this.#outputs.length === 0) throw new Error(`graph '${this.#name}' has no outputs`);
    const initializer: ITensorProto[] = this.#consts.map((c) => ({
      name: c.name,
      dataType: DATA_TYPE[c.type],
      dims: [...c.shape],
      rawData: c.bytes,
    }));
    const inline: { weight: LazyInitializer; prefix: Uint8Array }[] = [];
    for (const w of this.#lazy) {
      const ext = external.get(w.name);
      if (!ext) {
        // TensorProto fields may come in any order: name/type/dims first, raw_data last and streamed.
        const header = onnx.TensorProto.encode({ name: w.name, dataType: DATA_TYPE[w.type], dims: [...w.shape] })
          .finish();
        const rawPrefix = lengthPrefix(FIELD.tensorRawData, w.byteLength);
        const tensorLength = header.length + rawPrefix.length + w.byteLength;
        inline.push({
          weight: w,
          prefix: concatBytes([lengthPrefix(FIELD.graphInitializer, tensorLength), header, rawPrefix]),
        });
        continue;
      }
      initializer.push({
        name: w.name,
        dataType: DATA_TYPE[w.type],
        dims: [...w.shape],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: ext.location },
          { key: "offset", value: String(ext.offset) },
          { key: "length", value: String(ext.length) },
        ],
      });
    }
    const model: IModelProto = {
      // ONNX IR version of the release that introduced the opset (onnx/docs/Versioning.md): 1.12 → IR 8 (opset 17,
      // 18 in 1.13), 1.14 → IR 9 (opsets 19, 20), 1.16 → IR 10 (opset 21+).
      irVersion: this.opset <= 18 ? 8 : this.opset <= 20 ? 9 : 10,
      producerName: "@ldm/models/onnx",
      producerVersion: "0.1.0",
      opsetImport: [
        { domain: "", version: this.opset },
        ...[...this.#domains].map((domain) => ({ domain, version: 1 })),
      ],
      metadataProps: Object.entries(this.#metadata).map(([key, value]) => ({ key, value })),
    };
    const graph = onnx.GraphProto.encode({
      name: this.#name,
      docString: this.#docString,
      node: this.#nodes.map((n) => n.proto),
      input: this.#inputs,
      output: this.#outputs,
      initializer,
    }).finish();
    const graphLength = graph.length + inline.reduce((n, i) => n + i.prefix.length + i.weight.byteLength, 0);
    const head = concatBytes([
      onnx.ModelProto.encode(model).finish(),
      lengthPrefix(FIELD.modelGraph, graphLength),
      graph,
    ]);
    return { head, inline };
  }

  /** Reads one checkpoint weight and converts it to its stored form (transpose, float16). */
  async #readWeight(w: LazyInitializer): Promise<Uint8Array> {
    const source = this.#weights!;
    const data = await source.readFloat32(w.source);
    const expected = product(w.sourceShape);
    if (data.length !== expected) {
      throw new Error(
        `weight '${w.source}': the source returned ${data.length} values for shape ${shapeString(w.sourceShape)}`,
      );
    }
    if (w.derive) {
      const derived = w.derive(data);
      if (derived.length !== product(w.shape)) {
        throw new Error(
          `weight '${w.source}': derive returned ${derived.length} values for shape ${shapeString(w.shape)}`,
        );
      }
      return w.type === "float16" ? rawBytes(toFloat16(derived, `weight '${w.name}'`)) : rawBytes(derived);
    }
    let part = data;
    let rowCount = w.sourceShape[0]!;
    if (w.rows) {
      const rowSize = expected / w.sourceShape[0]!;
      part = data.subarray(w.rows[0] * rowSize, w.rows[1] * rowSize);
      rowCount = w.rows[1] - w.rows[0];
    }
    const oriented = w.transpose ? transpose2d(part, rowCount, w.sourceShape[1]!) : part;
    const bytes = w.type === "float16" ? rawBytes(toFloat16(oriented, `weight '${w.source}'`)) : rawBytes(oriented);
    if (bytes.length !== w.byteLength) throw new Error(`weight '${w.source}': internal size mismatch`);
    return bytes;
  }

  /**
   * The whole model with every weight embedded, in memory (tests, small graphs).
   *
   * @throws {RangeError} when the weights exceed what one protobuf message can hold (use `save`).
   */
  async toBytes(): Promise<Uint8Array> {
    const total = this.stats.weightBytes;
    if (total > EMBEDDED_LIMIT) {
      throw new RangeError(
        `graph '${this.#name}' holds ${total} bytes of weights, over the 2 GB an in-memory model can hold; use save()`,
      );
    }
    const { head, inline } = this.#layout(new Map());
    const parts: Uint8Array[] = [head];
    for (const { weight, prefix } of inline) parts.push(prefix, await this.#readWeight(weight));
    return concatBytes(parts);
  }

  /**
   * Writes the model to `path`, reading and writing one weight at a time so that memory stays near the size of the
   * largest tensor. When the weights exceed `externalDataThreshold`, tensors of 1 KiB or more go to
   * `<path>_data` (4 KiB aligned) and the graph references them by location/offset/length. Files are written under
   * temporary names and renamed when complete.
   *
   * @throws {RangeError} on an `externalDataName` that is not a plain file name.
   */
  async save(path: string, options: SaveOptions = {}): Promise<SaveResult> {
    const { externalDataThreshold = EMBEDDED_LIMIT } = options;
    const baseName = path.split(/[\\/]/).at(-1)!;
    const externalName = options.externalDataName ?? `${baseName}_data`;
    if (/[\\/]/.test(externalName) || externalName === "" || externalName === "." || externalName === "..") {
      throw new RangeError(`externalDataName must be a plain file name: got ${JSON.stringify(externalName)}`);
    }
    const externalPath = `${path.slice(0, path.length - baseName.length)}${externalName}`;
    const total = this.stats.weightBytes;
    const useExternal = total > externalDataThreshold;
    const external = new Map<string, { location: string; offset: number; length: number }>();
    if (useExternal) {
      let offset = 0;
      for (const w of this.#lazy) {
        if (w.byteLength < EXTERNAL_MIN_BYTES) continue;
        offset = Math.ceil(offset / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
        external.set(w.name, { location: externalName, offset, length: w.byteLength });
        offset += w.byteLength;
      }
    }
    const { head, inline } = this.#layout(external);
    const tmpPath = `${path}.partial`;
    const tmpExternal = `${externalPath}.partial`;
    const file = await Deno.open(tmpPath, { write: true, create: true, truncate: true });
    let data: Deno.FsFile | null = null;
    let ok = false;
    try {
      if (useExternal) data = await Deno.open(tmpExternal, { write: true, create: true, truncate: true });
      await writeAll(file, head);
      for (const { weight, prefix } of inline) {
        const bytes = await this.#readWeight(weight);
        await writeAll(file, prefix);
        await writeAll(file, bytes);
      }
      let dataOffset = 0;
      for (const w of this.#lazy) {
        const ext = external.get(w.name);
        if (!ext || !data) continue;
        const bytes = await this.#readWeight(w);
        if (ext.offset > dataOffset) await writeAll(data, new Uint8Array(ext.offset - dataOffset));
        await writeAll(data, bytes);
        dataOffset = ext.offset + bytes.length;
      }
      ok = true;
    } finally {
      file.close();
      data?.close();
      if (!ok) {
        await Deno.remove(tmpPath).catch(() => {});
        if (useExternal) await Deno.remove(tmpExternal).catch(() => {});
      }
    }
    if (useExternal) await Deno.rename(tmpExternal, externalPath);
    else await Deno.remove(externalPath).catch(() => {});
    await Deno.rename(tmpPath, path);
    return { path, externalDataPath: useExternal ? externalPath : null, weightBytes: total };
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

function intAttr(name: string, i: number): IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}

function encodeAttribute(name: string, value: AttributeValue, node: string): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  const floatName = FLOAT_ATTRIBUTES.has(name);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${node}: attribute '${name}' must be finite: got ${value}`);
    if (Number.isInteger(value) && !floatName) return intAttr(name, value);
    return { name, type: T.FLOAT, f: value };
  }
  if (typeof value === "string") return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === "string")) {
      return { name, type: T.STRINGS, strings: (value as string[]).map((s) => new TextEncoder().encode(s)) };
    }
    const nums = value as readonly number[];
    if (nums.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
      throw new TypeError(`${node}: attribute '${name}' must be a list of finite numbers or strings`);
    }
    if (!floatName && nums.every(Number.isInteger)) return { name, type: T.INTS, ints: [...nums] };
    return { name, type: T.FLOATS, floats: [...nums] };
  }
  if ("float" in value) return { name, type: T.FLOAT, f: value.float };
  if ("floats" in value) return { name, type: T.FLOATS, floats: [...value.floats] };
  if ("tensor" in value) {
    const { type, shape, values } = value.tensor;
    return {
      name,
      type: T.TENSOR,
      t: { dataType: DATA_TYPE[type], dims: [...shape], rawData: encodeValues(type, values) },
    };
  }
  throw new TypeError(`${node}: attribute '${name}' has an unsupported value`);
}

function inferOutputType(opType: string, inputs: readonly (Value | null)[], attributes: Attributes): ElementType {
  if (INT64_OUTPUT_OPS.has(opType)) return "int64";
  if (BOOL_OUTPUT_OPS.has(opType)) return "bool";
  if (opType === "Cast") {
    const to = attributes["to"];
    const t = typeof to === "number" ? elementTypeOfCode(to) : undefined;
    if (!t) throw new TypeError(`Cast: attribute 'to' must be one of the codes ${JSON.stringify(DATA_TYPE)}`);
    return t;
  }
  if (opType === "ConstantOfShape") {
    const v = attributes["value"];
    return v && typeof v === "object" && "tensor" in v ? v.tensor.type : "float32";
  }
  if (opType === "Where") return inputs[1]?.type ?? "float32";
  const first = inputs.find((v): v is Value => v !== null);
  if (!first) throw new TypeError(`${opType}: cannot infer the output type of a node without inputs; pass outputType`);
  return first.type;
}

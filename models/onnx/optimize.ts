/**
 * Graph variants for inference speed: which onnxruntime contrib operators a graph may use for the execution provider
 * it is converted for, and fixed input sizes. The plain graph (no options) stays the portable reference: it uses
 * only default-domain ONNX operators and is what every variant is tested against.
 *
 * Which provider implements which contrib operator was checked against onnxruntime's kernel registrations
 * (`contrib_ops/cpu/cpu_contrib_kernels.cc`, `contrib_ops/cuda/cuda_contrib_kernels.cc`,
 * `contrib_ops/webgpu/webgpu_contrib_kernels.cc`; `docs/OperatorKernels.md`) and, for the CPU provider, by creating
 * sessions with onnxruntime-node 1.30.0 (`GroupNorm`, `BiasSplitGelu`, `BiasAdd` and `NhwcConv` have no CPU kernel):
 *
 * | operator (com.microsoft) | cpu | webgpu | cuda | used for |
 * | --- | --- | --- | --- | --- |
 * | `MultiHeadAttention` | yes | yes | yes | `softmax(q·kᵀ·scale)·v` over heads, on `[N, L, heads·d]` directly |
 * | `SkipLayerNormalization` | yes | yes | yes | residual Add + LayerNorm of the transformer blocks |
 * | `BiasGelu` | yes | yes | yes | GEGLU gate: `gelu(x·W_gate + b_gate)` (exact erf GELU) |
 * | `BiasSplitGelu` | no | yes | yes (last axis 2560, 5120 or 10240 only) | whole GEGLU after the projection |
 * | `GroupNorm` | no | no | yes (NHWC input, float32 γ/β) | GroupNorm + SiLU of the resnets |
 *
 * @module
 */

/** Execution providers a graph can be specialised for. */
export const OPTIMIZATION_TARGETS = ["cpu", "webgpu", "cuda"] as const;

/** An execution provider a graph can be specialised for (onnxruntime-node's provider names). */
export type OptimizationTarget = typeof OPTIMIZATION_TARGETS[number];

/** The com.microsoft operators fused graphs may contain, and the providers that implement each. */
export const CONTRIB_OP_PROVIDERS: Readonly<Record<string, readonly OptimizationTarget[]>> = {
  MultiHeadAttention: ["cpu", "webgpu", "cuda"],
  SkipLayerNormalization: ["cpu", "webgpu", "cuda"],
  BiasGelu: ["cpu", "webgpu", "cuda"],
  BiasSplitGelu: ["webgpu", "cuda"],
  GroupNorm: ["cuda"],
};

/** Last-axis sizes (2 × GEGLU inner width) CUDA's `BiasSplitGelu` kernel implements (`bias_split_gelu.cc`). */
export const CUDA_BIAS_SPLIT_GELU_SIZES: readonly number[] = [2560, 5120, 10240];

/** A fusion switch: `"fused"` uses the contrib operator where the target has it, `"plain"` never does. */
export type FusionChoice = "fused" | "plain";

/**
 * What to optimise a graph for. Every fusion defaults to `"fused"` where the target implements it and to `"plain"`
 * elsewhere (and where it measured slower: `layerNorm` on cpu); asking for `"fused"` where the target has no kernel
 * is an error.
 */
export interface OptimizeOptions {
  /** The execution provider the graph will run on. */
  target: OptimizationTarget;
  /** Attention as `com.microsoft.MultiHeadAttention` (all targets). */
  attention?: FusionChoice;
  /** The transformer blocks' residual Add + LayerNorm as `SkipLayerNormalization` (all targets). */
  layerNorm?: FusionChoice;
  /**
   * GEGLU feed-forward: `BiasSplitGelu` on webgpu/cuda (cuda only for its supported widths, `BiasGelu` on the gate
   * otherwise); on cpu the projection is split into its hidden and gate halves at conversion and the gate goes
   * through `BiasGelu`, so no Split runs.
   */
  geglu?: FusionChoice;
  /** GroupNorm followed by SiLU as one `GroupNorm` (cuda only; the NCHW graph transposes around it). */
  groupNorm?: FusionChoice;
  /**
   * `"subpixel"`: the ×2 nearest upsampling + 3×3 convolution of `Upsample2D` computed as four 2×2 convolutions on the
   * low-resolution input (one per output phase, kernels summed from the 3×3 taps at conversion) and interleaved with
   * `DepthToSpace`: the same result with 16/36 of the multiply-adds, default-domain operators only. Applies to the
   * VAE/VQ decoders always and to the UNets' up blocks where the size is known to double exactly (fixed sizes).
   * Default: `"subpixel"` on cpu (measured 1.8–1.9× faster per upsampler), `"resize"` elsewhere (not measured yet).
   */
  upsample?: "subpixel" | "resize";
}

/** The resolved choices a {@linkcode GraphBuilder} and the blocks read. */
export interface GraphOptimizations {
  /** The target, or null for the plain, portable graph. */
  readonly target: OptimizationTarget | null;
  /** Use `MultiHeadAttention`. */
  readonly attention: boolean;
  /** Use `SkipLayerNormalization`. */
  readonly skipLayerNorm: boolean;
  /** GEGLU form: plain ops, `BiasGelu` on the split gate, or `BiasSplitGelu`. */
  readonly geglu: "plain" | "bias-gelu" | "bias-split-gelu";
  /** Use `GroupNorm` (NHWC, with SiLU) for GroupNorm + SiLU pairs. */
  readonly groupNorm: boolean;
  /** Upsample2D as Resize + 3×3 Conv, or as four 2×2 Convs + DepthToSpace. */
  readonly upsample: "resize" | "subpixel";
}

/** No fusion: the reference graph, default-domain operators only. */
export const PLAIN_GRAPH: GraphOptimizations = Object.freeze({
  target: null,
  attention: false,
  skipLayerNorm: false,
  geglu: "plain",
  groupNorm: false,
  upsample: "resize",
});

function supports(op: string, target: OptimizationTarget): boolean {
  return CONTRIB_OP_PROVIDERS[op]?.includes(target) ?? false;
}

/**
 * Fusions left out by default although the target implements them, because they measured slower there: on
 * onnxruntime-node 1.30's CPU provider `SkipLayerNormalization` took 2–3× the time of `Add` + `LayerNormalization`
 * (`[1, 1024, 320]`: 1.9 ms vs 1.1 ms, one thread; see bench/PERFORMANCE.md).
 */
const SLOWER_BY_DEFAULT: Readonly<Record<OptimizationTarget, readonly string[]>> = {
  cpu: ["SkipLayerNormalization"],
  webgpu: [],
  cuda: [],
};

function choice(options: OptimizeOptions, field: keyof OptimizeOptions, op: string): boolean {
  const value = options[field];
  if (value === undefined) return supports(op, options.target) && !SLOWER_BY_DEFAULT[options.target].includes(op);
  if (value !== "fused" && value !== "plain") {
    throw new RangeError(`optimize.${field} must be "fused" or "plain": got ${JSON.stringify(value)}`);
  }
  if (value === "fused" && !supports(op, options.target)) {
    throw new RangeError(
      `optimize.${field} "fused" needs com.microsoft.${op}, which the ${options.target} provider does not implement ` +
        `(only ${CONTRIB_OP_PROVIDERS[op]!.join(", ")}); use "plain" or another target`,
    );
  }
  return value === "fused";
}

/**
 * Validates `options` and applies the defaults; `undefined`/`null` gives {@linkcode PLAIN_GRAPH}.
 *
 * @throws {RangeError} on an unknown target or choice, naming the field and the value, or a fusion the target has
 *   no kernel for.
 */
export function resolveOptimizations(options?: OptimizeOptions | GraphOptimizations | null): GraphOptimizations {
  if (options === undefined || options === null) return PLAIN_GRAPH;
  if (isResolved(options)) return options;
  if (typeof options !== "object") {
    throw new TypeError(`optimize must be an object such as { target: "cpu" }: got ${JSON.stringify(options)}`);
  }
  const target = options.target;
  if (!OPTIMIZATION_TARGETS.includes(target)) {
    throw new RangeError(
      `optimize.target must be one of ${OPTIMIZATION_TARGETS.join(", ")}: got ${JSON.stringify(target)}`,
    );
  }
  const known = new Set(["target", "attention", "layerNorm", "geglu", "groupNorm", "upsample"]);
  const unknown = Object.keys(options).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    throw new RangeError(`optimize has unknown option(s) ${unknown.join(", ")} (known: ${[...known].join(", ")})`);
  }
  // GEGLU: BiasSplitGelu where the target has it, else BiasGelu on a split projection (every target has BiasGelu).
  const geglu = choice(options, "geglu", "BiasGelu")
    ? (supports("BiasSplitGelu", target) ? "bias-split-gelu" : "bias-gelu")
    : "plain";
  const upsample = options.upsample ?? (target === "cpu" ? "subpixel" : "resize");
  if (upsample !== "subpixel" && upsample !== "resize") {
    throw new RangeError(`optimize.upsample must be "subpixel" or "resize": got ${JSON.stringify(upsample)}`);
  }
  return Object.freeze({
    target,
    attention: choice(options, "attention", "MultiHeadAttention"),
    skipLayerNorm: choice(options, "layerNorm", "SkipLayerNormalization"),
    geglu,
    groupNorm: choice(options, "groupNorm", "GroupNorm"),
    upsample,
  });
}

function isResolved(o: object): o is GraphOptimizations {
  return Object.isFrozen(o) && "skipLayerNorm" in o;
}

/** Whether `o` is the plain graph (no fusion). */
export function isPlain(o: GraphOptimizations): boolean {
  return !o.attention && !o.skipLayerNorm && o.geglu === "plain" && !o.groupNorm && o.upsample === "resize";
}

/**
 * Parses a fixed-size specification: `"32x32"` (height × width) or `"2x32x32"` (batch × height × width), as the
 * converter's `--fixed-size` flag takes it, into fixed dims for {@linkcode GraphBuilderOptions.fixedDims}.
 *
 * @throws {RangeError} naming the value when it is not 2 or 3 positive integers separated by `x`.
 */
export function parseFixedSize(text: string, field = "fixed size"): Record<string, number> {
  const parts = text.trim().toLowerCase().split("x");
  const nums = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if ((nums.length !== 2 && nums.length !== 3) || nums.some((n) => !Number.isSafeInteger(n) || n < 1)) {
    throw new RangeError(`${field} must be HEIGHTxWIDTH or BATCHxHEIGHTxWIDTH of positive integers: got "${text}"`);
  }
  const [a, b, c] = nums as [number, number, number | undefined];
  return c === undefined ? { height: a, width: b } : { batch: a, height: b, width: c };
}

/**
 * Checks fixed dims (symbolic dimension name → size).
 *
 * @throws {RangeError} naming the dimension when a size is not a positive integer.
 */
export function checkFixedDims(dims: Readonly<Record<string, number>> | undefined): Readonly<Record<string, number>> {
  if (dims === undefined) return {};
  if (typeof dims !== "object" || dims === null) {
    throw new TypeError(`fixedDims must be an object such as { batch: 2, height: 32 }: got ${JSON.stringify(dims)}`);
  }
  for (const [name, size] of Object.entries(dims)) {
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`fixedDims.${name} must be a positive integer: got ${JSON.stringify(size)}`);
    }
  }
  return Object.freeze({ ...dims });
}

/**
 * The variant options every graph builder takes besides `dtype` (`buildUNet2DConditionModel`,
 * `buildAutoencoderKLDecoder`, ...); the converter passes the same object to every graph of a model.
 */
export interface GraphVariantOptions {
  /** Contrib-operator fusions for one execution provider. Default: none (the plain graph). */
  optimize?: OptimizeOptions | GraphOptimizations | null;
  /**
   * Sizes for the symbolic dimensions of the graph's inputs (`batch`, `height`, `width`, `sequence`, as each builder
   * names them; names a graph does not use are ignored). Default: every dimension stays dynamic.
   */
  fixedDims?: Readonly<Record<string, number>>;
}

/**
 * `Generator`: torch's CPU random generator (`torch.Generator("cpu")`), reproduced bit for bit for the two
 * distributions the diffusion pipelines draw, `torch.randn` and `torch.rand` in float32.
 *
 * Algorithms (torch `aten/src/ATen/CPUGeneratorImpl.cpp`, `core/DistributionsHelper.h`,
 * `native/cpu/DistributionTemplates.h`, `native/cpu/DistributionKernels.cpp`):
 * - engine: MT19937 seeded with `seed mod 2^32`;
 * - `rand`: one u32 per element, `(u32 & 0xFFFFFF) · 2^-24`;
 * - `randn`, fewer than 16 elements: float64 Box–Muller per element (`at::normal_distribution<double>`) whose second
 *   value is cached in the generator and consumed by the next small draw;
 * - `randn`, 16 elements or more: float32 uniforms for every element, then the AVX2 kernel on blocks of 16, and when
 *   `n % 16 != 0` 16 fresh uniforms over the last 16 slots, transformed again.
 *
 * @module
 */
import { shapeSize, Tensor } from "../tensor/mod.ts";
import { normalFill16 } from "./_avx_mathfun.ts";
import { Mt19937, MT_N } from "./_mt19937.ts";

const TWO_POW_64 = 1n << 64n;
const MIN_SEED = -(1n << 63n);
const TWO_POW_53_INV = 1.1102230246251565e-16; // 2^-53

/**
 * Everything a {@linkcode Generator} needs to continue its stream: take it with `getState()`, restore it with
 * `setState()`. A plain object (the typed array aside), so it can be stored and restored later in the same process.
 */
export interface GeneratorState {
  /** The seed last given (torch's `initial_seed()`, an unsigned 64-bit integer). */
  readonly initialSeed: bigint;
  /** The 624 MT19937 state words. */
  readonly mt: Uint32Array;
  /** Position of the next MT19937 word, 0..624. */
  readonly index: number;
  /** The cached second Box–Muller value of the small-`randn` path, or `null` when none is cached. */
  readonly nextNormal: number | null;
}

/**
 * Validates a seed the way torch's `Generator.manual_seed` accepts it (any integer in `[-2^63, 2^64)`; negative ones
 * are reinterpreted as unsigned 64-bit) and returns it as that unsigned 64-bit value.
 */
function toUint64Seed(seed: unknown): bigint {
  let big: bigint;
  if (typeof seed === "number") {
    if (!Number.isInteger(seed)) {
      throw new RangeError(`seed must be an integer in [-2^63, 2^64): got ${seed}`);
    }
    big = BigInt(seed);
  } else if (typeof seed === "bigint") {
    big = seed;
  } else {
    throw new TypeError(`seed must be a number or a bigint: got ${seed === null ? "null" : typeof seed}`);
  }
  if (big < MIN_SEED || big >= TWO_POW_64) {
    throw new RangeError(`seed must be an integer in [-2^63, 2^64): got ${big}`);
  }
  return big < 0n ? big + TWO_POW_64 : big;
}

/** A fresh non-deterministic seed in `[0, 2^32)`: every seed MT19937 distinguishes, and a plain JSON number. */
function cryptoSeed(): bigint {
  return BigInt(crypto.getRandomValues(new Uint32Array(1))[0]!);
}

/**
 * A torch-compatible CPU random generator. `new Generator(seed).randn(shape)` returns the same float32 bits as
 * `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))` on x86 CPUs with AVX2/AVX512 (the usual
 * case), and consecutive calls continue the same stream as torch does.
 *
 * Create one per request; it holds mutable state and is not meant to be shared between concurrent requests.
 *
 * @example Reproduce diffusers' `randn_tensor((1, 3, 32, 32), generator=torch.Generator("cpu").manual_seed(0))`
 * ```ts
 * import { Generator } from "@ldm/core/random";
 * const latents = new Generator(0).randn([1, 3, 32, 32]);
 * console.log(latents.shape, latents.data[0]);
 * ```
 */
export class Generator {
  readonly #engine = new Mt19937(0);
  #initialSeed = 0n;
  #nextNormal: number | null = null;

  /**
   * Seeds the generator like `torch.Generator("cpu").manual_seed(seed)`. Without a seed, draws one from
   * `crypto.getRandomValues` (in `[0, 2^32)`); read it back from {@linkcode Generator.initialSeed} to report it.
   *
   * @param seed an integer in `[-2^63, 2^64)` (only `seed mod 2^32` affects the stream, as in torch).
   * @throws {TypeError} when `seed` is neither a number nor a bigint.
   * @throws {RangeError} when `seed` is not an integer or is outside `[-2^63, 2^64)`.
   */
  constructor(seed?: number | bigint) {
    this.#seed(seed === undefined ? cryptoSeed() : toUint64Seed(seed));
  }

  /**
   * Re-seeds in place, like torch's `manual_seed`: resets the MT19937 state and clears the cached normal value.
   *
   * @param seed an integer in `[-2^63, 2^64)` (only `seed mod 2^32` affects the stream).
   * @returns this generator, for chaining (`new Generator().manualSeed(1).randn([4])`).
   * @throws {TypeError} when `seed` is neither a number nor a bigint.
   * @throws {RangeError} when `seed` is not an integer or is outside `[-2^63, 2^64)`.
   */
  manualSeed(seed: number | bigint): this {
    this.#seed(toUint64Seed(seed));
    return this;
  }

  /**
   * The seed last given, as torch's `initial_seed()` reports it: an unsigned 64-bit integer (a negative seed `s`
   * reads back as `2^64 + s`). A `number` when it is a safe integer (always so for the constructor's own seeds),
   * else a `bigint`. Passing it back to the constructor reproduces the stream.
   */
  get initialSeed(): number | bigint {
    return this.#initialSeed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(this.#initialSeed) : this.#initialSeed;
  }

  /**
   * Standard normal samples of `shape` in float32, bit-identical to `torch.randn(shape, generator=g)`.
   *
   * @param shape the dimensions (non-negative integers).
   * @returns a new tensor of `shape`.
   * @throws {TypeError} when a dimension is not a non-negative integer.
   */
  randn(shape: readonly number[]): Tensor {
    const data = new Float32Array(shapeSize(shape));
    this.randnInto(data);
    return new Tensor(data, shape);
  }

  /**
   * Fills `out` with what `torch.randn(out.length, generator=g)` would return (same draws and same path choice
   * as `randn` of any shape with `out.length` elements), without allocating. Use it to refill a per-step noise buffer.
   *
   * @param out the buffer to overwrite; it is treated as one contiguous tensor.
   * @returns `out`.
   */
  randnInto(out: Float32Array): Float32Array {
    const n = out.length;
    if (n >= 16) {
      this.#engine.fillUniform24(out, 0, n);
      for (let i = 0; i + 16 <= n; i += 16) normalFill16(out, i);
      if (n % 16 !== 0) {
        // torch redraws the last 16 slots (overlapping the last full block) and transforms them again.
        this.#engine.fillUniform24(out, n - 16, 16);
        normalFill16(out, n - 16);
      }
    } else {
      for (let i = 0; i < n; i++) out[i] = this.#normalDouble();
    }
    return out;
  }

  /**
   * Uniform samples in `[0, 1)` of `shape` in float32, bit-identical to `torch.rand(shape, generator=g)`.
   *
   * @param shape the dimensions (non-negative integers).
   * @returns a new tensor of `shape`.
   * @throws {TypeError} when a dimension is not a non-negative integer.
   */
  rand(shape: readonly number[]): Tensor {
    const data = new Float32Array(shapeSize(shape));
    this.randInto(data);
    return new Tensor(data, shape);
  }

  /**
   * Fills `out` with what `torch.rand(out.length, generator=g)` would return, without allocating.
   *
   * @param out the buffer to overwrite.
   * @returns `out`.
   */
  randInto(out: Float32Array): Float32Array {
    this.#engine.fillUniform24(out, 0, out.length);
    return out;
  }

  /** An independent generator in the same state: both produce the same stream from here on. */
  clone(): Generator {
    const copy = new Generator(0);
    copy.setState(this.getState());
    return copy;
  }

  /** A snapshot of the complete state (copied); see {@linkcode GeneratorState}. */
  getState(): GeneratorState {
    const { mt, index } = this.#engine.getState();
    return { initialSeed: this.#initialSeed, mt, index, nextNormal: this.#nextNormal };
  }

  /**
   * Restores a snapshot taken with `getState()` (the snapshot is copied, not kept).
   *
   * @throws {TypeError} when `state` does not have the shape of a {@linkcode GeneratorState}.
   */
  setState(state: GeneratorState): void {
    if (typeof state !== "object" || state === null) {
      throw new TypeError(`state must be a GeneratorState object: got ${state === null ? "null" : typeof state}`);
    }
    if (!(state.mt instanceof Uint32Array) || state.mt.length !== MT_N) {
      throw new TypeError(`state.mt must be a Uint32Array of ${MT_N} words`);
    }
    if (!Number.isInteger(state.index) || state.index < 0 || state.index > MT_N) {
      throw new TypeError(`state.index must be an integer in [0, ${MT_N}]: got ${state.index}`);
    }
    if (state.nextNormal !== null && typeof state.nextNormal !== "number") {
      throw new TypeError(`state.nextNormal must be a number or null: got ${typeof state.nextNormal}`);
    }
    if (typeof state.initialSeed !== "bigint" || state.initialSeed < 0n || state.initialSeed >= TWO_POW_64) {
      throw new TypeError(`state.initialSeed must be a bigint in [0, 2^64): got ${String(state.initialSeed)}`);
    }
    this.#engine.setState({ mt: state.mt, index: state.index });
    this.#initialSeed = state.initialSeed;
    this.#nextNormal = state.nextNormal;
  }

  #seed(seed: bigint): void {
    this.#initialSeed = seed;
    this.#engine.seed(Number(seed & 0xffffffffn));
    this.#nextNormal = null;
  }

  /** torch's `random64()` mapped to `[0, 1)` as `uniform_real_distribution<double>`: `(u64 & (2^53 - 1)) · 2^-53`. */
  #uniformDouble(): number {
    const hi = this.#engine.nextU32();
    const lo = this.#engine.nextU32();
    return ((hi & 0x1fffff) * 4294967296 + lo) * TWO_POW_53_INV;
  }

  /**
   * One sample of `at::normal_distribution<double>(0, 1)`: the cached value if any, else a Box–Muller pair whose
   * sine half is cached. Returned already rounded to float32, as `randn` stores it.
   */
  #normalDouble(): number {
    let ret: number;
    if (this.#nextNormal !== null) {
      ret = this.#nextNormal;
      this.#nextNormal = null;
    } else {
      const u1 = this.#uniformDouble();
      const u2 = this.#uniformDouble();
      const r = Math.sqrt(-2 * Math.log1p(-u2));
      const theta = 2 * Math.PI * u1;
      this.#nextNormal = r * Math.sin(theta);
      ret = r * Math.cos(theta);
    }
    // `ret * std + mean` with std 1 and mean 0 (which turns -0 into +0), then the float32 cast.
    return Math.fround(ret * 1 + 0);
  }
}

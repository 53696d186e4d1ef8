/**
 * The 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), as torch's CPU generator runs it
 * (`aten/src/ATen/core/MT19937RNGEngine.h`): `init_genrand` seeding, standard twist and tempering, so the output
 * stream equals `std::mt19937` seeded with the same 32-bit value.
 *
 * @module
 */

/** Degree of recurrence (state words). */
export const MT_N = 624;
const MT_M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** A snapshot of the engine: the 624 state words and the read position in them. */
export interface Mt19937State {
  /** The 624 state words (copied). */
  readonly mt: Uint32Array;
  /** Index of the next word to temper, 0..624 (624 means "twist before the next draw"). */
  readonly index: number;
}

/** MT19937 with torch's seeding. Not exported from the package: `Generator` wraps it. */
export class Mt19937 {
  readonly #mt = new Uint32Array(MT_N);
  #index = MT_N;

  /** Seeds with `init_genrand(seed32)`; `seed32` must already be reduced to an unsigned 32-bit integer. */
  constructor(seed32: number) {
    this.seed(seed32);
  }

  /** Re-initialises the state from an unsigned 32-bit seed (torch keeps `seed mod 2^32`). */
  seed(seed32: number): void {
    const mt = this.#mt;
    mt[0] = seed32 >>> 0;
    for (let i = 1; i < MT_N; i++) {
      const prev = mt[i - 1]!;
      // mt[i] = 1812433253 * (mt[i-1] ^ (mt[i-1] >> 30)) + i, mod 2^32 (Knuth TAOCP vol. 2, 3rd ed., p. 106).
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.#index = MT_N;
  }

  /** The next tempered 32-bit output, as an unsigned integer (torch's `random()`). */
  nextU32(): number {
    if (this.#index >= MT_N) this.#twist();
    let y = this.#mt[this.#index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /**
   * Writes `count` float32 uniforms `(u32 & 0xFFFFFF) * 2^-24` into `out` from `start` (torch's
   * `uniform_real_distribution<float>(0, 1)`, one u32 each). Inlined tempering: this is the hot loop of `randn`.
   */
  fillUniform24(out: Float32Array, start: number, count: number): void {
    const mt = this.#mt;
    let index = this.#index;
    const end = start + count;
    for (let i = start; i < end; i++) {
      if (index >= MT_N) {
        this.#twist();
        index = 0;
      }
      let y = mt[index++]!;
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      out[i] = (y & 0xffffff) * 5.9604644775390625e-8; // exact: 24-bit integer times 2^-24
    }
    this.#index = index;
  }

  /** A copy of the state. */
  getState(): Mt19937State {
    return { mt: this.#mt.slice(), index: this.#index };
  }

  /** Restores a state taken with `getState()` (the caller validates it). */
  setState(state: Mt19937State): void {
    this.#mt.set(state.mt);
    this.#index = state.index;
  }

  #twist(): void {
    const mt = this.#mt;
    let i = 0;
    for (; i < MT_N - MT_M; i++) {
      const y = (mt[i]! & UPPER_MASK) | (mt[i + 1]! & LOWER_MASK);
      mt[i] = mt[i + MT_M]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    for (; i < MT_N - 1; i++) {
      const y = (mt[i]! & UPPER_MASK) | (mt[i + 1]! & LOWER_MASK);
      mt[i] = mt[i + MT_M - MT_N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    const y = (mt[MT_N - 1]! & UPPER_MASK) | (mt[0]! & LOWER_MASK);
    mt[MT_N - 1] = mt[MT_M - 1]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    this.#index = 0;
  }
}

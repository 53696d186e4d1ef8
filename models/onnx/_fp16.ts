/**
 * float32 → float16 conversion of weights, with the overflow check that post-hoc converters lack.
 *
 * @module
 */

/** Largest finite float16. */
export const FLOAT16_MAX = 65504;

/**
 * Rounds `src` to IEEE float16 (round to nearest even, as `Float16Array` does) and returns the new array.
 *
 * @param what names the tensor in the error message.
 * @throws {RangeError} when a finite value overflows float16 (|x| ≥ 65520 rounds to infinity), naming the tensor,
 *   the index and the value: such a weight cannot be stored in fp16 without changing the model.
 */
export function toFloat16(src: Float32Array, what: string): Float16Array {
  const out = new Float16Array(src);
  for (let i = 0; i < out.length; i++) {
    const h = out[i]!;
    if (h === Infinity || h === -Infinity) {
      const v = src[i]!;
      if (Number.isFinite(v)) {
        throw new RangeError(
          `${what}[${i}] = ${v} overflows float16 (largest finite value ${FLOAT16_MAX}); convert this model with dtype "fp32"`,
        );
      }
    }
  }
  return out;
}

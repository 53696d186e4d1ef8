/**
 * The one tensor type of the project: a dense, row-major float32 array with a shape.
 *
 * Deliberately small: schedulers and pipelines need element-wise math and a few layout helpers, not a general tensor
 * library. Helpers live in `ops.ts` (element-wise) and `layout.ts` (concat, split, transpose) beside this file.
 *
 * @module
 */

/** Number of elements of a shape; throws a `TypeError` on a negative or non-integer dimension. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const [i, d] of shape.entries()) {
    if (!Number.isInteger(d) || d < 0) {
      throw new TypeError(
        `Invalid tensor shape [${shape.join(", ")}]: dimension ${i} is ${d}, expected an integer >= 0`,
      );
    }
    n *= d;
  }
  return n;
}

/** A dense row-major float32 tensor. `data.length` always equals the product of `shape`. */
export class Tensor {
  /** The elements, row-major. Mutating them mutates the tensor: ops that own their output may reuse it. */
  readonly data: Float32Array;
  /** The dimensions, outermost first. Frozen. */
  readonly shape: readonly number[];

  /**
   * Wraps `data` (not copied) with `shape`.
   *
   * @throws {TypeError} when a dimension is not a non-negative integer or `data.length` is not the shape's size.
   * @example
   * ```ts
   * import { Tensor } from "@ldm/core/tensor";
   * const t = new Tensor(new Float32Array(6), [2, 3]);
   * console.log(t.size); // 6
   * ```
   */
  constructor(data: Float32Array, shape: readonly number[]) {
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new TypeError(
        `Tensor data has ${data.length} elements but shape [${shape.join(", ")}] needs ${n}`,
      );
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  /** A zero-filled tensor of `shape`. */
  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(shapeSize(shape)), shape);
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }

  /** A deep copy (new buffer). */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  /** The same buffer viewed with another shape of the same size. */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.data, shape);
  }
}

/**
 * `RgbImage`, the 8-bit image type of the project, and its conversions to and from the pipelines' float tensors.
 *
 * @module
 */
import { Tensor } from "../tensor/mod.ts";

/** An 8-bit RGB image: `data` holds `width × height` pixels row-major, 3 bytes each (R, G, B). */
export interface RgbImage {
  /** Width in pixels (≥ 1). */
  readonly width: number;
  /** Height in pixels (≥ 1). */
  readonly height: number;
  /** `width * height * 3` bytes. */
  readonly data: Uint8Array;
}

/**
 * Checks that `image` is a well-formed {@linkcode RgbImage}.
 *
 * @param name how to call the image in error messages (e.g. `"image"`).
 * @throws {TypeError} when a field is missing, of the wrong type or the wrong length.
 */
export function assertRgbImage(image: unknown, name = "image"): asserts image is RgbImage {
  if (typeof image !== "object" || image === null) {
    throw new TypeError(
      `${name} must be an RgbImage { width, height, data }: got ${image === null ? "null" : typeof image}`,
    );
  }
  const { width, height, data } = image as Partial<RgbImage>;
  if (!Number.isInteger(width) || width! < 1) {
    throw new TypeError(`${name}.width must be an integer >= 1: got ${width}`);
  }
  if (!Number.isInteger(height) || height! < 1) {
    throw new TypeError(`${name}.height must be an integer >= 1: got ${height}`);
  }
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(`${name}.data must be a Uint8Array`);
  }
  if (data.length !== width! * height! * 3) {
    throw new TypeError(
      `${name}.data must hold width * height * 3 = ${
        width! * height! * 3
      } bytes for ${width}×${height} RGB: got ${data.length}`,
    );
  }
}

/**
 * Rounds half to even, as numpy's `round` does (`np.round(2.5) == 2`).
 */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; step back to the even neighbour on exact ties.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Converts one float in [0, 1] to a byte exactly as diffusers' `numpy_to_pil`: `(x * 255).round().astype("uint8")`,
 * with `x * 255` in float32 and round-half-to-even. Values outside [0, 1] are clamped first; NaN becomes 0.
 */
export function floatToByte(x: number): number {
  if (!(x > 0)) return 0; // also NaN
  if (x >= 1) return 255;
  return roundHalfEven(Math.fround(x * 255));
}

/**
 * Splits `[N, H, W, 3]` float images in [0, 1] (the pipelines' output) into `N` 8-bit {@linkcode RgbImage}s, rounding
 * as diffusers' `numpy_to_pil` does (float32 `x · 255`, round half to even).
 *
 * @throws {TypeError} when `images` is not `[N, H, W, 3]`.
 */
export function toRgbImages(images: Tensor): RgbImage[] {
  const [n, h, w, c] = images.shape;
  if (images.shape.length !== 4 || c !== 3 || !n || !h || !w) {
    throw new TypeError(`images must be a [N, H, W, 3] tensor with N, H, W >= 1: got [${images.shape.join(", ")}]`);
  }
  const size = h * w * 3;
  const out: RgbImage[] = [];
  for (let i = 0; i < n; i++) {
    const data = new Uint8Array(size);
    const src = images.data.subarray(i * size, (i + 1) * size);
    for (let j = 0; j < size; j++) data[j] = floatToByte(src[j]!);
    out.push({ width: w, height: h, data });
  }
  return out;
}

/**
 * Stacks 8-bit images of one size into `[N, H, W, 3]` float32 in [0, 1] (`byte / 255` in float32, as
 * `np.array(img).astype(np.float32) / 255.0`).
 *
 * @throws {TypeError} when the list is empty, an image is malformed or the sizes differ.
 */
export function fromRgbImages(images: readonly RgbImage[]): Tensor {
  if (images.length === 0) throw new TypeError("images must hold at least one image: got none");
  images.forEach((im, i) => assertRgbImage(im, `images[${i}]`));
  const { width, height } = images[0]!;
  const size = width * height * 3;
  const data = new Float32Array(images.length * size);
  images.forEach((im, i) => {
    if (im.width !== width || im.height !== height) {
      throw new TypeError(`images[${i}] is ${im.width}×${im.height} but images[0] is ${width}×${height}`);
    }
    for (let j = 0; j < size; j++) data[i * size + j] = im.data[j]! / 255;
  });
  return new Tensor(data, [images.length, height, width, 3]);
}

/**
 * Pillow's Lanczos resize of 8-bit images, ported from `src/libImaging/Resample.c` (`ImagingResample` with the
 * `LANCZOS` filter, i.e. `Image.resize(size, Image.LANCZOS)` on an RGB image), so the super-resolution pipeline
 * preprocesses exactly as diffusers' PIL path does.
 *
 * The algorithm, as Pillow has it:
 * - separable: a horizontal pass into an 8-bit intermediate image (only the rows the vertical pass reads), then a
 *   vertical pass; a pass whose size does not change is skipped;
 * - per output pixel, float64 coefficients of the truncated sinc `sinc(x)·sinc(x/3)` on `|x| < 3` (the support grows
 *   with the down-scaling factor), normalised to sum 1, then converted to fixed point with 22 fractional bits
 *   (`PRECISION_BITS = 32 - 8 - 2`, rounding half away from zero);
 * - integer accumulation starting at `1 << 21` (rounding), then `>> 22` and clipping to [0, 255].
 *
 * @module
 */
import { assertRgbImage, type RgbImage } from "./rgb.ts";

const PRECISION_BITS = 32 - 8 - 2;
const SUPPORT = 3; // Lanczos-3

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x: number): number {
  return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

interface Coefficients {
  /** Coefficients per output pixel (`ksize` slots each), fixed point. */
  kk: Int32Array;
  /** First input index per output pixel. */
  min: Int32Array;
  /** Number of input pixels per output pixel. */
  count: Int32Array;
  ksize: number;
}

/** `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [0, inSize) mapped onto `outSize` pixels. */
function precomputeCoefficients(inSize: number, outSize: number): Coefficients {
  // Pillow passes the box edges as C floats; 0 and an integer size are exact.
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Int32Array(outSize * ksize);
  const min = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    // C's (int) cast truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = lanczos((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x]! / ww : k[x]!;
      // normalize_coeffs_8bpc: (int)(v * 2^22 ± 0.5), truncating toward zero.
      kk[xx * ksize + x] = v < 0
        ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    min[xx] = xmin;
    count[xx] = xmax;
  }
  return { kk, min, count, ksize };
}

/** `clip8`: `in >> 22` clamped to a byte. */
function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

/**
 * Resizes an 8-bit RGB image with Pillow's Lanczos filter, bit-identical to
 * `PIL.Image.resize((width, height), Image.LANCZOS)` on an `"RGB"` image. A same-size call returns a copy.
 *
 * @throws {TypeError} for a malformed image.
 * @throws {RangeError} when `width` or `height` is not an integer in [1, 65535].
 * @example
 * ```ts
 * import { resizeLanczos } from "@ldm/core/image";
 * const small = { width: 2, height: 1, data: new Uint8Array([0, 0, 0, 255, 255, 255]) };
 * console.log(resizeLanczos(small, 4, 1).data);
 * ```
 */
export function resizeLanczos(image: RgbImage, width: number, height: number): RgbImage {
  assertRgbImage(image);
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) {
      throw new RangeError(`${name} must be an integer in [1, 65535]: got ${v}`);
    }
  }
  const needHorizontal = width !== image.width;
  const needVertical = height !== image.height;
  const vert = precomputeCoefficients(image.height, height);
  // Rows of the source the vertical pass reads; the horizontal pass only produces those.
  const yFirst = vert.min[0]!;
  const yLast = vert.min[height - 1]! + vert.count[height - 1]!;

  let src = image.data;
  let srcWidth = image.width;
  let rowOffset = 0; // source row of intermediate row 0
  if (needHorizontal) {
    const hor = precomputeCoefficients(image.width, width);
    const rows = yLast - yFirst;
    const tmp = new Uint8Array(width * rows * 3);
    const half = 1 << (PRECISION_BITS - 1);
    for (let yy = 0; yy < rows; yy++) {
      const inRow = (yy + yFirst) * image.width * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = hor.min[xx]!;
        const n = hor.count[xx]!;
        const kBase = xx * hor.ksize;
        let s0 = half, s1 = half, s2 = half;
        for (let x = 0; x < n; x++) {
          const kv = hor.kk[kBase + x]!;
          const p = inRow + (x + xmin) * 3;
          s0 += src[p]! * kv;
          s1 += src[p + 1]! * kv;
          s2 += src[p + 2]! * kv;
        }
        const o = (yy * width + xx) * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
    src = tmp;
    srcWidth = width;
    rowOffset = yFirst;
  }
  if (!needVertical) {
    return { width: srcWidth, height: image.height, data: src === image.data ? src.slice() : src };
  }
  const out = new Uint8Array(width * height * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < height; yy++) {
    const ymin = vert.min[yy]! - rowOffset;
    const n = vert.count[yy]!;
    const kBase = yy * vert.ksize;
    for (let xx = 0; xx < width; xx++) {
      let s0 = half, s1 = half, s2 = half;
      for (let y = 0; y < n; y++) {
        const kv = vert.kk[kBase + y]!;
        const p = ((y + ymin) * srcWidth + xx) * 3;
        s0 += src[p]! * kv;
        s1 += src[p + 1]! * kv;
        s2 += src[p + 2]! * kv;
      }
      const o = (yy * width + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return { width, height, data: out };
}

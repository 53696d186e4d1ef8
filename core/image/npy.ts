/**
 * numpy `.npy` files (format versions 1.0–3.0) for exact float exchange with Python: images `[N, H, W, 3]` out,
 * latents in. See numpy's `numpy/lib/format.py` for the layout: magic `\x93NUMPY`, version, header length, a Python
 * dict literal padded with spaces to a multiple of 64 bytes and ended by `\n`, then the raw little-endian data.
 *
 * @module
 */
import { shapeSize, Tensor } from "../tensor/mod.ts";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Limits for {@linkcode decodeNpy}. */
export interface DecodeNpyOptions {
  /** Largest accepted number of elements. @default 268435456 (2^28, 1 GiB of float32) */
  maxElements?: number;
}

/**
 * Encodes a float32 tensor as a version 1.0 `.npy` file (`'<f4'`, C order), laid out as
 * `np.save(path, array.astype("<f4"))` writes it (numpy ≥ 1.24).
 *
 * @example
 * ```ts
 * import { encodeNpy } from "@ldm/core/image";
 * import { Tensor } from "@ldm/core/tensor";
 * const bytes = encodeNpy(new Tensor(new Float32Array([0, 0.5, 1]), [3]));
 * console.log(bytes.length); // 128 header bytes + 12
 * ```
 */
export function encodeNpy(tensor: Tensor): Uint8Array {
  const dims = tensor.shape;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(", ")})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  // numpy leaves room to grow the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21), then pads with spaces so that
  // magic (6) + version (2) + length (2) + header + "\n" ends on a 64-byte boundary (`_wrap_header`: a full 64 when
  // already aligned).
  if (dims.length > 0) header += " ".repeat(Math.max(0, 21 - String(dims[0]).length));
  const padding = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(padding) + "\n";
  const total = 10 + header.length;
  const out = new Uint8Array(total + tensor.size * 4);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const view = new DataView(out.buffer, total);
  for (let i = 0; i < tensor.size; i++) view.setFloat32(i * 4, tensor.data[i]!, true);
  return out;
}

/**
 * Decodes a `.npy` file of float32 (`<f4`) or float64 (`<f8`, rounded to float32) values in C order into a
 * {@linkcode Tensor}.
 *
 * @throws {TypeError} when the file is not a `.npy`, is truncated, uses another dtype, big-endian or Fortran order.
 * @throws {RangeError} when it holds more than `maxElements` values.
 */
export function decodeNpy(bytes: Uint8Array, options: DecodeNpyOptions = {}): Tensor {
  const { maxElements = 2 ** 28 } = options;
  if (bytes.length < 10 || !MAGIC.every((v, i) => bytes[i] === v)) {
    throw new TypeError("not a .npy file: missing the \\x93NUMPY magic");
  }
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new TypeError(`unsupported .npy format version ${major}.${bytes[7]}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerStart = major === 1 ? 10 : 12;
  if (bytes.length < headerStart) throw new TypeError(".npy file is truncated in its header");
  const headerLength = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) throw new TypeError(".npy file is truncated in its header");
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(headerStart, dataStart));

  const descr = header.match(/'descr'\s*:\s*'([^']*)'/)?.[1];
  const fortran = header.match(/'fortran_order'\s*:\s*(True|False)/)?.[1];
  const shapeText = header.match(/'shape'\s*:\s*\(([^)]*)\)/)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new TypeError(`.npy header is malformed: ${JSON.stringify(header.trim())}`);
  }
  if (fortran === "True") {
    throw new TypeError(".npy array is in Fortran order; save it C-contiguous (np.ascontiguousarray)");
  }
  if (descr !== "<f4" && descr !== "<f8") {
    throw new TypeError(`.npy dtype must be float32 ('<f4') or float64 ('<f8'): got '${descr}'`);
  }
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new TypeError(`.npy shape is malformed: (${shapeText})`);
  const n = shapeSize(shape);
  if (n > maxElements) throw new RangeError(`.npy array has ${n} elements; the limit is ${maxElements}`);
  const itemSize = descr === "<f4" ? 4 : 8;
  if (bytes.length - dataStart < n * itemSize) {
    throw new TypeError(
      `.npy file is truncated: shape (${shape.join(", ")}) needs ${n * itemSize} data bytes, found ${
        bytes.length - dataStart
      }`,
    );
  }
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    data[i] = itemSize === 4 ? dv.getFloat32(dataStart + 4 * i, true) : dv.getFloat64(dataStart + 8 * i, true);
  }
  return new Tensor(data, shape);
}

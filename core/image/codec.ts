/**
 * Image files in and out through imagescript: PNG and JPEG in, PNG, JPEG and WebP out.
 *
 * Untrusted input is checked before anything is decoded: the format is sniffed from the magic bytes, the dimensions
 * are read from the header (PNG `IHDR`, JPEG `SOFn`) and compared with the pixel limit, and the container structure
 * is walked so a truncated file is reported as such instead of reaching the decoder.
 *
 * @module
 */
import { Image, type JPEGQuality, type WEBPQuality } from "imagescript";
import { assertRgbImage, type RgbImage } from "./rgb.ts";

/** Formats {@linkcode decodeImage} accepts. */
export type InputImageFormat = "png" | "jpeg";
/** Formats {@linkcode encodeImage} writes. */
export type OutputImageFormat = "png" | "jpeg" | "webp";

/** Limits for {@linkcode decodeImage}. */
export interface DecodeImageOptions {
  /** Largest accepted file in bytes. @default 33554432 (32 MiB) */
  maxBytes?: number;
  /** Largest accepted `width × height`. @default 16777216 (4096 × 4096) */
  maxPixels?: number;
}

/** Options for {@linkcode encodeImage}. */
export interface EncodeImageOptions {
  /** JPEG and WebP quality in [1, 100]; PNG ignores it. @default 90 */
  quality?: number;
  /** WebP only: lossless instead of `quality`. @default false */
  lossless?: boolean;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The format of an encoded image from its first bytes, or `undefined` for anything this project cannot decode.
 * Names a few common unsupported formats so errors can say what was received.
 */
export function sniffImageFormat(bytes: Uint8Array): InputImageFormat | "webp" | "gif" | "tiff" | "bmp" | undefined {
  const b = (i: number) => bytes[i] ?? -1;
  if (PNG_SIGNATURE.every((v, i) => b(i) === v)) return "png";
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return "jpeg";
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  if (ascii(0, 4) === "GIF8") return "gif";
  if (ascii(0, 4) === "II*\0" || ascii(0, 4) === "MM\0*") return "tiff";
  if (ascii(0, 2) === "BM") return "bmp";
  return undefined;
}

function u32be(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) >>> 0) + (bytes[at + 1]! << 16) + (bytes[at + 2]! << 8) + bytes[at + 3]!;
}

function u16be(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) + bytes[at + 1]!;
}

/** Walks the PNG chunks; returns the IHDR size or throws on a malformed or truncated file. */
function pngHeader(bytes: Uint8Array): { width: number; height: number } {
  let at = 8;
  let size: { width: number; height: number } | undefined;
  while (true) {
    if (at + 8 > bytes.length) {
      throw new TypeError(`PNG is truncated: it ends at byte ${bytes.length} inside a chunk header (no IEND chunk)`);
    }
    const length = u32be(bytes, at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const end = at + 12 + length;
    if (length > 0x7fffffff || end > bytes.length) {
      throw new TypeError(
        `PNG is truncated: chunk '${type}' at byte ${at} needs ${end} bytes, the file has ${bytes.length}`,
      );
    }
    if (size === undefined) {
      if (type !== "IHDR" || length !== 13) {
        throw new TypeError("PNG is malformed: the first chunk is not a 13-byte IHDR");
      }
      size = { width: u32be(bytes, at + 8), height: u32be(bytes, at + 12) };
    }
    if (type === "IEND") return size;
    at = end;
  }
}

const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/** Walks the JPEG segments up to the first scan; returns the SOF size or throws on a malformed or truncated file. */
function jpegHeader(bytes: Uint8Array): { width: number; height: number } {
  let at = 2;
  let size: { width: number; height: number } | undefined;
  while (true) {
    if (at + 4 > bytes.length) {
      throw new TypeError(`JPEG is truncated: it ends at byte ${bytes.length} before any image data`);
    }
    if (bytes[at] !== 0xff) throw new TypeError(`JPEG is malformed: expected a marker at byte ${at}`);
    const marker = bytes[at + 1]!;
    if (marker === 0xff) { // fill byte
      at++;
      continue;
    }
    const length = u16be(bytes, at + 2);
    if (at + 2 + length > bytes.length) {
      throw new TypeError(
        `JPEG is truncated: segment 0xFF${marker.toString(16).toUpperCase()} at byte ${at} runs past the end`,
      );
    }
    if (SOF_MARKERS.has(marker)) {
      if (length < 8) throw new TypeError("JPEG is malformed: SOF segment too short");
      size = { height: u16be(bytes, at + 5), width: u16be(bytes, at + 7) };
    }
    if (marker === 0xda) { // start of scan: entropy-coded data follows, and must end with EOI (FF D9)
      if (size === undefined) throw new TypeError("JPEG is malformed: scan data before any frame header (SOF)");
      // 0xFF inside entropy-coded data is always stuffed (FF 00) or a restart marker (FF D0–D7), so the first FF D9
      // after the scan header is the real end of image. A file cut short has none.
      let eoi = -1;
      for (let i = at + 2 + length; i + 1 < bytes.length; i++) {
        if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) {
          eoi = i;
          break;
        }
      }
      if (eoi < 0) throw new TypeError("JPEG is truncated: no end-of-image marker (FF D9) after the image data");
      return size;
    }
    at += 2 + length;
  }
}

/**
 * Decodes a PNG or JPEG file into an 8-bit {@linkcode RgbImage}. Alpha is dropped (as PIL's `convert("RGB")`), grey
 * and palette images are expanded to RGB, CMYK JPEGs are converted.
 *
 * @param bytes the whole file.
 * @param options size limits, checked on the header before decoding.
 * @throws {TypeError} for an empty, unsupported (WebP, GIF, TIFF, BMP, …), truncated or corrupt file.
 * @throws {RangeError} when the file or its pixel count exceeds the limits, or a dimension is 0.
 * @example
 * ```ts
 * import { decodeImage } from "@ldm/core/image";
 * const image = await decodeImage(await Deno.readFile("tests/fixtures/diffusers-tiny/sr_input.png"));
 * console.log(image.width, image.height); // 32 32
 * ```
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeImageOptions = {}): Promise<RgbImage> {
  const { maxBytes = 32 * 1024 * 1024, maxPixels = 4096 * 4096 } = options;
  if (!(bytes instanceof Uint8Array)) throw new TypeError("image bytes must be a Uint8Array");
  if (bytes.length === 0) throw new TypeError("image file is empty");
  if (bytes.length > maxBytes) {
    throw new RangeError(`image file is ${bytes.length} bytes; the limit is ${maxBytes} bytes`);
  }
  const format = sniffImageFormat(bytes);
  if (format !== "png" && format !== "jpeg") {
    throw new TypeError(
      `unsupported image format: ${
        format === undefined ? "not a PNG or JPEG file" : format.toUpperCase()
      } (accepted: PNG, JPEG)`,
    );
  }
  const { width, height } = format === "png" ? pngHeader(bytes) : jpegHeader(bytes);
  if (width < 1 || height < 1) throw new RangeError(`image has an empty dimension: ${width}×${height}`);
  if (width * height > maxPixels) {
    throw new RangeError(
      `image is ${width}×${height} = ${width * height} pixels; the limit is ${maxPixels} pixels`,
    );
  }
  let decoded: Image;
  try {
    decoded = await Image.decode(bytes);
  } catch (e) {
    throw new TypeError(
      `${format.toUpperCase()} could not be decoded (corrupt file?): ${e instanceof Error ? e.message : e}`,
    );
  }
  if (decoded.width !== width || decoded.height !== height) {
    throw new TypeError(
      `${format.toUpperCase()} header says ${width}×${height} but the decoder produced ${decoded.width}×${decoded.height}`,
    );
  }
  const rgba = decoded.bitmap;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i]!;
    data[j + 1] = rgba[i + 1]!;
    data[j + 2] = rgba[i + 2]!;
  }
  return { width, height, data };
}

/**
 * Encodes an {@linkcode RgbImage} as PNG (lossless), JPEG or WebP.
 *
 * @throws {TypeError} for a malformed image or an unknown format.
 * @throws {RangeError} for a quality outside [1, 100].
 */
export async function encodeImage(
  image: RgbImage,
  format: OutputImageFormat,
  options: EncodeImageOptions = {},
): Promise<Uint8Array> {
  assertRgbImage(image);
  const { quality = 90, lossless = false } = options;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`quality must be an integer in [1, 100]: got ${quality}`);
  }
  const out = new Image(image.width, image.height);
  const rgba = out.bitmap;
  for (let i = 0, j = 0; j < image.data.length; i += 4, j += 3) {
    rgba[i] = image.data[j]!;
    rgba[i + 1] = image.data[j + 1]!;
    rgba[i + 2] = image.data[j + 2]!;
    rgba[i + 3] = 255;
  }
  switch (format) {
    case "png":
      return await out.encode(1, { software: "ldm" });
    case "jpeg":
      return await out.encodeJPEG(quality as JPEGQuality);
    case "webp":
      return await out.encodeWEBP(lossless ? null : quality as WEBPQuality);
    default:
      throw new TypeError(`format must be one of png, jpeg, webp: got ${String(format)}`);
  }
}

/**
 * The output format for a file name from its extension (`.png`, `.jpg`/`.jpeg`, `.webp`), or `undefined`.
 */
export function imageFormatFromPath(path: string): OutputImageFormat | undefined {
  const ext = path.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1];
  switch (ext) {
    case "png":
      return "png";
    case "jpg":
    case "jpeg":
      return "jpeg";
    case "webp":
      return "webp";
    default:
      return undefined;
  }
}

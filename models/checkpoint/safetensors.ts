/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length `N`, `N`
 * bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the tensor bytes,
 * offsets counted from the end of the header. Reading parses and validates the header only; tensors are read by range.
 *
 * @module
 */
import { DTYPE_SIZE, isDType, numel } from "./_dtype.ts";
import { RangeFile } from "./_range_file.ts";
import { type StoredTensor, TensorMapStore } from "./_store.ts";
import type { CheckpointWeights, DType } from "./types.ts";

/** The safetensors reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

/** What one safetensors file holds, after validation. @internal */
export interface SafetensorsContents {
  entries: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates the header of an open safetensors file. @internal
 * @throws {RangeError} for a truncated file or a header whose offsets, shapes or dtypes are inconsistent.
 */
export async function readSafetensorsHeader(file: RangeFile): Promise<SafetensorsContents> {
  const path = file.path;
  if (file.size < 8) {
    throw new RangeError(`${path} is truncated: ${file.size} bytes, a safetensors file starts with an 8-byte length`);
  }
  const lenBytes = await file.read(0, 8);
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new RangeError(
      `${path} is not a safetensors file: header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`,
    );
  }
  const n = Number(headerLen);
  if (8 + n > file.size) {
    throw new RangeError(
      `${path} is truncated: the header claims ${n} bytes but the file has ${file.size - 8} after the length`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await file.read(8, n)));
  } catch (e) {
    throw new RangeError(`${path}: safetensors header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new RangeError(`${path}: safetensors header must be a JSON object`);
  }
  const dataStart = 8 + n;
  const dataLen = file.size - dataStart;
  const metadata: Record<string, string> = {};
  const list: { name: string; begin: number; t: StoredTensor }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new RangeError(`${path}: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") {
          throw new RangeError(`${path}: __metadata__.${k} must be a string: got ${JSON.stringify(v)}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    const what = `${path}: tensor '${name}'`;
    if (typeof raw !== "object" || raw === null) {
      throw new RangeError(`${what} has no {dtype, shape, data_offsets} entry`);
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new RangeError(
        `${what} has unknown dtype ${JSON.stringify(dtype)}; supported: ${Object.keys(DTYPE_SIZE).join(", ")}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new RangeError(`${what}: shape must be an array of non-negative integers: got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0]! > offsets[1]!) {
      throw new RangeError(
        `${what}: data_offsets must be [begin, end] with 0 <= begin <= end: got ${JSON.stringify(offsets)}`,
      );
    }
    const [begin, end] = offsets as [number, number];
    const byteLength = numel(shape) * DTYPE_SIZE[dtype as DType];
    if (end - begin !== byteLength) {
      throw new RangeError(
        `${what}: the header lies: shape ${
          JSON.stringify(shape)
        } of ${dtype} needs ${byteLength} bytes but data_offsets ` +
          `[${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > dataLen) {
      throw new RangeError(
        `${path} is truncated: tensor '${name}' ends at data byte ${end} but the file holds ${dataLen} bytes of data`,
      );
    }
    const abs = dataStart + begin;
    list.push({
      name,
      begin,
      t: { dtype, shape: [...shape], byteLength, file: path, read: () => file.read(abs, byteLength) },
    });
  }
  list.sort((a, b) => a.begin - b.begin || a.t.byteLength - b.t.byteLength);
  let prevEnd = 0;
  let prevName = "";
  for (const { name, begin, t } of list) {
    if (begin < prevEnd) {
      throw new RangeError(`${path}: the header lies: tensors '${prevName}' and '${name}' overlap in the data section`);
    }
    if (t.byteLength > 0) {
      prevEnd = begin + t.byteLength;
      prevName = name;
    }
  }
  return { entries: new Map(list.map(({ name, t }) => [name, t])), metadata };
}

/**
 * Opens one `.safetensors` file: reads and validates its header, keeps the file open for ranged tensor reads.
 *
 * @example Reading one tensor
 * ```ts ignore
 * const w = await openSafetensors("unet/diffusion_pytorch_model.safetensors");
 * try {
 *   const kernel = await w.readFloat32("conv_in.weight"); // float32 whatever the stored dtype
 * } finally {
 *   w.close();
 * }
 * ```
 *
 * @throws {Deno.errors.NotFound} naming the path when the file does not exist.
 * @throws {RangeError} for a truncated file, an unknown dtype or a header that contradicts itself.
 */
export async function openSafetensors(path: string): Promise<CheckpointWeights> {
  const file = await RangeFile.open(path);
  try {
    const { entries, metadata } = await readSafetensorsHeader(file);
    return new TensorMapStore(entries, [file], metadata);
  } catch (e) {
    file.close();
    throw e;
  }
}

/** One tensor to write with {@linkcode writeSafetensors}. */
export interface SafetensorsTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /**
   * The bytes (any typed array, reinterpreted as little-endian bytes), or a function producing them when it is its
   * turn to be written, so large files can be generated tensor by tensor without holding them all.
   */
  data: ArrayBufferView | (() => ArrayBufferView | Promise<ArrayBufferView>);
}

/** Options for {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** String map stored as `__metadata__` (safetensors' Python writer puts `{"format": "pt"}` there). */
  metadata?: Record<string, string>;
}

/**
 * Writes a safetensors file, tensors in the given order, streaming each tensor's bytes to disk. The header is padded
 * with spaces to a multiple of 8 bytes, as the reference writer does, so every tensor starts 8-byte aligned.
 *
 * @throws {RangeError} naming the tensor when its data length does not match `shape` × dtype size, or names repeat.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly SafetensorsTensor[],
  { metadata }: WriteSafetensorsOptions = {},
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (Object.hasOwn(header, t.name)) throw new RangeError(`writeSafetensors: duplicate tensor name '${t.name}'`);
    if (!isDType(t.dtype)) throw new RangeError(`writeSafetensors: tensor '${t.name}' has unknown dtype ${t.dtype}`);
    const len = numel(t.shape) * DTYPE_SIZE[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  const pad = (8 - (enc.encode(json).byteLength % 8)) % 8;
  json += " ".repeat(pad);
  const headerBytes = enc.encode(json);
  const lenBytes = new Uint8Array(8);
  new DataView(lenBytes.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, lenBytes);
    await writeAll(file, headerBytes);
    for (const t of tensors) {
      const view = typeof t.data === "function" ? await t.data() : t.data;
      const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      const want = numel(t.shape) * DTYPE_SIZE[t.dtype];
      if (bytes.byteLength !== want) {
        throw new RangeError(
          `writeSafetensors: tensor '${t.name}' ${t.dtype}${
            JSON.stringify(t.shape)
          } needs ${want} bytes: got ${bytes.byteLength}`,
        );
      }
      await writeAll(file, bytes);
    }
  } finally {
    file.close();
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) done += await file.write(bytes.subarray(done));
}

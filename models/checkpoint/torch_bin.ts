/**
 * PyTorch `torch.save` checkpoints (`pytorch_model.bin`, `diffusion_pytorch_model.bin`): a zip archive (stored, not
 * compressed) holding `<archive>/data.pkl` (the pickled state dict) and one file per storage, `<archive>/data/<key>`.
 * The pickle goes through a restricted unpickler (no code runs); the zip's central directory is read with unzipit over
 * ranged file reads, and tensor bytes are read by range straight from the file.
 *
 * @module
 */
import { unzipRaw, type ZipEntry } from "unzipit";
import { DTYPE_SIZE, numel } from "./_dtype.ts";
import { type PickledTensor, restrictedUnpickle } from "./_pickle.ts";
import { RangeFile } from "./_range_file.ts";
import { type StoredTensor, TensorMapStore } from "./_store.ts";
import type { CheckpointWeights } from "./types.ts";

/** A Blob that stands for a byte range of the file (never read); lets unzipit tell us where a stored entry's data starts. */
class FileRangeBlob extends Blob {
  constructor(readonly offset: number, readonly length: number) {
    super([]);
  }
}

/** unzipit's `Reader` over a {@linkcode RangeFile}: every read is a ranged read of the file. */
class RangeFileReader {
  constructor(readonly file: RangeFile) {}
  getLength(): Promise<number> {
    return Promise.resolve(this.file.size);
  }
  read(offset: number, size: number): Promise<Uint8Array<ArrayBuffer>> {
    return this.file.read(offset, size);
  }
  /** unzipit hands a stored entry's data range to `sliceAsBlob`; we answer with the range itself. */
  sliceAsBlob(offset: number, length: number): Promise<Blob> {
    return Promise.resolve(new FileRangeBlob(offset, length));
  }
}

/** Where a storage's bytes are: a byte range of the file (stored entry) or a compressed entry to inflate. */
type StorageLocation = { start: number; size: number } | { entry: ZipEntry; size: number };

async function locate(entry: ZipEntry): Promise<StorageLocation> {
  if (entry.compressionMethod === 0) {
    const blob = await entry.blob();
    if (blob instanceof FileRangeBlob) return { start: blob.offset, size: blob.length };
  }
  // torch.save never compresses storages; a re-zipped archive might. Inflate those on read.
  return { entry, size: entry.size };
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

/**
 * Gathers a strided view (element strides, element offset 0 within `src`) into C order. Used for the rare
 * non-contiguous tensor (a saved transpose or expand): the result is what `tensor.contiguous()` would hold.
 */
function gather(src: Uint8Array, shape: readonly number[], stride: readonly number[], elem: number): Uint8Array {
  const n = numel(shape);
  const out = new Uint8Array(n * elem);
  const idx = new Array<number>(shape.length).fill(0);
  let srcOff = 0;
  for (let i = 0; i < n; i++) {
    out.set(src.subarray(srcOff * elem, srcOff * elem + elem), i * elem);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]!++;
      srcOff += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      srcOff -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Opens a `torch.save` zip checkpoint holding a flat state dict of tensors.
 *
 * Non-contiguous tensors (strides other than C order) are materialised in C order on read, as `.contiguous()` would;
 * the archive must be little-endian (`byteorder`), as every x86/ARM save is.
 *
 * @throws {Deno.errors.NotFound} naming the path when the file does not exist.
 * @throws {Error} for a non-zip file (e.g. the pre-1.6 legacy format), a pickle that names any global outside the
 * torch state-dict allow-list (`refusing to unpickle global os.system ...`), a state dict holding non-tensors, a
 * storage missing from the archive or smaller than a tensor needs.
 */
export async function openTorchBin(path: string): Promise<CheckpointWeights> {
  const file = await RangeFile.open(path);
  try {
    const entries = await readTorchBin(file);
    return new TensorMapStore(entries, [file]);
  } catch (e) {
    file.close();
    throw e;
  }
}

/** Reads the archive's directory and pickle into stored-tensor entries. @internal */
export async function readTorchBin(file: RangeFile): Promise<Map<string, StoredTensor>> {
  const path = file.path;
  const magic = file.size >= 4 ? await file.read(0, 4) : new Uint8Array(0);
  if (!(magic[0] === 0x50 && magic[1] === 0x4b)) {
    if (magic[0] === 0x80) {
      throw new Error(
        `${path} is a legacy (pre-zip, torch < 1.6) torch.save file, which is not supported: re-save it with a ` +
          "current torch or convert it to safetensors",
      );
    }
    throw new Error(`${path} is not a torch.save zip archive (no zip signature)`);
  }
  const reader = new RangeFileReader(file);
  let zipEntries: ZipEntry[];
  try {
    zipEntries = (await unzipRaw(reader)).entries;
  } catch (e) {
    throw new Error(`${path} is not a readable zip archive (truncated?): ${(e as Error).message}`);
  }
  const byName = new Map(zipEntries.map((e) => [e.name, e]));
  const pkls = zipEntries.filter((e) => e.name === "data.pkl" || e.name.endsWith("/data.pkl"));
  if (pkls.length !== 1) {
    throw new Error(`${path}: expected exactly one <archive>/data.pkl in the zip, found ${pkls.length}`);
  }
  const pkl = pkls[0]!;
  const prefix = pkl.name.slice(0, pkl.name.length - "data.pkl".length);
  const byteorder = byName.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = (await byteorder.text()).trim();
    if (order !== "little") {
      throw new Error(`${path}: byteorder is '${order}'; only little-endian archives are supported`);
    }
  }
  let pklBytes: Uint8Array;
  try {
    pklBytes = new Uint8Array(await pkl.arrayBuffer());
  } catch (e) {
    throw new Error(`${path}: cannot read ${pkl.name} (truncated?): ${(e as Error).message}`);
  }
  const root = restrictedUnpickle(pklBytes, `${path}:${pkl.name}`);
  if (!(root instanceof Map)) throw new Error(`${path}: the pickle holds a ${typeof root}, not a state dict`);

  const locations = new Map<string, Promise<StorageLocation>>();
  const result = new Map<string, StoredTensor>();
  for (const [key, value] of root) {
    if (typeof key !== "string") throw new Error(`${path}: state dict key ${String(key)} is not a string`);
    const t = value as PickledTensor;
    if (typeof t !== "object" || t === null || t.kind !== "tensor") {
      throw new Error(`${path}: state dict entry '${key}' is not a tensor; only flat tensor state dicts are supported`);
    }
    const { storage, shape, stride, offset } = t;
    const elem = DTYPE_SIZE[storage.dtype];
    const n = numel(shape);
    // The last element the view touches, in storage elements.
    const span = n === 0 ? 0 : 1 + shape.reduce((acc, d, i) => acc + (d - 1) * stride[i]!, 0);
    if (offset + span > storage.numel) {
      throw new Error(
        `${path}: tensor '${key}' ${JSON.stringify(shape)} at offset ${offset} needs ${offset + span} elements of ` +
          `storage '${storage.key}', which has ${storage.numel}`,
      );
    }
    const entryName = `${prefix}data/${storage.key}`;
    const entry = byName.get(entryName);
    if (!entry) throw new Error(`${path}: storage '${storage.key}' of tensor '${key}' is missing (${entryName})`);
    if (entry.size < storage.numel * elem) {
      throw new Error(
        `${path}: storage ${entryName} holds ${entry.size} bytes but the pickle declares ${storage.numel} ` +
          `${storage.dtype} elements (${storage.numel * elem} bytes)`,
      );
    }
    let loc = locations.get(storage.key);
    if (!loc) {
      loc = locate(entry);
      locations.set(storage.key, loc);
    }
    const where = await loc;
    if ("start" in where && where.start + where.size > file.size) {
      throw new RangeError(`${path} is truncated: storage ${entryName} ends past the end of the file`);
    }
    const contiguous = isContiguous(shape, stride);
    const readSpan = async (): Promise<Uint8Array> => {
      if ("start" in where) return await file.read(where.start + offset * elem, span * elem);
      const all = new Uint8Array(await where.entry.arrayBuffer());
      return all.slice(offset * elem, (offset + span) * elem);
    };
    result.set(key, {
      dtype: storage.dtype,
      shape: [...shape],
      byteLength: n * elem,
      file: path,
      read: contiguous ? readSpan : async () => gather(await readSpan(), shape, stride, elem),
    });
  }
  return result;
}

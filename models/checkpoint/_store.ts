/**
 * The one {@linkcode CheckpointWeights} implementation: a name → stored-tensor map whose entries know how to read their
 * own bytes. The format readers (safetensors, torch `.bin`) only build the map.
 *
 * @module
 */
import { bytesToFloat32, bytesToInt64 } from "./_dtype.ts";
import type { RangeFile } from "./_range_file.ts";
import type { CheckpointWeights, DType, TensorInfo } from "./types.ts";

/** One tensor as a format reader found it. */
export interface StoredTensor {
  dtype: DType;
  shape: number[];
  byteLength: number;
  /** The file it lives in (for messages and `fileOf`). */
  file: string;
  /** Reads exactly the tensor's bytes (C order, little-endian). */
  read(): Promise<Uint8Array>;
}

/** A weight store over a map of stored tensors and the files that back them. */
export class TensorMapStore implements CheckpointWeights {
  readonly #entries: Map<string, StoredTensor>;
  readonly #handles: RangeFile[];
  readonly #what: string;
  #closed = false;
  readonly files: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;

  /**
   * @param entries tensors in the order `names()` reports them.
   * @param handles open files closed by `close()`.
   * @param metadata safetensors `__metadata__` (merged), `{}` otherwise.
   */
  constructor(entries: Map<string, StoredTensor>, handles: RangeFile[], metadata: Record<string, string> = {}) {
    this.#entries = entries;
    this.#handles = handles;
    this.files = handles.map((h) => h.path);
    this.metadata = Object.freeze({ ...metadata });
    this.#what = this.files.length === 1 ? this.files[0]! : `${this.files.length} files (${this.files.join(", ")})`;
  }

  #get(name: string): StoredTensor {
    if (this.#closed) throw new Error(`weight store over ${this.#what} was closed; cannot read '${name}'`);
    const e = this.#entries.get(name);
    if (!e) throw new RangeError(`no tensor named '${name}' in ${this.#what}`);
    return e;
  }

  names(): string[] {
    return [...this.#entries.keys()];
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.#get(name);
    return { dtype: e.dtype, shape: [...e.shape], byteLength: e.byteLength };
  }

  fileOf(name: string): string {
    return this.#get(name).file;
  }

  readRaw(name: string): Promise<Uint8Array> {
    return this.#get(name).read();
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const e = this.#get(name);
    return bytesToFloat32(await e.read(), e.dtype);
  }

  async readInt64(name: string): Promise<BigInt64Array> {
    const e = this.#get(name);
    return bytesToInt64(await e.read(), e.dtype, `tensor '${name}' in ${e.file}`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of this.#handles) h.close();
  }

  /** Closes the store when used with `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

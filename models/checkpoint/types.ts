/**
 * The weight-store contract shared by the checkpoint readers (safetensors, sharded safetensors, PyTorch `.bin`) and
 * the ONNX graph builders that consume them.
 *
 * @module
 */

/** Shape, element type and size on disk of one stored tensor. */
export interface TensorInfo {
  /** The element type as safetensors spells it: `"F32"`, `"F16"`, `"BF16"`, `"I64"`, ... (see {@linkcode DType}). */
  dtype: string;
  /** The tensor's dimensions; `[]` for a scalar. */
  shape: number[];
  /** Bytes the tensor occupies in the file (`numel × element size`). */
  byteLength: number;
}

/**
 * Read-only, name-addressed access to the tensors of a checkpoint. Implementations read each tensor by byte range
 * when it is asked for, so a multi-gigabyte checkpoint never has to fit in memory at once.
 */
export interface WeightStore {
  /** Every tensor name, in file order. */
  names(): string[];
  /** Whether a tensor of that name exists. */
  has(name: string): boolean;
  /**
   * Shape, dtype and byte length of a tensor.
   * @throws {RangeError} naming the key and the file when there is no such tensor.
   */
  info(name: string): { dtype: string; shape: number[]; byteLength: number };
  /**
   * Reads a tensor and converts it to float32. F32 is returned as stored; F16, BF16 and the F8 formats convert
   * exactly; F64 and the integer types are rounded to the nearest float32.
   * @throws {RangeError} naming the key and the file when there is no such tensor.
   */
  readFloat32(name: string): Promise<Float32Array>;
  /** Releases the open files. Further reads throw. */
  close(): void;
}

/** Element types the readers understand, spelled as in the safetensors header. */
export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "F8_E4M3"
  | "F8_E5M2"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/**
 * A {@linkcode WeightStore} with the extras the readers in this folder provide: raw bytes, int64 reads and the file
 * each tensor lives in.
 */
export interface CheckpointWeights extends WeightStore {
  /** The files backing this store (one, or every shard). */
  readonly files: readonly string[];
  /** The file a tensor is read from. @throws {RangeError} for an unknown name. */
  fileOf(name: string): string;
  /** The tensor's bytes exactly as stored (little-endian, C order). @throws {RangeError} for an unknown name. */
  readRaw(name: string): Promise<Uint8Array>;
  /**
   * Reads an I64/I32/I16/I8/U8/BOOL tensor as int64 (e.g. token ids in reference files).
   * @throws {TypeError} naming the key and dtype when the tensor is a float tensor.
   */
  readInt64(name: string): Promise<BigInt64Array>;
  /** The `__metadata__` map of a safetensors file (merged over shards); `{}` for other formats. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Same as `close()`, so a store can be held with `using`. */
  [Symbol.dispose](): void;
}

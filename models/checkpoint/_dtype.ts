/**
 * Element sizes and exact conversions of stored tensor bytes to float32 / int64.
 *
 * @module
 */
import type { DType } from "./types.ts";

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Whether `s` names a dtype this module can read. */
export function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.hasOwn(DTYPE_SIZE, s);
}

/** The float dtypes (everything else is an integer or bool type). */
export function isFloatDType(d: DType): boolean {
  return d === "F64" || d === "F32" || d === "F16" || d === "BF16" || d === "F8_E4M3" || d === "F8_E5M2";
}

/** Decodes one IEEE binary16 value (as its 16 bits) exactly. */
export function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | undefined;
/** All 65536 binary16 values as float32 (each exactly representable), built on first use. */
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfBitsToNumber(i);
  }
  return halfTable;
}

/** float8 e4m3fn (the `torch.float8_e4m3fn` that safetensors calls F8_E4M3): bias 7, no infinities, S.1111.111 = NaN. */
function e4m3ToNumber(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const mant = b & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

/** float8 e5m2: the top byte of a binary16. */
function e5m2ToNumber(b: number): number {
  return halfBitsToNumber(b << 8);
}

function view<T>(bytes: Uint8Array, ctor: { new (b: ArrayBufferLike, o: number, n: number): T }, size: number): T {
  // Typed-array views need an element-aligned offset; copy only when the bytes are not aligned.
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new ctor(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

/**
 * Converts little-endian tensor bytes of `dtype` to float32. F32 returns a view when aligned (no copy), F16 / BF16 /
 * F8 convert exactly; F64 and integers round to nearest float32.
 */
export function bytesToFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const n = bytes.byteLength / DTYPE_SIZE[dtype];
  switch (dtype) {
    case "F32":
      return view(bytes, Float32Array, 4);
    case "F16": {
      const src = view(bytes, Uint16Array, 2);
      const table = halfLookup();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case "BF16": {
      // bfloat16 is the upper half of a float32: widening is a 16-bit shift, exact for every value incl. NaN payloads.
      const src = view(bytes, Uint16Array, 2);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case "F8_E4M3":
    case "F8_E5M2": {
      const f = dtype === "F8_E4M3" ? e4m3ToNumber : e5m2ToNumber;
      const table = new Float32Array(256);
      for (let i = 0; i < 256; i++) table[i] = f(i);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[bytes[i]!]!;
      return out;
    }
    case "F64":
      return Float32Array.from(view(bytes, Float64Array, 8));
    case "I64":
      return Float32Array.from(view(bytes, BigInt64Array, 8), (v) => Number(v));
    case "U64":
      return Float32Array.from(view(bytes, BigUint64Array, 8), (v) => Number(v));
    case "I32":
      return Float32Array.from(view(bytes, Int32Array, 4));
    case "U32":
      return Float32Array.from(view(bytes, Uint32Array, 4));
    case "I16":
      return Float32Array.from(view(bytes, Int16Array, 2));
    case "U16":
      return Float32Array.from(view(bytes, Uint16Array, 2));
    case "I8":
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    case "U8":
    case "BOOL":
      return Float32Array.from(bytes);
  }
}

/**
 * Converts little-endian integer tensor bytes to int64.
 * @throws {TypeError} for float dtypes (`what` names the tensor in the message).
 */
export function bytesToInt64(bytes: Uint8Array, dtype: DType, what: string): BigInt64Array {
  switch (dtype) {
    case "I64":
      return view(bytes, BigInt64Array, 8).slice();
    case "U64":
      return BigInt64Array.from(view(bytes, BigUint64Array, 8), (v) => BigInt.asIntN(64, v));
    case "I32":
      return BigInt64Array.from(view(bytes, Int32Array, 4), (v) => BigInt(v));
    case "U32":
      return BigInt64Array.from(view(bytes, Uint32Array, 4), (v) => BigInt(v));
    case "I16":
      return BigInt64Array.from(view(bytes, Int16Array, 2), (v) => BigInt(v));
    case "U16":
      return BigInt64Array.from(view(bytes, Uint16Array, 2), (v) => BigInt(v));
    case "I8":
      return BigInt64Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), (v) => BigInt(v));
    case "U8":
    case "BOOL":
      return BigInt64Array.from(bytes, (v) => BigInt(v));
    default:
      throw new TypeError(`${what} has dtype ${dtype}: readInt64() needs an integer or bool tensor`);
  }
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * The protobuf side of the graph builder: the pinned onnx-proto bindings, element type codes and the byte-level
 * helpers that let initializers be streamed one by one.
 *
 * @module
 */
import pkg from "onnx-proto";
import type * as proto from "onnx-proto";

/** The onnx-proto namespace (onnx 1.10 `onnx.proto` compiled by protobufjs). */
export const { onnx } = pkg;

/** NodeProto fields. */
export type INodeProto = proto.onnx.INodeProto;
/** ValueInfoProto fields. */
export type IValueInfoProto = proto.onnx.IValueInfoProto;
/** AttributeProto fields. */
export type IAttributeProto = proto.onnx.IAttributeProto;
/** TensorProto fields. */
export type ITensorProto = proto.onnx.ITensorProto;
/** ModelProto fields. */
export type IModelProto = proto.onnx.IModelProto;

/** Element types the builder emits. */
export type ElementType = "float32" | "float16" | "int64" | "int32" | "bool";

/** ONNX `TensorProto.DataType` codes of {@linkcode ElementType}. */
export const DATA_TYPE: Readonly<Record<ElementType, number>> = {
  float32: 1,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
};

/** Bytes per element of each {@linkcode ElementType}. */
export const ELEMENT_SIZE: Readonly<Record<ElementType, number>> = {
  float32: 4,
  float16: 2,
  int64: 8,
  int32: 4,
  bool: 1,
};

/** The {@linkcode ElementType} of an ONNX data type code, or undefined for codes the builder does not emit. */
export function elementTypeOfCode(code: number): ElementType | undefined {
  for (const [k, v] of Object.entries(DATA_TYPE)) if (v === code) return k as ElementType;
  return undefined;
}

/** Protobuf varint encoding of a non-negative safe integer. */
export function varint(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint expects a non-negative safe integer: got ${n}`);
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** ModelProto.graph, GraphProto.initializer and TensorProto.raw_data field numbers (onnx.proto). */
export const FIELD = { modelGraph: 7, graphInitializer: 5, tensorRawData: 9 } as const;

/**
 * The key and length prefix of a length-delimited protobuf field (wire type 2) whose payload of `length` bytes
 * follows. Writing payloads after their prefix lets a message be streamed in pieces once its length is known.
 */
export function lengthPrefix(field: number, length: number): Uint8Array {
  return concatBytes([varint((field << 3) | 2), varint(length)]);
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Whether this machine stores typed arrays little-endian, as ONNX raw_data requires. */
export const LITTLE_ENDIAN: boolean = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

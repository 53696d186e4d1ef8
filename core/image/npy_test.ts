import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { decodeNpy, encodeNpy } from "./npy.ts";

function header(bytes: Uint8Array): string {
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint16(8, true);
  return new TextDecoder("latin1").decode(bytes.subarray(10, 10 + len));
}

Deno.test("encodeNpy() writes numpy's v1.0 layout and decodeNpy() reads it back exactly", () => {
  const t = new Tensor(new Float32Array([0, 0.5, 1, -2.25, 1e-30, 3.4e38]), [1, 2, 3]);
  const bytes = encodeNpy(t);
  const h = header(bytes);
  assert.equal((10 + h.length) % 64, 0);
  assert.ok(h.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }"), h);
  assert.ok(h.endsWith(" \n"));
  assert.equal(bytes.length, 10 + h.length + 24);
  const back = decodeNpy(bytes);
  assert.deepEqual(back.shape, [1, 2, 3]);
  assert.deepEqual(back.data, t.data);
  // One-dimensional shapes are written as Python 1-tuples.
  assert.match(header(encodeNpy(new Tensor(new Float32Array(3), [3]))), /'shape': \(3,\), \}/);
  assert.equal(encodeNpy(new Tensor(new Float32Array(3), [3])).length, 128 + 12);
});

/** A .npy file as numpy would write it for another dtype/order. */
function rawNpy(descr: string, fortran: boolean, shape: string, data: Uint8Array, version = 1): Uint8Array {
  let h = `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': ${shape}, }`;
  const pre = version === 1 ? 10 : 12;
  h = h.padEnd(Math.ceil((pre + h.length + 1) / 64) * 64 - pre - 1) + "\n";
  const out = new Uint8Array(pre + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, h.length, true);
  else dv.setUint32(8, h.length, true);
  out.set(new TextEncoder().encode(h), pre);
  out.set(data, pre + h.length);
  return out;
}

Deno.test("decodeNpy() reads float64 (rounded to float32) and version 2 headers", () => {
  const f64 = new Float64Array([0.1, -1e10, 2]);
  const t = decodeNpy(rawNpy("<f8", false, "(3,)", new Uint8Array(f64.buffer), 2));
  assert.deepEqual(t.shape, [3]);
  assert.deepEqual([...t.data], [Math.fround(0.1), -1e10, 2]);
  assert.deepEqual(decodeNpy(rawNpy("<f4", false, "()", new Uint8Array(new Float32Array([7]).buffer))).shape, []);
});

Deno.test("decodeNpy() rejects what it cannot read with a clear error", () => {
  const four = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
  assert.throws(() => decodeNpy(new Uint8Array([1, 2, 3])), /not a \.npy file/);
  assert.throws(() => decodeNpy(new TextEncoder().encode("PK\x03\x04 this is a zip")), /not a \.npy file/);
  assert.throws(() => decodeNpy(rawNpy("<f4", true, "(2, 2)", four)), /Fortran order/);
  assert.throws(
    () => decodeNpy(rawNpy("<i8", false, "(2,)", new Uint8Array(16))),
    /dtype must be float32 .* got '<i8'/,
  );
  assert.throws(() => decodeNpy(rawNpy(">f4", false, "(4,)", four)), /got '>f4'/);
  const full = rawNpy("<f4", false, "(2, 2)", four);
  assert.throws(
    () => decodeNpy(full.subarray(0, full.length - 1)),
    /truncated: shape \(2, 2\) needs 16 data bytes, found 15/,
  );
  assert.throws(() => decodeNpy(full.subarray(0, 40)), /truncated in its header/);
  assert.throws(
    () => decodeNpy(rawNpy("<f4", false, "(1000, 1000)", new Uint8Array(0)), { maxElements: 1000 }),
    /limit is 1000/,
  );
  assert.throws(() => decodeNpy(rawNpy("<f4", false, "(a, 2)", four)), /shape is malformed/);
});

import assert from "node:assert/strict";
import { decodeBase64, decodeBase64Portable } from "./_base64.ts";

Deno.test("decodeBase64Portable() decodes what the native decoder decodes, for every length and byte", () => {
  let x = 7;
  for (let n = 0; n < 300; n++) {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) bytes[i] = x = (x * 1103515245 + 12345) >>> 0 >>> 24;
    const text = bytes.toBase64();
    assert.deepEqual(decodeBase64Portable(text), bytes, `length ${n}`);
    assert.deepEqual(decodeBase64(text), bytes, `length ${n}`);
  }
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(decodeBase64Portable(all.toBase64()), all);
});

Deno.test("decodeBase64Portable() throws on text that is not base64", () => {
  assert.throws(() => decodeBase64Portable("not base64!"));
  assert.throws(() => decodeBase64("not base64!"));
});

import assert from "node:assert/strict";
import { Image } from "imagescript";
import { probeImage } from "./_image_probe.ts";

Deno.test("probeImage() reads format and size from PNG, JPEG and WebP headers", async () => {
  const img = new Image(37, 21).fill(0x808080ff);
  assert.deepEqual(probeImage(new Uint8Array(await img.encode())), { format: "png", width: 37, height: 21 });
  assert.deepEqual(probeImage(new Uint8Array(await img.encodeJPEG(80))), { format: "jpeg", width: 37, height: 21 });
  const webp = probeImage(new Uint8Array(await img.encodeWEBP(80)));
  assert.deepEqual(webp, { format: "webp", width: 37, height: 21 });
  const lossless = probeImage(new Uint8Array(await img.encodeWEBP(null)));
  assert.deepEqual(lossless, { format: "webp", width: 37, height: 21 });
});

Deno.test("probeImage() returns null for other or truncated bytes", () => {
  assert.equal(probeImage(new Uint8Array(0)), null);
  assert.equal(probeImage(new TextEncoder().encode("GIF89a......")), null);
  assert.equal(probeImage(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0])), null);
  assert.equal(probeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16])), null);
});

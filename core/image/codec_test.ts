import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { decodeImage, encodeImage, imageFormatFromPath, sniffImageFormat } from "./codec.ts";
import type { RgbImage } from "./rgb.ts";

const FIXTURE = new URL("../../tests/fixtures/diffusers-tiny/sr_input.png", import.meta.url);

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A PNG written by hand: `rows` are the unfiltered scanlines (filter byte 0 is prepended). */
function craftPng(
  width: number,
  height: number,
  bitDepth: number,
  colorType: number,
  rows: Uint8Array[],
  extra: Uint8Array[] = [],
): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([bitDepth, colorType, 0, 0, 0], 8);
  const raw = new Uint8Array(rows.reduce((n, r) => n + r.length + 1, 0));
  let at = 0;
  for (const r of rows) {
    raw[at++] = 0;
    raw.set(r, at);
    at += r.length;
  }
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", new Uint8Array(deflateSync(raw))),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set([x * 8, y * 8, (x + y) * 4], (y * width + x) * 3);
  }
  return { width, height, data };
}

Deno.test("decodeImage() reads the fixture PNG as 32×32 RGB", async () => {
  const img = await decodeImage(await Deno.readFile(FIXTURE));
  assert.equal(img.width, 32);
  assert.equal(img.height, 32);
  assert.equal(img.data.length, 32 * 32 * 3);
  assert.deepEqual([...img.data.subarray(0, 6)], [0, 0, 0, 8, 0, 37]);
});

Deno.test("encodeImage() round-trips PNG exactly, JPEG closely, and writes WebP", async () => {
  const img = gradient(24, 16);
  const png = await encodeImage(img, "png");
  assert.equal(sniffImageFormat(png), "png");
  assert.deepEqual(await decodeImage(png), img);
  const jpeg = await encodeImage(img, "jpeg", { quality: 95 });
  assert.equal(sniffImageFormat(jpeg), "jpeg");
  const back = await decodeImage(jpeg);
  assert.equal(back.width, 24);
  const meanErr = back.data.reduce((s, v, i) => s + Math.abs(v - img.data[i]!), 0) / img.data.length;
  assert.ok(meanErr < 4, `JPEG mean error ${meanErr}`);
  const webp = await encodeImage(img, "webp", { quality: 80 });
  assert.equal(sniffImageFormat(webp), "webp");
  const lossless = await encodeImage(img, "webp", { lossless: true });
  assert.equal(sniffImageFormat(lossless), "webp");
  await assert.rejects(
    () => encodeImage(img, "jpeg", { quality: 0 }),
    /quality must be an integer in \[1, 100\]: got 0/,
  );
  await assert.rejects(() => encodeImage(img, "gif" as "png"), /format must be one of png, jpeg, webp: got gif/);
});

Deno.test("decodeImage() expands grey, grey+alpha, palette and 16-bit PNGs to RGB and drops alpha", async () => {
  const grey = craftPng(2, 1, 8, 0, [new Uint8Array([10, 200])]);
  assert.deepEqual([...(await decodeImage(grey)).data], [10, 10, 10, 200, 200, 200]);
  const greyAlpha = craftPng(2, 1, 8, 4, [new Uint8Array([10, 0, 200, 128])]);
  assert.deepEqual([...(await decodeImage(greyAlpha)).data], [10, 10, 10, 200, 200, 200]);
  const rgba = craftPng(1, 1, 8, 6, [new Uint8Array([1, 2, 3, 0])]);
  assert.deepEqual([...(await decodeImage(rgba)).data], [1, 2, 3]);
  const plte = chunk("PLTE", new Uint8Array([255, 0, 0, 0, 0, 255]));
  const palette = craftPng(2, 1, 8, 3, [new Uint8Array([1, 0])], [plte]);
  assert.deepEqual([...(await decodeImage(palette)).data], [0, 0, 255, 255, 0, 0]);
  const deep = craftPng(1, 1, 16, 2, [new Uint8Array([0x12, 0x34, 0x80, 0x00, 0xff, 0xff])]);
  assert.deepEqual([...(await decodeImage(deep)).data], [0x12, 0x80, 0xff]);
});

Deno.test("decodeImage() rejects unsupported, truncated, corrupt and oversized files with clear errors", async (t) => {
  const png = await encodeImage(gradient(24, 16), "png");
  const jpeg = await encodeImage(gradient(24, 16), "jpeg");
  const webp = await encodeImage(gradient(24, 16), "webp");
  await t.step("unsupported formats", async () => {
    await assert.rejects(() => decodeImage(webp), {
      name: "TypeError",
      message: /unsupported image format: WEBP \(accepted: PNG, JPEG\)/,
    });
    await assert.rejects(() => decodeImage(new TextEncoder().encode("GIF89a....")), /unsupported image format: GIF/);
    await assert.rejects(() => decodeImage(new TextEncoder().encode("hello world")), /not a PNG or JPEG file/);
    await assert.rejects(() => decodeImage(new Uint8Array(0)), /image file is empty/);
  });
  await t.step("truncated files", async () => {
    for (const cut of [9, 20, 40, png.length - 5, png.length - 12]) {
      await assert.rejects(() => decodeImage(png.subarray(0, cut)), {
        name: "TypeError",
        message: /PNG is (truncated|malformed)/,
      });
    }
    for (const cut of [3, 30, Math.floor(jpeg.length / 2), jpeg.length - 2]) {
      await assert.rejects(() => decodeImage(jpeg.subarray(0, cut)), {
        name: "TypeError",
        message: /JPEG is (truncated|malformed)/,
      });
    }
  });
  await t.step("corrupt image data", async () => {
    const bad = png.slice();
    const idat = new TextDecoder("latin1").decode(bad).indexOf("IDAT");
    bad.fill(0x55, idat + 8, idat + 30); // garbage in the compressed stream (CRC now wrong too)
    await assert.rejects(() => decodeImage(bad), { name: "TypeError", message: /PNG could not be decoded/ });
  });
  await t.step("limits, checked on the header before decoding", async () => {
    await assert.rejects(() => decodeImage(png, { maxPixels: 24 * 16 - 1 }), {
      name: "RangeError",
      message: /image is 24×16 = 384 pixels; the limit is 383 pixels/,
    });
    await assert.rejects(() => decodeImage(jpeg, { maxPixels: 100 }), /limit is 100 pixels/);
    await assert.rejects(() => decodeImage(png, { maxBytes: 10 }), /image file is \d+ bytes; the limit is 10 bytes/);
    // A tiny file claiming 100000×100000 pixels (a decompression bomb) is refused without decoding.
    const bomb = craftPng(1, 1, 8, 2, [new Uint8Array(3)]);
    new DataView(bomb.buffer).setUint32(16, 100000);
    new DataView(bomb.buffer).setUint32(20, 100000);
    await assert.rejects(() => decodeImage(bomb), /image is 100000×100000 = 10000000000 pixels/);
  });
});

Deno.test("imageFormatFromPath() maps extensions", () => {
  assert.equal(imageFormatFromPath("a/b.PNG"), "png");
  assert.equal(imageFormatFromPath("x.jpg"), "jpeg");
  assert.equal(imageFormatFromPath("x.jpeg"), "jpeg");
  assert.equal(imageFormatFromPath("x.webp"), "webp");
  assert.equal(imageFormatFromPath("x.npy"), undefined);
  assert.equal(imageFormatFromPath("png"), undefined);
});

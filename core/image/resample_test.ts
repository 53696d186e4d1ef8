import assert from "node:assert/strict";
import { resizeLanczos } from "./resample.ts";
import type { RgbImage } from "./rgb.ts";

/** Pillow's `make_case`: bright top-left and bottom-right quadrants (`color`), dark (`255 - color`) elsewhere. */
function makeCase(size: number, color: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  const half = size / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const bright = (x < half && y < half) || (x >= half && y >= half);
      data.fill(bright ? color : 255 - color, (y * size + x) * 3, (y * size + x) * 3 + 3);
    }
  }
  return { width: size, height: size, data };
}

/** Pillow's `make_sample`: the full expected image from its top-left quarter, mirrored. */
function makeSample(hex: string, size: number): number[] {
  const vals = hex.split(/\s+/).filter((s) => s).map((s) => parseInt(s, 16));
  const out = new Array<number>(size * size).fill(-1);
  const w = size / 2;
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) {
      const v = vals[y * w + x]!;
      out[y * size + x] = v;
      out[(size - y - 1) * size + size - x - 1] = v;
      out[(size - y - 1) * size + x] = 255 - v;
      out[y * size + size - x - 1] = 255 - v;
    }
  }
  return out;
}

/** Deterministic pseudo-random pixels. */
function makeNoise(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let state = seed;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return { width, height, data };
}

function transpose(image: RgbImage): RgbImage {
  const { width, height } = image;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data.set(image.data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3), (x * height + y) * 3);
    }
  }
  return { width: height, height: width, data };
}

function channel(image: RgbImage, c: number): number[] {
  return Array.from({ length: image.width * image.height }, (_, i) => image.data[i * 3 + c]!);
}

// Expected values from Pillow's Tests/test_image_resample.py (TestImagingCoreResampleAccuracy), which pin the output
// of libImaging/Resample.c bit for bit.
Deno.test("resizeLanczos() reproduces Pillow's test_reduce_lanczos (16×16 → 8×8) exactly", () => {
  const out = resizeLanczos(makeCase(16, 0xe1), 8, 8);
  const expected = makeSample("e1 e0 e4 d7 e0 df e3 d6 e4 e3 e7 da d7 d6 d9 ce", 8);
  for (let c = 0; c < 3; c++) assert.deepEqual(channel(out, c), expected);
});

Deno.test("resizeLanczos() reproduces Pillow's test_enlarge_lanczos (6×6 → 12×12) exactly", () => {
  const out = resizeLanczos(makeCase(6, 0xe1), 12, 12);
  const expected = makeSample(
    "e1 e0 db ed f5 b8 e0 df da ec f3 b7 db db d6 e7 ee b5 ed ec e6 fb ff bf f5 f4 ee ff ff c4 b8 b7 b4 bf c4 a0",
    12,
  );
  for (let c = 0; c < 3; c++) assert.deepEqual(channel(out, c), expected);
});

Deno.test("resizeLanczos() keeps a flat colour flat across extreme aspect changes (Pillow's test_8u)", () => {
  const w = 512, h = 9;
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set([0, 64, 255], i * 3);
  const out = resizeLanczos({ width: w, height: h, data }, 9, 512);
  assert.equal(out.width, 9);
  assert.equal(out.height, 512);
  for (let i = 0; i < 9 * 512; i++) assert.deepEqual([...out.data.subarray(i * 3, i * 3 + 3)], [0, 64, 255]);
});

Deno.test("resizeLanczos() resizes one axis only, returns a copy at the same size, and rejects bad sizes", () => {
  const img = makeCase(6, 0xe1);
  const same = resizeLanczos(img, 6, 6);
  assert.deepEqual(same, img);
  assert.notEqual(same.data, img.data);
  // A horizontal-only resize is the transpose of a vertical-only resize of the transposed image.
  const src = makeNoise(37, 20, 7);
  assert.deepEqual(resizeLanczos(src, 32, 20), transpose(resizeLanczos(transpose(src), 20, 32)));
  assert.deepEqual(resizeLanczos(src, 37, 13), transpose(resizeLanczos(transpose(src), 13, 37)));
  assert.throws(() => resizeLanczos(img, 0, 6), /width must be an integer in \[1, 65535\]: got 0/);
  assert.throws(() => resizeLanczos(img, 6, 1.5), /height must be an integer/);
  assert.throws(() => resizeLanczos({ width: 2, height: 2, data: new Uint8Array(3) }, 1, 1), /12 bytes/);
});

import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { assertRgbImage, floatToByte, fromRgbImages, toRgbImages } from "./rgb.ts";

Deno.test("floatToByte() rounds float32 x·255 half to even, as numpy_to_pil does", () => {
  // Find float32 inputs whose float32 product with 255 is exactly k + 0.5: numpy rounds those to the even neighbour.
  const ties: [number, number][] = [];
  for (let k = 0; k < 255 && ties.length < 20; k++) {
    let x = Math.fround((k + 0.5) / 255);
    for (let i = 0; i < 4 && Math.fround(x * 255) !== k + 0.5; i++) {
      x = Math.fround(x + (Math.fround(x * 255) < k + 0.5 ? 1 : -1) * 2 ** -30);
    }
    if (Math.fround(x * 255) === k + 0.5) ties.push([x, k % 2 === 0 ? k : k + 1]);
  }
  assert.ok(ties.length >= 10, `found only ${ties.length} ties`);
  for (const [x, expected] of ties) assert.equal(floatToByte(x), expected, `x = ${x}`);
  assert.equal(floatToByte(0), 0);
  assert.equal(floatToByte(1), 255);
  assert.equal(floatToByte(0.5), 128); // 127.5 → 128 (even)
  // float32 0.3 · 255 = 76.500003 in float64 but exactly 76.5 in float32 (numpy multiplies in float32) → 76.
  assert.equal(floatToByte(Math.fround(0.3)), 76);
  assert.equal(floatToByte(-0.2), 0);
  assert.equal(floatToByte(1.7), 255);
  assert.equal(floatToByte(NaN), 0);
});

Deno.test("toRgbImages() splits [N, H, W, 3] into 8-bit images and fromRgbImages() inverts it", () => {
  const data = new Float32Array(2 * 2 * 3 * 3).map((_, i) => (i % 256) / 255);
  const t = new Tensor(data, [2, 2, 3, 3]);
  const images = toRgbImages(t);
  assert.equal(images.length, 2);
  assert.deepEqual(images[1], { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => 18 + i) });
  const back = fromRgbImages(images);
  assert.deepEqual(back.shape, [2, 2, 3, 3]);
  assert.deepEqual(back.data, data);
  assert.throws(() => toRgbImages(new Tensor(new Float32Array(12), [1, 2, 2, 3, 1])), /\[N, H, W, 3\]/);
  assert.throws(() => toRgbImages(new Tensor(new Float32Array(16), [1, 2, 2, 4])), /got \[1, 2, 2, 4\]/);
  assert.throws(() => fromRgbImages([]), /at least one image/);
  assert.throws(
    () => fromRgbImages([images[0]!, { width: 2, height: 3, data: new Uint8Array(18) }]),
    /images\[1\] is 2×3 but images\[0\] is 3×2/,
  );
});

Deno.test("assertRgbImage() names the bad field", () => {
  assert.throws(() => assertRgbImage(null), /image must be an RgbImage/);
  assert.throws(
    () => assertRgbImage({ width: 0, height: 1, data: new Uint8Array(0) }),
    /image.width must be an integer >= 1: got 0/,
  );
  assert.throws(() => assertRgbImage({ width: 1, height: 1, data: [1, 2, 3] }), /image.data must be a Uint8Array/);
  assert.throws(
    () => assertRgbImage({ width: 1, height: 2, data: new Uint8Array(3) }, "input"),
    /input.data must hold/,
  );
});

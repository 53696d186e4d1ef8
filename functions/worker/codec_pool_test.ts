import assert from "node:assert/strict";
import { decodeImage, encodeImage } from "@ldm/core/image";
import { decodeUpload, encodeGenerated } from "../codec.ts";
import { silentLogger } from "../logger.ts";
import { type GeneratedResult, RunnerError } from "../runner.ts";
import { CodecPool } from "./codec_pool.ts";

/** Two 40×24 images over one buffer: smooth gradients with values on both sides of every rounding boundary. */
function generated(outputFormat: GeneratedResult["outputFormat"]): GeneratedResult {
  const w = 40, h = 24, size = w * h * 3;
  const pixels = new Float32Array(2 * size);
  for (let i = 0; i < pixels.length; i++) pixels[i] = ((i * 37) % 1021) / 1020 + (i % 7 === 0 ? 0.5 / 255 : 0);
  return {
    images: [0, 1].map((k) => ({
      width: w,
      height: h,
      pixels: pixels.subarray(k * size, (k + 1) * size),
      seed: 5 + k,
    })),
    outputFormat,
    inferenceMs: 1,
  };
}

function copy(r: GeneratedResult): GeneratedResult {
  return { ...r, images: r.images.map((i) => ({ ...i, pixels: i.pixels.slice() })) };
}

Deno.test("CodecPool encodes in its workers exactly as encodeGenerated does in-thread, and transfers the pixels", async () => {
  const codec = new CodecPool({ size: 2, logger: silentLogger });
  try {
    for (const format of ["png", "jpeg", "webp"] as const) {
      const input = generated(format);
      const expected = await encodeGenerated(copy(input));
      const pixels = input.images[0]!.pixels;
      const images = await codec.encode(input);
      assert.equal(pixels.length, 0, "the pixel buffer was transferred to the encoder, not copied");
      assert.deepEqual(images.map((i) => [i.contentType, i.width, i.height, i.seed]), [
        [`image/${format}`, 40, 24, 5],
        [`image/${format}`, 40, 24, 6],
      ]);
      for (const [i, image] of images.entries()) {
        // PNGs carry their creation time (to the second) in a text chunk: compare their (lossless) pixels.
        const [got, want] = format === "png"
          ? [(await decodeImage(image.data)).data, (await decodeImage(expected[i]!.data)).data]
          : [image.data, expected[i]!.data];
        assert.deepEqual(got, want, `${format} image ${i} differs from in-thread encoding`);
      }
    }
    // Jobs queue FIFO behind busy encoders and all come back.
    const many = await Promise.all([0, 1, 2, 3, 4].map(() => codec.encode(generated("png"))));
    assert.deepEqual(many.map((m) => m.length), [2, 2, 2, 2, 2]);
  } finally {
    await codec.close();
  }
});

Deno.test("CodecPool decodes uploads like decodeUpload, with invalid_image errors naming the field", async () => {
  const codec = new CodecPool({ size: 1, logger: silentLogger });
  try {
    const rgb = new Uint8Array(32 * 16 * 3).map((_, i) => (i * 11) % 256);
    const png = new Uint8Array(await encodeImage({ width: 32, height: 16, data: rgb }, "png"));
    const decoded = await codec.decode(png, { maxPixels: 1024 });
    assert.deepEqual([decoded.width, decoded.height], [32, 16]);
    assert.deepEqual(decoded.data, (await decodeUpload(png, 1024)).data);
    assert.deepEqual(decoded.data, rgb);
    assert.equal(png.length > 0, true, "the caller's bytes are copied, not transferred");
    await assert.rejects(
      () => codec.decode(new Uint8Array([1, 2, 3]), { maxPixels: 1024 }),
      (e) => e instanceof RunnerError && e.code === "invalid_image" && e.param === "image",
    );
    await assert.rejects(
      () => codec.decode(png, { maxPixels: 100 }),
      (e) => e instanceof RunnerError && e.code === "invalid_image" && /512 pixels; the limit is 100/.test(e.message),
    );
  } finally {
    await codec.close();
  }
});

Deno.test("CodecPool reports an encoding failure as an internal error and keeps working", async () => {
  const codec = new CodecPool({ size: 1, logger: silentLogger });
  try {
    const bad = { ...generated("png"), outputFormat: "gif" } as unknown as GeneratedResult;
    await assert.rejects(
      () => codec.encode(bad),
      (e) => e instanceof RunnerError && e.code === "internal" && /unknown output format gif/.test(e.message),
    );
    const short = generated("png");
    short.images[1] = { ...short.images[1]!, width: 41 };
    await assert.rejects(
      () => codec.encode(short),
      (e) => e instanceof RunnerError && e.code === "internal" && /image encoding failed for image 1/.test(e.message),
    );
    assert.equal((await codec.encode(generated("jpeg"))).length, 2);
  } finally {
    await codec.close();
  }
});

Deno.test("CodecPool: an aborted task is rejected at once, queued or running; close() rejects the rest", async () => {
  const codec = new CodecPool({ size: 1, logger: silentLogger });
  const running = new AbortController(), queued = new AbortController();
  const first = codec.encode(generated("png"), running.signal);
  const second = codec.encode(generated("png"), queued.signal);
  const third = codec.encode(generated("webp"));
  assert.equal(codec.depth, 2, "one encoder: the second and third tasks wait");
  queued.abort();
  assert.equal(codec.depth, 1);
  running.abort();
  await assert.rejects(first, (e) => e instanceof RunnerError && e.code === "cancelled");
  await assert.rejects(second, (e) => e instanceof RunnerError && e.code === "cancelled");
  // The third runs once the encoder has dropped the first task's answer.
  assert.equal((await third).length, 2);
  const pending = codec.encode(generated("png"));
  await codec.close();
  await assert.rejects(pending, (e) => e instanceof RunnerError && e.code === "cancelled" && /closed/.test(e.message));
  await assert.rejects(codec.encode(generated("png")), (e) => e instanceof RunnerError && e.code === "cancelled");
  await codec.close();
});

Deno.test("CodecPool refuses a bad size", () => {
  assert.throws(() => new CodecPool({ size: 0, logger: silentLogger }), /size must be an integer >= 1: got 0/);
});

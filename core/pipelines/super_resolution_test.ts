import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import { resizeLanczos } from "../image/mod.ts";
import type { RgbImage } from "../image/mod.ts";
import { autoTiles, LDMSuperResolutionPipeline } from "./super_resolution.ts";
import { SCHEDULER_NAME_LIST } from "./_checks.ts";
import { fakeDecoder, fakeSrUNet, SR_CONFIGS } from "./_fake_models.ts";

function makePipeline() {
  const unet = fakeSrUNet(), vqvaeDecoder = fakeDecoder(2, "vqvaeDecoder");
  const pipe = new LDMSuperResolutionPipeline({ unet, vqvaeDecoder, ...SR_CONFIGS });
  return { pipe, unet, vqvaeDecoder };
}

function pattern(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 5) * 11) & 255;
  return { width, height, data };
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

Deno.test("LDMSuperResolutionPipeline.upscale() runs every scheduler: 2× shape, no NaN, deterministic per seed", async (t) => {
  const { pipe } = makePipeline();
  const image = pattern(32, 32);
  for (const scheduler of SCHEDULER_NAME_LIST) {
    await t.step(scheduler, async () => {
      const a = await pipe.upscale({ image, scheduler, numInferenceSteps: 4, seed: 0 });
      const b = await pipe.upscale({ image, scheduler, numInferenceSteps: 4, seed: 0 });
      assert.deepEqual(a.images.shape, [1, 64, 64, 3]);
      assert.ok(a.images.data.every((v) => v >= 0 && v <= 1));
      assert.equal(maxAbsDiff(a.images, b.images), 0);
      assert.equal(a.tiles, 1);
      const c = await pipe.upscale({ image, scheduler, numInferenceSteps: 4, seed: 1 });
      assert.ok(maxAbsDiff(a.images, c.images) > 0);
    });
  }
});

Deno.test("upscale() preprocesses like diffusers' PIL path and feeds latents ‖ image to the UNet", async () => {
  let seen: Tensor | undefined;
  const unet = fakeSrUNet();
  const run = unet.run;
  unet.run = (feeds) => {
    seen ??= (feeds["sample"] as Tensor).clone();
    return run(feeds);
  };
  const pipe = new LDMSuperResolutionPipeline({ unet, vqvaeDecoder: fakeDecoder(2), ...SR_CONFIGS });
  const image = pattern(70, 45); // floored to 64×32 and Lanczos-resized
  const r = await pipe.upscale({ image, numInferenceSteps: 1, seed: 0 });
  assert.deepEqual(r.images.shape, [1, 64, 128, 3]);
  assert.deepEqual(seen!.shape, [1, 6, 32, 64]);
  const resized = resizeLanczos(image, 64, 32);
  const plane = 32 * 64;
  const latents = new Generator(0).randn([1, 3, 32, 64]);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      assert.equal(seen!.data[(3 + c) * plane + p], Math.fround(2 * Math.fround(resized.data[p * 3 + c]! / 255) - 1));
      // DDIM: initNoiseSigma 1 and scaleModelInput the identity, so the first three channels are the drawn latents.
      assert.equal(seen!.data[c * plane + p], latents.data[c * plane + p]);
    }
  }
});

Deno.test("upscale() takes a [B, 3, h, w] tensor as is (diffusers' tensor path)", async () => {
  const { pipe, unet } = makePipeline();
  const t = new Tensor(Float32Array.from({ length: 2 * 3 * 8 * 12 }, (_, i) => Math.sin(i)), [2, 3, 8, 12]);
  const r = await pipe.upscale({ image: t, numInferenceSteps: 2, seed: 4 });
  assert.deepEqual(r.images.shape, [2, 16, 24, 3]);
  assert.deepEqual(unet.calls[0]!.shapes["sample"], [2, 6, 8, 12]);
  assert.deepEqual(unet.calls[0]!.timestep, [501, 501]);
});

Deno.test("upscale() tiles large inputs: identical to untiled for a pixel-local model, one UNet call per tile", async () => {
  const { pipe, unet, vqvaeDecoder } = makePipeline();
  const image = pattern(96, 64);
  for (const scheduler of ["ddim", "euler-ancestral"] as const) {
    const whole = await pipe.upscale({ image, numInferenceSteps: 3, seed: 2, tileSize: 0, scheduler });
    unet.calls.length = 0;
    vqvaeDecoder.calls.length = 0;
    const tiled = await pipe.upscale({ image, numInferenceSteps: 3, seed: 2, tileSize: 32, tileOverlap: 8, scheduler });
    assert.equal(tiled.tiles, 12); // 4 × 3 tiles of 32×32 over 96×64
    assert.equal(tiled.decoderTiles, 12);
    assert.equal(unet.calls.length, 3 * 12);
    assert.ok(unet.calls.every((c) => c.shapes["sample"]!.join() === "1,6,32,32"));
    assert.equal(vqvaeDecoder.calls.length, 12);
    assert.ok(maxAbsDiff(whole.images, tiled.images) < 1e-6, `${scheduler}: tiled differs from untiled`);
  }
  // "auto": these configs give the UNet one-head attention at 1/2 resolution → 256 px tiles; the decoder 128 px.
  const auto = await pipe.upscale({ image: pattern(288, 32), numInferenceSteps: 1, seed: 0 });
  assert.deepEqual([auto.tiles, auto.decoderTiles], [2, 3]);
  const small = await pipe.upscale({ image: pattern(128, 128), numInferenceSteps: 1, seed: 0 });
  assert.deepEqual([small.tiles, small.decoderTiles], [1, 1]);
  const none = await pipe.upscale({ image: pattern(288, 32), numInferenceSteps: 1, seed: 0, tileSize: 0 });
  assert.deepEqual([none.tiles, none.decoderTiles], [1, 1]);
});

Deno.test("upscale() stops between steps when aborted and rejects bad input with clear errors", async (t) => {
  const { pipe, unet, vqvaeDecoder } = makePipeline();
  await t.step("abort mid-run", async () => {
    const ac = new AbortController();
    await assert.rejects(
      () =>
        pipe.upscale({
          image: pattern(32, 32),
          numInferenceSteps: 20,
          signal: ac.signal,
          onProgress: ({ step }) => step === 4 && ac.abort(new Error("stop")),
        }),
      /stop/,
    );
    assert.equal(unet.calls.length, 4);
    assert.equal(vqvaeDecoder.calls.length, 0);
  });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["no image", {}, /image is required/],
    ["too small", { image: pattern(31, 40) }, /image must be at least 32×32 pixels .*got 31×40/],
    ["malformed image", { image: { width: 2, height: 2, data: new Uint8Array(5) } }, /image.data must hold/],
    [
      "too large",
      { image: { width: 2048, height: 1024, data: new Uint8Array(2048 * 1024 * 3) } },
      /at most 1048576 pixels/,
    ],
    ["tensor rank", { image: Tensor.zeros([3, 8, 8]) }, /image tensor must be \[B, 3, h, w\]: got \[3, 8, 8\]/],
    ["tensor size", { image: Tensor.zeros([1, 3, 9, 8]) }, /height must be a positive multiple of 2: got 9/],
    ["tensor NaN", { image: new Tensor(new Float32Array(192).fill(NaN), [1, 3, 8, 8]) }, /finite/],
    [
      "steps",
      { image: pattern(32, 32), numInferenceSteps: 0 },
      /numInferenceSteps must be an integer in \[1, 1000\]: got 0/,
    ],
    ["eta", { image: pattern(32, 32), eta: -0.1 }, /eta must be a finite number in \[0, 1\]: got -0.1/],
    ["tile too small", { image: pattern(64, 64), tileSize: 8 }, /tileSize must be an integer in \[16, 65536\]: got 8/],
    [
      "tile not a number",
      { image: pattern(64, 64), tileSize: "big" },
      /tileSize must be "auto", 0 or an integer in \[16, 65536\]: got "big"/,
    ],
    [
      "overlap too large",
      { image: pattern(64, 64), tileSize: 32, tileOverlap: 31 },
      /tileOverlap must be an integer in \[0, 30\]: got 31/,
    ],
    ["scheduler", { image: pattern(32, 32), scheduler: "DDIM" }, /scheduler must be one of/],
    ["unknown option", { image: pattern(32, 32), batchSize: 2 }, /unknown option 'batchSize'/],
  ];
  for (const [name, opts, re] of cases) {
    await t.step(name, async () => {
      await assert.rejects(() => pipe.upscale(opts as never), (e: Error) => {
        assert.ok(e instanceof TypeError || e instanceof RangeError, `${e.name}: ${e.message}`);
        assert.match(e.message, re);
        return true;
      });
    });
  }
});

Deno.test("LDMSuperResolutionPipeline reports info, previews, and refuses use after dispose()", async () => {
  const { pipe, unet, vqvaeDecoder } = makePipeline();
  assert.deepEqual(pipe.info, {
    executionProviders: { unet: "fake", vqvaeDecoder: "fake" },
    upscaleFactor: 2,
    sizeMultiple: 32,
    tensorMultiple: 2,
    schedulerClass: "DDIMScheduler",
  });
  const steps: number[] = [];
  await pipe.upscale({
    image: pattern(32, 32),
    numInferenceSteps: 5,
    seed: 0,
    previewEvery: 2,
    onPreview: (p) => void steps.push(p.step),
  });
  assert.deepEqual(steps, [2, 4]);
  await pipe.dispose();
  assert.ok(unet.disposed && vqvaeDecoder.disposed);
  await assert.rejects(() => pipe.upscale({ image: pattern(32, 32) }), /used after dispose/);
});

Deno.test("autoTiles() sizes tiles so the largest attention matrix stays within 1 GiB", () => {
  // CompVis/ldm-super-resolution-4x-openimages: attention only in the last down block (1/8), 640 / 32 = 20 heads.
  const compvis = {
    block_out_channels: [160, 320, 320, 640],
    down_block_types: ["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    attention_head_dim: 32,
  };
  assert.deepEqual(autoTiles(compvis, {}, 1, 8), { unet: 480, decoder: 128 });
  // The built-in model: attention at 1/2 with 128 / 32 = 4 heads.
  const builtin = {
    block_out_channels: [64, 128],
    down_block_types: ["DownBlock2D", "AttnDownBlock2D"],
    attention_head_dim: 32,
  };
  assert.deepEqual(autoTiles(builtin, {}, 1, 2), { unet: 180, decoder: 128 });
  // A batch of 4 shares the budget; no attention anywhere allows the maximum.
  assert.deepEqual(autoTiles(builtin, {}, 4, 2), { unet: 128, decoder: 90 });
  assert.deepEqual(
    autoTiles(
      { block_out_channels: [64], down_block_types: ["DownBlock2D"], add_attention: false },
      {
        mid_block_add_attention: false,
      },
      1,
      2,
    ),
    { unet: 1024, decoder: 1024 },
  );
});

Deno.test("upscale() builds its UNet inputs once per run and rewrites them in place per step", async (t) => {
  for (const [name, tileSize, count] of [["untiled", 0, 1], ["tiled", 16, 9]] as const) {
    await t.step(name, async () => {
      const unet = fakeSrUNet();
      const feeds: Record<string, unknown>[] = [];
      const run = unet.run;
      unet.run = (f) => {
        feeds.push({ ...f });
        return run(f);
      };
      const pipe = new LDMSuperResolutionPipeline({ unet, vqvaeDecoder: fakeDecoder(2), ...SR_CONFIGS });
      const image = new Tensor(Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i)), [1, 3, 32, 32]);
      const r = await pipe.upscale({ image, numInferenceSteps: 3, seed: 0, tileSize, tileOverlap: 8 });
      assert.equal(r.tiles, count);
      assert.equal(feeds.length, 3 * count);
      // DDIM's scaleModelInput is the identity: the same sample buffer (or tile buffer) every call.
      for (const key of ["sample", "timestep"]) assert.ok(feeds.every((f) => f[key] === feeds[0]![key]), key);
    });
  }
});

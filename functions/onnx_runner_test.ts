import assert from "node:assert/strict";
import { decodeImage } from "@ldm/core/image";
import { SCHEDULER_NAME_LIST } from "@ldm/core/pipelines";
import { SCHEDULER_NAMES } from "@ldm/sdk/schemas";
import { loadConfig } from "./config.ts";
import { silentLogger } from "./logger.ts";
import { createRunner, type OnnxRunnerOptions, schedulerNameOf } from "./onnx_runner.ts";
import type { EncodedImage, SuperResolutionJob, TextToImageJob } from "./runner.ts";
import { onnxRunnerOptions } from "./server.ts";
import { CodecPool } from "./worker/codec_pool.ts";

Deno.test("the API's scheduler names are exactly the pipelines' names", () => {
  assert.deepEqual([...SCHEDULER_NAMES].sort(), [...SCHEDULER_NAME_LIST].sort());
});

Deno.test("schedulerNameOf() maps diffusers classes to the short names", () => {
  assert.equal(schedulerNameOf("DDIMScheduler"), "ddim");
  assert.equal(schedulerNameOf("DPMSolverMultistepScheduler"), "dpm-multistep");
  assert.equal(schedulerNameOf("HeunDiscreteScheduler"), null);
});

Deno.test("createRunner() names the repository that could not be loaded", async () => {
  await assert.rejects(
    () =>
      createRunner({
        functions: ["super-resolution"],
        textToImageModelDir: "",
        superResolutionModelDir: "/nonexistent/sr-model",
        executionProviders: ["cpu"],
        intraOpThreads: 1,
        maxInputPixels: 1024,
      }),
    /super-resolution model \/nonexistent\/sr-model: /,
  );
});

const BUILTIN_T2I = new URL("../models/builtin/ldm-text2im-tiny", import.meta.url).pathname;
const BUILTIN_SR = new URL("../models/builtin/ldm-super-resolution-tiny", import.meta.url).pathname;
const builtinPresent = [BUILTIN_T2I, BUILTIN_SR].every((d) => {
  try {
    return Deno.statSync(`${d}/model_index.json`).isFile;
  } catch {
    return false;
  }
});

/**
 * JPEG and WebP bytes must be equal; PNGs carry their creation time (to the second) in a text chunk, so their
 * pixels must be (the encoding is lossless) and their sizes.
 */
async function assertSameImage(actual: EncodedImage, expected: EncodedImage): Promise<void> {
  assert.equal(actual.contentType, expected.contentType);
  if (actual.contentType !== "image/png") return assert.deepEqual(actual.data, expected.data);
  assert.equal(actual.data.length, expected.data.length);
  assert.deepEqual((await decodeImage(actual.data)).data, (await decodeImage(expected.data)).data);
}

function builtinOptions(overrides: Partial<OnnxRunnerOptions> = {}): OnnxRunnerOptions {
  return {
    functions: ["text-to-image", "super-resolution"],
    textToImageModelDir: BUILTIN_T2I,
    superResolutionModelDir: BUILTIN_SR,
    executionProviders: ["cpu"],
    intraOpThreads: 1,
    maxInputPixels: 256 * 256,
    ...overrides,
  };
}

Deno.test({
  name: "built-in models: images encoded by the encoder workers are the in-thread encoding",
  ignore: !builtinPresent,
  fn: async () => {
    const runner = await createRunner(builtinOptions());
    const codec = new CodecPool({ size: 1, logger: silentLogger });
    try {
      const signal = new AbortController().signal;
      const job = (seeds: number[], outputFormat: "png" | "webp"): TextToImageJob => ({
        prompts: ["a big red circle on a blue background"],
        negativePrompts: null,
        numImagesPerPrompt: seeds.length,
        seeds,
        numInferenceSteps: 2,
        guidanceScale: 5,
        eta: 0,
        width: 64,
        height: 64,
        scheduler: null,
        outputFormat,
      });
      const jobs = [job([3, 4], "png"), job([9], "webp")];
      const inThread = await runner.textToImage(jobs, { signal });
      const generated = await runner.generateTextToImage!(jobs, { signal });
      const buffers = generated.map((g) => new Set(g!.images.map((i) => i.pixels.buffer)));
      assert.deepEqual(buffers.map((b) => b.size), [1, 1], "each job's images share one buffer of their own");
      assert.notEqual([...buffers[0]!][0], [...buffers[1]!][0]);
      for (const [j, g] of generated.entries()) {
        const images = await codec.encode(g!);
        assert.deepEqual(
          images.map((i) => [i.seed, i.width, i.height, i.contentType]),
          inThread[j]!.images.map((i) => [
            i.seed,
            i.width,
            i.height,
            i.contentType,
          ]),
        );
        for (const [k, image] of images.entries()) await assertSameImage(image, inThread[j]!.images[k]!);
      }

      // Super-resolution: decoded by the codec (as the queue does) or by the runner, the same bytes come out.
      const lowRes = inThread[0]!.images[0]!.data;
      const srJob: SuperResolutionJob = {
        image: lowRes,
        numInferenceSteps: 1,
        eta: 0,
        seed: 2,
        tileSize: null,
        scheduler: null,
        outputFormat: "png",
      };
      const direct = await runner.superResolution(srJob, { signal });
      const decoded = await codec.decode(lowRes, { maxPixels: 64 * 64 });
      const raw = await runner.generateSuperResolution!({ ...srJob, decoded }, { signal });
      assert.deepEqual([raw.images[0]!.width, raw.images[0]!.height], [256, 256]);
      assert.equal(raw.images[0]!.pixels.length, 256 * 256 * 3);
      assert.equal(raw.images[0]!.pixels.buffer.byteLength, 256 * 256 * 3 * 4, "a buffer of its own");
      const viaCodec = await codec.encode(raw);
      await assertSameImage(viaCodec[0]!, direct.images[0]!);
    } finally {
      await codec.close();
      await runner.close();
    }
  },
});

Deno.test({
  name: "createRunner() passes the text-embedding cache bounds to the text-to-image pipeline",
  ignore: !builtinPresent,
  fn: async () => {
    await assert.rejects(
      () => createRunner(builtinOptions({ textEmbeddingCache: { maxEntries: -1, maxBytes: 1024 } })),
      /textEmbeddingCache\.maxEntries/,
    );
    for (const textEmbeddingCache of [false, { maxEntries: 2, maxBytes: 1 << 20 }] as const) {
      const runner = await createRunner(builtinOptions({ functions: ["text-to-image"], textEmbeddingCache }));
      await runner.close();
    }
    assert.equal(onnxRunnerOptions(loadConfig({ LDM_TEXT_CACHE_ENTRIES: "0" })).textEmbeddingCache, false);
    assert.deepEqual(onnxRunnerOptions(loadConfig({ LDM_TEXT_CACHE_BYTES: "4096" })).textEmbeddingCache, {
      maxEntries: 32,
      maxBytes: 4096,
    });
  },
});

import assert from "node:assert/strict";
import { errorResponseSchema } from "@ldm/sdk/schemas";
import { createApp } from "../app.ts";
import { decodeUpload, encodeGenerated, type ImageCodec } from "../codec.ts";
import { loadConfig } from "../config.ts";
import {
  type DecodedImage,
  type EncodedImage,
  type GeneratedResult,
  RunnerError,
  type SuperResolutionJob,
  type TextToImageJob,
} from "../runner.ts";
import type { FakeRunnerOptions } from "../testing/fake_runner.ts";
import { silentLogger } from "../logger.ts";
import { WorkerPoolRunner } from "./pool.ts";
import { Image } from "imagescript";

const FAKE = new URL("../testing/fake_runner.ts", import.meta.url);

function pool(options: FakeRunnerOptions = {}, size = 1): WorkerPoolRunner {
  return new WorkerPoolRunner({ size, module: FAKE, options, logger: silentLogger });
}

async function ready(p: WorkerPoolRunner): Promise<void> {
  while (p.status().state === "loading") await new Promise((r) => setTimeout(r, 5));
}

function t2iJob(overrides: Partial<TextToImageJob> = {}): TextToImageJob {
  return {
    prompts: ["a"],
    negativePrompts: null,
    numImagesPerPrompt: 1,
    seeds: [1],
    numInferenceSteps: 3,
    guidanceScale: 1,
    eta: 0,
    width: 16,
    height: 16,
    scheduler: null,
    outputFormat: "png",
    ...overrides,
  };
}

Deno.test("WorkerPoolRunner loads the runner module in a worker and runs both tasks", async () => {
  const p = pool({ loadMs: 30 });
  try {
    assert.deepEqual(p.status(), { state: "loading" });
    assert.deepEqual(p.models(), []);
    await ready(p);
    assert.deepEqual(p.status(), { state: "ready" });
    assert.deepEqual(p.models().map((m) => m.id), ["fake-text2im", "fake-super-resolution"]);

    const progress: number[] = [];
    const results = await p.textToImage(
      [t2iJob({ seeds: [4, 5], numImagesPerPrompt: 2 }), t2iJob({ seeds: [9] })],
      { signal: new AbortController().signal, onProgress: (s) => progress.push(s) },
    );
    assert.deepEqual(progress, [1, 2, 3]);
    assert.deepEqual(results.map((r) => r!.images.map((i) => i.seed)), [[4, 5], [9]]);
    assert.equal(results[0]!.images[0]!.data[1], 0x50); // "P" of the PNG signature, transferred intact

    const png = new Uint8Array(await new Image(64, 32).fill(0xffffffff).encode());
    const job: SuperResolutionJob = {
      image: png,
      numInferenceSteps: 2,
      eta: 0,
      seed: 3,
      tileSize: null,
      scheduler: null,
      outputFormat: "jpeg",
    };
    const sr = await p.superResolution(job, { signal: new AbortController().signal });
    assert.deepEqual([sr.images[0]!.width, sr.images[0]!.height, sr.images[0]!.contentType], [256, 128, "image/jpeg"]);
    assert.equal(png.length > 0, true, "the caller's input buffer is not detached");

    await assert.rejects(
      () => p.superResolution({ ...job, image: new Uint8Array([1, 2, 3]) }, { signal: new AbortController().signal }),
      (e) => e instanceof RunnerError && e.code === "invalid_image" && e.param === "image",
    );
  } finally {
    await p.close();
  }
});

Deno.test("WorkerPoolRunner cancels a call at the next step, or one job of a batch", async () => {
  const p = pool({ stepMs: 5 });
  try {
    await ready(p);
    const ac = new AbortController();
    let steps = 0;
    const call = p.textToImage([t2iJob({ numInferenceSteps: 500 })], {
      signal: ac.signal,
      onProgress: (s) => {
        steps = s;
        if (s === 2) ac.abort();
      },
    });
    await assert.rejects(call, (e) => e instanceof RunnerError && e.code === "cancelled");
    assert.ok(steps < 500);

    const one = new AbortController();
    const results = await p.textToImage([t2iJob({ seeds: [1] }), t2iJob({ seeds: [2] })], {
      signal: new AbortController().signal,
      jobSignals: [one.signal, new AbortController().signal],
      onProgress: (s) => s === 1 && one.abort(),
    });
    assert.equal(results[0], null);
    assert.deepEqual(results[1]!.images.map((i) => i.seed), [2]);
  } finally {
    await p.close();
  }
});

Deno.test("WorkerPoolRunner keeps the main thread free while the worker blocks its own", async () => {
  // One fake step busy-waits 300 ms, as onnxruntime-node's synchronous run does.
  const p = pool({ blockMs: 300 });
  try {
    await ready(p);
    let settled = false;
    const call = p.textToImage([t2iJob({ numInferenceSteps: 1 })], { signal: new AbortController().signal })
      .finally(() => settled = true);
    let ticks = 0;
    while (!settled && ticks < 10_000) {
      await new Promise((r) => setTimeout(r, 1));
      ticks++;
    }
    await call;
    // Timers kept firing while the one step blocked; had it run on this thread, none could have fired during it.
    assert.ok(ticks >= 3, `main-thread timer fired ${ticks} times while the worker's step blocked`);
  } finally {
    await p.close();
  }
});

Deno.test("WorkerPoolRunner reports a load failure with its reason and refuses calls", async () => {
  const p = pool({ failLoad: "unet/model.onnx: not found" });
  try {
    await ready(p);
    assert.deepEqual(p.status(), { state: "failed", reason: "unet/model.onnx: not found" });
    await assert.rejects(
      () => p.textToImage([t2iJob()], { signal: new AbortController().signal }),
      (e) => e instanceof RunnerError && e.code === "not_ready" && /not found/.test(e.message),
    );
  } finally {
    await p.close();
  }
});

Deno.test("WorkerPoolRunner runs calls in parallel on several workers", async () => {
  const p = pool({ stepMs: 20 }, 2);
  try {
    await ready(p);
    let running = 0, maxRunning = 0;
    const call = (seed: number) => {
      let started = false;
      return p.textToImage([t2iJob({ seeds: [seed], numInferenceSteps: 5 })], {
        signal: new AbortController().signal,
        onProgress: () => {
          if (!started) {
            started = true;
            running++;
            maxRunning = Math.max(maxRunning, running);
          }
        },
      }).finally(() => running--);
    };
    await Promise.all([call(1), call(2)]);
    assert.equal(maxRunning, 2);
  } finally {
    await p.close();
  }
});

/** An in-thread codec whose encodes wait until the test opens the gate, recording what happens. */
class GatedCodec implements ImageCodec {
  readonly events: string[] = [];
  decodes = 0;
  failEncode: RunnerError | null = null;
  #open = Promise.withResolvers<void>();
  open(): void {
    this.#open.resolve();
  }
  async encode(result: GeneratedResult, signal?: AbortSignal): Promise<EncodedImage[]> {
    this.events.push(`encode ${result.images.map((i) => i.seed).join(",")}`);
    await Promise.race([
      this.#open.promise,
      new Promise((_, reject) =>
        signal?.addEventListener("abort", () => reject(new RunnerError("cancelled", "cancelled")), { once: true })
      ),
    ]);
    if (this.failEncode) throw this.failEncode;
    return await encodeGenerated(result);
  }
  decode(bytes: Uint8Array<ArrayBuffer>, options: { maxPixels: number }): Promise<DecodedImage> {
    this.decodes++;
    return decodeUpload(bytes, options.maxPixels);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function withCodec(codec: ImageCodec, options: FakeRunnerOptions = {}): WorkerPoolRunner {
  return new WorkerPoolRunner({ size: 1, module: FAKE, options, logger: silentLogger, codec });
}

Deno.test("WorkerPoolRunner frees the pipeline worker before the images are encoded: the next call runs meanwhile", async () => {
  const codec = new GatedCodec();
  const p = withCodec(codec, { stepMs: 1 });
  // A safety valve only: should the worker wait for encoding, the gate opens late and the order check below fails.
  const valve = setTimeout(() => codec.open(), 20_000);
  try {
    await ready(p);
    const ev = codec.events;
    const bGenerated = Promise.withResolvers<void>();
    const call = (seed: number, onGenerated?: () => void) =>
      p.textToImage([t2iJob({ seeds: [seed], numInferenceSteps: 2 })], {
        signal: new AbortController().signal,
        onProgress: (s) => ev.push(`progress ${seed}.${s}`),
        onGenerated: () => {
          ev.push(`generated ${seed}`);
          onGenerated?.();
        },
      }).then((r) => {
        ev.push(`settled ${seed}`);
        return r;
      });
    // One pipeline worker, two calls back to back: the second waits for the worker.
    const a = call(1);
    const b = call(2, () => bGenerated.resolve());
    // Done waiting once B has generated, or once A settled first (the bug this test is for: the order check fails).
    await Promise.race([bGenerated.promise, a.catch(() => {})]);
    codec.open();
    const [ra, rb] = await Promise.all([a, b]);
    assert.deepEqual(ev, [
      "progress 1.1",
      "progress 1.2",
      "generated 1",
      "encode 1",
      "progress 2.1",
      "progress 2.2",
      "generated 2",
      "encode 2",
      "settled 1",
      "settled 2",
    ]);
    assert.deepEqual([ra[0]!.images[0]!.seed, rb[0]!.images[0]!.seed], [1, 2]);
    assert.equal(ra[0]!.images[0]!.data[1], 0x50, "PNG bytes");
    assert.ok(ra[0]!.encodeMs >= 0 && ra[0]!.inferenceMs >= 0);
  } finally {
    clearTimeout(valve);
    await p.close();
  }
});

Deno.test("WorkerPoolRunner: an encoding failure fails its call with the runner error, and the worker goes on", async () => {
  const codec = new GatedCodec();
  codec.failEncode = new RunnerError("internal", "image encoding failed for image 0: boom");
  codec.open();
  const p = withCodec(codec);
  try {
    await ready(p);
    let generated = 0;
    await assert.rejects(
      p.textToImage([t2iJob()], { signal: new AbortController().signal, onGenerated: () => generated++ }),
      (e) => e instanceof RunnerError && e.code === "internal" && /boom/.test(e.message),
    );
    assert.equal(generated, 1);
    codec.failEncode = null;
    const [r] = await p.textToImage([t2iJob({ seeds: [3] })], { signal: new AbortController().signal });
    assert.equal(r!.images[0]!.seed, 3);

    // Through the app, the failure is the one error envelope: 500 internal_error.
    const app = createApp({ runner: p, config: loadConfig({}) });
    codec.failEncode = new RunnerError("internal", "image encoding failed for image 0: boom");
    const res = await app.request("/v1/text-to-image", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a", num_inference_steps: 1 }),
    });
    assert.equal(res.status, 500);
    const body = errorResponseSchema.parse(await res.json());
    assert.deepEqual([body.error.type, body.error.code], ["server_error", "internal_error"]);
  } finally {
    await p.close();
  }
});

Deno.test("WorkerPoolRunner decodes super-resolution uploads in the codec, before taking a pipeline worker", async () => {
  const codec = new GatedCodec();
  codec.open();
  const p = withCodec(codec);
  try {
    await ready(p);
    const png = new Uint8Array(await new Image(64, 32).fill(0x336699ff).encode());
    const job: SuperResolutionJob = {
      image: png,
      numInferenceSteps: 1,
      eta: 0,
      seed: 4,
      tileSize: null,
      scheduler: null,
      outputFormat: "png",
    };
    const prepared = await p.prepareSuperResolution(job, new AbortController().signal);
    assert.deepEqual([prepared.decoded?.width, prepared.decoded?.height, prepared.decoded?.data.length], [
      64,
      32,
      64 * 32 * 3,
    ]);
    assert.deepEqual([...prepared.decoded!.data.subarray(0, 3)], [0x33, 0x66, 0x99]);
    assert.equal(codec.decodes, 1);
    // Already decoded: not decoded again.
    const sr = await p.superResolution(prepared, { signal: new AbortController().signal });
    assert.equal(codec.decodes, 1);
    assert.deepEqual([sr.images[0]!.width, sr.images[0]!.height], [256, 128]);
    // Not decoded yet: superResolution decodes it through the codec first.
    await p.superResolution(job, { signal: new AbortController().signal });
    assert.equal(codec.decodes, 2);
  } finally {
    await p.close();
  }
});

Deno.test("WorkerPoolRunner close() rejects a call whose images are being encoded", async () => {
  const codec = new GatedCodec();
  const p = withCodec(codec);
  try {
    await ready(p);
    const generated = Promise.withResolvers<void>();
    const call = p.textToImage([t2iJob()], {
      signal: new AbortController().signal,
      onGenerated: () => generated.resolve(),
    });
    await generated.promise;
    await p.close();
    await assert.rejects(call, (e) => e instanceof RunnerError && e.code === "cancelled");
  } finally {
    await p.close();
  }
});

Deno.test("WorkerPoolRunner with encoderWorkers 0 encodes on the pipeline worker, as before", async () => {
  const p = new WorkerPoolRunner({ size: 1, module: FAKE, options: {}, logger: silentLogger, encoderWorkers: 0 });
  try {
    await ready(p);
    let generated = 0;
    const [r] = await p.textToImage([t2iJob({ seeds: [8], outputFormat: "webp" })], {
      signal: new AbortController().signal,
      onGenerated: () => generated++,
    });
    assert.equal(generated, 0, "the slot is held until the images are encoded");
    assert.deepEqual([r!.images[0]!.contentType, r!.images[0]!.seed], ["image/webp", 8]);
    const job = { image: new Uint8Array([1, 2, 3]), numInferenceSteps: 1, eta: 0, seed: 1, tileSize: null };
    const signal = new AbortController().signal;
    const same = await p.prepareSuperResolution({ ...job, scheduler: null, outputFormat: "png" }, signal);
    assert.equal(same.decoded, undefined, "without encoders the pipeline worker decodes");
    assert.throws(
      () => new WorkerPoolRunner({ size: 1, module: FAKE, options: {}, logger: silentLogger, encoderWorkers: -1 }),
      /encoderWorkers must be an integer >= 0: got -1/,
    );
  } finally {
    await p.close();
  }
});

import assert from "node:assert/strict";
import { RunnerError, type SuperResolutionJob, type TextToImageJob } from "../runner.ts";
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

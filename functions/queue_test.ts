import assert from "node:assert/strict";
import { batchKey, GenerationQueue, QueueClosedError, QueueFullError } from "./queue.ts";
import type { PipelineRunner, RunOptions, RunResult, SuperResolutionJob, TextToImageJob } from "./runner.ts";

/** A runner whose calls finish when the test says so. */
class ManualRunner implements PipelineRunner {
  calls: { jobs: readonly TextToImageJob[] | [SuperResolutionJob]; options: RunOptions; finish: () => void }[] = [];
  status() {
    return { state: "ready" as const };
  }
  models() {
    return [];
  }
  #call(jobs: readonly TextToImageJob[] | [SuperResolutionJob], options: RunOptions): Promise<(RunResult | null)[]> {
    return new Promise((resolve, reject) => {
      const finish = () =>
        resolve(
          jobs.map((_, i) => options.jobSignals?.[i]?.aborted ? null : { images: [], inferenceMs: 1, encodeMs: 0 }),
        );
      options.signal.addEventListener("abort", () => reject(options.signal.reason));
      this.calls.push({ jobs, options, finish });
    });
  }
  textToImage(jobs: readonly TextToImageJob[], options: RunOptions) {
    return this.#call(jobs, options);
  }
  async superResolution(job: SuperResolutionJob, options: RunOptions) {
    return (await this.#call([job], options))[0]!;
  }
  close() {
    return Promise.resolve();
  }
}

function job(overrides: Partial<TextToImageJob> = {}): TextToImageJob {
  return {
    prompts: ["a"],
    negativePrompts: null,
    numImagesPerPrompt: 1,
    seeds: [0],
    numInferenceSteps: 10,
    guidanceScale: 1,
    eta: 0,
    width: 64,
    height: 64,
    scheduler: null,
    outputFormat: "png",
    ...overrides,
  };
}

const sr: SuperResolutionJob = {
  image: new Uint8Array(1),
  numInferenceSteps: 1,
  eta: 0,
  seed: 0,
  tileSize: null,
  scheduler: null,
  outputFormat: "png",
};

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("GenerationQueue runs at most `concurrency` calls and queues at most `maxQueue` requests", async () => {
  const runner = new ManualRunner();
  let now = 0;
  const q = new GenerationQueue(runner, { concurrency: 2, maxQueue: 1, maxBatchImages: 1, clock: { now: () => now } });
  const signal = new AbortController().signal;
  const a = q.submit({ task: "text-to-image", job: job() }, { signal });
  const b = q.submit({ task: "super-resolution", job: sr }, { signal });
  const c = q.submit({ task: "text-to-image", job: job() }, { signal });
  assert.deepEqual([q.running, q.depth, runner.calls.length], [2, 1, 2]);
  assert.throws(() => q.submit({ task: "text-to-image", job: job() }, { signal }), QueueFullError);
  now = 250;
  runner.calls[0]!.finish();
  const outcome = await a;
  assert.deepEqual([outcome.queueMs, outcome.batchSize], [0, 1]);
  await tick();
  assert.deepEqual([q.running, q.depth], [2, 0]);
  runner.calls[1]!.finish();
  runner.calls[2]!.finish();
  assert.equal((await c).queueMs, 250);
  await b;
  await q.whenIdle();
  assert.equal(q.retryAfterSeconds(), 1);
});

Deno.test("GenerationQueue batches compatible waiting text-to-image requests up to maxBatchImages images", async () => {
  const runner = new ManualRunner();
  const q = new GenerationQueue(runner, { concurrency: 1, maxQueue: 10, maxBatchImages: 4 });
  const signal = new AbortController().signal;
  const first = q.submit({ task: "text-to-image", job: job() }, { signal });
  const waiting = [
    q.submit({ task: "text-to-image", job: job({ numImagesPerPrompt: 2 }) }, { signal }),
    q.submit({ task: "text-to-image", job: job({ width: 32 }) }, { signal }), // other size
    q.submit({ task: "super-resolution", job: sr }, { signal }),
    q.submit({ task: "text-to-image", job: job({ prompts: ["b", "c"] }) }, { signal }), // 2 images: fits (2 + 2)
    q.submit({ task: "text-to-image", job: job() }, { signal }), // would make 5: next batch
  ];
  runner.calls[0]!.finish();
  await first;
  await tick();
  assert.equal(runner.calls.length, 2);
  assert.equal(runner.calls[1]!.jobs.length, 2);
  runner.calls[1]!.finish();
  const [w0, , , w3] = await Promise.all([waiting[0]!, tick(), tick(), waiting[3]!]);
  assert.deepEqual([w0.batchSize, w3.batchSize], [2, 2]);
  // Then, in arrival order: the 32-wide one, the super-resolution, the last one.
  for (let i = 2; i < 5; i++) {
    await tick();
    assert.equal(runner.calls[i]!.jobs.length, 1);
    runner.calls[i]!.finish();
  }
  await Promise.all(waiting);
  assert.notEqual(batchKey(job()), batchKey(job({ guidanceScale: 5 })));
  assert.notEqual(batchKey(job()), batchKey(job({ eta: 0.5 })));
  assert.equal(batchKey(job()), batchKey(job({ prompts: ["other"], seeds: [9], outputFormat: "jpeg" })));
});

Deno.test("GenerationQueue removes an aborted waiting request and rejects it with the signal's reason", async () => {
  const runner = new ManualRunner();
  const q = new GenerationQueue(runner, { concurrency: 1, maxQueue: 5, maxBatchImages: 1 });
  const running = q.submit({ task: "super-resolution", job: sr }, { signal: new AbortController().signal });
  const ac = new AbortController();
  const waiting = q.submit({ task: "super-resolution", job: sr }, { signal: ac.signal });
  assert.equal(q.depth, 1);
  ac.abort(new Error("client went away"));
  await assert.rejects(waiting, /client went away/);
  assert.equal(q.depth, 0);
  runner.calls[0]!.finish();
  await running;
  assert.equal(runner.calls.length, 1, "the aborted request never ran");
});

Deno.test("GenerationQueue cancels a running batch only when every member is cancelled", async () => {
  const runner = new ManualRunner();
  const q = new GenerationQueue(runner, { concurrency: 1, maxQueue: 5, maxBatchImages: 4 });
  const blocker = q.submit({ task: "super-resolution", job: sr }, { signal: new AbortController().signal });
  const a = new AbortController(), b = new AbortController();
  const pa = q.submit({ task: "text-to-image", job: job() }, { signal: a.signal });
  const pb = q.submit({ task: "text-to-image", job: job() }, { signal: b.signal });
  runner.calls[0]!.finish();
  await blocker;
  await tick();
  const batch = runner.calls[1]!;
  assert.equal(batch.jobs.length, 2);
  a.abort(new Error("a left"));
  await assert.rejects(pa, /a left/);
  assert.equal(batch.options.jobSignals?.[0]?.aborted, true, "the runner can drop the job from the batch");
  assert.equal(batch.options.signal.aborted, false, "b still runs");
  b.abort(new Error("b left"));
  await assert.rejects(pb, /b left/);
  assert.equal(batch.options.signal.aborted, true, "nobody is left: the call is cancelled");
  await q.whenIdle();
  assert.equal(q.running, 0);
});

Deno.test("GenerationQueue close() refuses new work; cancelAll() rejects everything", async () => {
  const runner = new ManualRunner();
  const q = new GenerationQueue(runner, { concurrency: 1, maxQueue: 5, maxBatchImages: 1 });
  const signal = new AbortController().signal;
  const running = q.submit({ task: "super-resolution", job: sr }, { signal });
  const waiting = q.submit({ task: "super-resolution", job: sr }, { signal });
  q.close();
  assert.throws(() => q.submit({ task: "super-resolution", job: sr }, { signal }), QueueClosedError);
  const reason = new Error("shutting down");
  q.cancelAll(reason);
  await assert.rejects(running, /shutting down/);
  await assert.rejects(waiting, /shutting down/);
  await q.whenIdle();
});

Deno.test("GenerationQueue rejects bad options", () => {
  const runner = new ManualRunner();
  assert.throws(() => new GenerationQueue(runner, { concurrency: 0, maxQueue: 1, maxBatchImages: 1 }), /concurrency/);
  assert.throws(() => new GenerationQueue(runner, { concurrency: 1, maxQueue: -1, maxBatchImages: 1 }), /maxQueue/);
});

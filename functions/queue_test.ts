import assert from "node:assert/strict";
import { batchKey, GenerationQueue, QueueClosedError, QueueFullError } from "./queue.ts";
import {
  type PipelineRunner,
  RunnerError,
  type RunOptions,
  type RunResult,
  type SuperResolutionJob,
  type TextToImageJob,
} from "./runner.ts";

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

/**
 * A runner whose calls report the pipeline done (`generated`), then finish or fail their encoding, when the test
 * says so; it also prepares super-resolution uploads on demand.
 */
class TwoPhaseRunner implements PipelineRunner {
  calls: {
    jobs: readonly TextToImageJob[] | [SuperResolutionJob];
    options: RunOptions;
    finish: () => void;
    fail: (e: unknown) => void;
  }[] = [];
  prepares: { job: SuperResolutionJob; done: () => void; fail: (e: unknown) => void }[] = [];
  status() {
    return { state: "ready" as const };
  }
  models() {
    return [];
  }
  #call(jobs: readonly TextToImageJob[] | [SuperResolutionJob], options: RunOptions): Promise<(RunResult | null)[]> {
    return new Promise((resolve, reject) => {
      options.signal.addEventListener("abort", () => reject(options.signal.reason));
      const finish = () => resolve(jobs.map(() => ({ images: [], inferenceMs: 1, encodeMs: 1 })));
      this.calls.push({ jobs, options, finish, fail: reject });
    });
  }
  textToImage(jobs: readonly TextToImageJob[], options: RunOptions) {
    return this.#call(jobs, options);
  }
  async superResolution(job: SuperResolutionJob, options: RunOptions) {
    return (await this.#call([job], options))[0]!;
  }
  /** Frees the slot of call `i` (the pipeline is done; its images are being encoded). */
  generated(i: number): void {
    this.calls[i]!.options.onGenerated?.();
  }
  prepareSuperResolution(job: SuperResolutionJob): Promise<SuperResolutionJob> {
    return new Promise((resolve, reject) => {
      this.prepares.push({
        job,
        done: () => resolve({ ...job, decoded: { width: 1, height: 1, data: new Uint8Array(3) } }),
        fail: reject,
      });
    });
  }
  close() {
    return Promise.resolve();
  }
}

Deno.test("GenerationQueue gives the slot to the next call once the runner reports the pipeline done, before encoding", async () => {
  const runner = new TwoPhaseRunner();
  let now = 0;
  const runs: { durationMs: number; outcome: string; images: number }[] = [];
  const q = new GenerationQueue(runner, {
    concurrency: 1,
    maxQueue: 5,
    maxBatchImages: 1,
    clock: { now: () => now },
    observer: { onRunEnd: (i) => runs.push(i) },
  });
  const signal = new AbortController().signal;
  const order: string[] = [];
  const a = q.submit({ task: "text-to-image", job: job() }, { signal }).then(() => order.push("a settled"));
  const b = q.submit({ task: "text-to-image", job: job({ numImagesPerPrompt: 2 }) }, { signal })
    .then(() => order.push("b settled"));
  assert.deepEqual([q.running, q.encoding, q.depth, runner.calls.length], [1, 0, 1, 1]);
  now = 100;
  runner.generated(0);
  // B took the slot while A's images are encoded; A has not settled.
  assert.deepEqual([q.running, q.encoding, q.depth, runner.calls.length], [1, 1, 0, 2]);
  let idle = false;
  const whenIdle = q.whenIdle().then(() => idle = true);
  now = 150;
  runner.generated(1);
  runner.calls[1]!.finish();
  await b;
  assert.deepEqual(order, ["b settled"], "B finished while A was still encoding");
  await tick();
  assert.equal(idle, false, "A is still encoding");
  now = 400;
  runner.calls[0]!.finish();
  await Promise.all([a, whenIdle]);
  assert.deepEqual(order, ["b settled", "a settled"]);
  // Metrics count each call once, when its images are done, with the time it held its slot.
  assert.deepEqual(runs.map((r) => [r.durationMs, r.outcome, r.images]), [[50, "ok", 2], [100, "ok", 1]]);
  assert.equal(q.retryAfterSeconds(), 1);
});

Deno.test("GenerationQueue: an encoding failure or a cancellation after the slot was freed still reaches the requests", async () => {
  const runner = new TwoPhaseRunner();
  const outcomes: string[] = [];
  const q = new GenerationQueue(runner, {
    concurrency: 1,
    maxQueue: 5,
    maxBatchImages: 4,
    observer: { onRunEnd: (i) => outcomes.push(i.outcome) },
  });
  const signal = new AbortController().signal;
  const first = q.submit({ task: "text-to-image", job: job({ width: 32 }) }, { signal });
  // Two requests batched in one call whose encoding fails: both get the runner's error.
  const batched = [0, 1].map(() => q.submit({ task: "text-to-image", job: job() }, { signal }));
  runner.generated(0);
  runner.calls[0]!.finish();
  await first;
  runner.generated(1);
  assert.deepEqual([runner.calls[1]!.jobs.length, q.running, q.encoding], [2, 0, 1]);
  runner.calls[1]!.fail(new RunnerError("internal", "image encoding failed for image 0: boom"));
  for (const p of batched) await assert.rejects(p, (e) => e instanceof RunnerError && /boom/.test(e.message));
  assert.deepEqual(outcomes, ["ok", "error"]);
  // Shutdown while a call is encoding: cancelAll reaches it.
  const last = q.submit({ task: "text-to-image", job: job() }, { signal });
  runner.generated(2);
  q.cancelAll(new Error("shutting down"));
  await assert.rejects(last, /shutting down/);
  assert.equal(runner.calls[2]!.options.signal.aborted, true);
  await q.whenIdle();
  assert.deepEqual(outcomes, ["ok", "error", "cancelled"]);
  assert.deepEqual([q.running, q.encoding], [0, 0]);
});

Deno.test("GenerationQueue decodes super-resolution uploads while they wait; only decoded ones take a slot", async () => {
  const runner = new TwoPhaseRunner();
  const q = new GenerationQueue(runner, { concurrency: 1, maxQueue: 5, maxBatchImages: 1 });
  const signal = new AbortController().signal;
  const upload = q.submit({ task: "super-resolution", job: sr }, { signal });
  assert.deepEqual([q.running, q.depth, runner.calls.length, runner.prepares.length], [0, 1, 0, 1]);
  const t2i = q.submit({ task: "text-to-image", job: job() }, { signal });
  // The slot does not wait for the decode: the text-to-image request behind it runs.
  assert.deepEqual([q.running, q.depth, runner.calls.length], [1, 1, 1]);
  runner.prepares[0]!.done();
  await tick();
  assert.equal(runner.calls.length, 1, "decoded, but the slot is busy");
  runner.generated(0);
  assert.equal(runner.calls.length, 2);
  assert.deepEqual((runner.calls[1]!.jobs[0] as SuperResolutionJob).decoded?.width, 1, "the decoded job runs");
  runner.calls[0]!.finish();
  runner.calls[1]!.finish();
  await Promise.all([upload, t2i]);

  // An undecodable upload is refused without ever taking a slot; an aborted one stops waiting for its decode.
  const bad = q.submit({ task: "super-resolution", job: sr }, { signal });
  runner.prepares[1]!.fail(new RunnerError("invalid_image", "image could not be decoded", "image"));
  await assert.rejects(bad, (e) => e instanceof RunnerError && e.code === "invalid_image");
  const ac = new AbortController();
  const gone = q.submit({ task: "super-resolution", job: sr }, { signal: ac.signal });
  ac.abort(new Error("client went away"));
  await assert.rejects(gone, /client went away/);
  runner.prepares[2]!.done();
  await q.whenIdle();
  assert.equal(runner.calls.length, 2);
  assert.equal(q.depth, 0);
});

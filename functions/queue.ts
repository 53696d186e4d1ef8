/**
 * The bounded queue in front of the pipelines: at most `concurrency` generations run at once, at most `maxQueue`
 * wait, and compatible text-to-image requests that wait together run as one batched pipeline call.
 *
 * A slot is held only while the pipeline runs: when the runner reports the call generated (`onGenerated`), the next
 * call starts while the finished one's images are encoded. Super-resolution uploads are decoded (the runner's
 * `prepareSuperResolution`) while the request waits, before it takes a slot.
 *
 * @module
 */
import type { Task } from "@ldm/sdk/schemas";
import {
  type PipelineRunner,
  RunnerError,
  type RunResult,
  type SuperResolutionJob,
  type TextToImageJob,
} from "./runner.ts";

/** A monotonic millisecond clock (injected so tests control time). */
export interface Clock {
  /** Milliseconds since an arbitrary origin. */
  now(): number;
}

/** The real clock. */
export const systemClock: Clock = { now: () => performance.now() };

/** Work submitted to the queue. */
export type QueueWork =
  | { task: "text-to-image"; job: TextToImageJob }
  | { task: "super-resolution"; job: SuperResolutionJob };

/** Per-submission hooks. */
export interface SubmitOptions {
  /** Aborting it removes the request from the queue, or cancels its run at the next step (a batch is cancelled
   * once all its members are). The submission rejects with the signal's reason. */
  signal: AbortSignal;
  /** Steps done and total, while it runs. */
  onProgress?: (step: number, total: number) => void;
}

/** What a submission resolves to. */
export interface QueueOutcome {
  /** The runner's result for this request. */
  result: RunResult;
  /** Milliseconds spent waiting for a slot. */
  queueMs: number;
  /** Requests in the pipeline call this one ran in. */
  batchSize: number;
}

/** Thrown synchronously by {@linkcode GenerationQueue.submit} when `maxQueue` requests already wait. */
export class QueueFullError extends Error {
  /** Suggested wait before retrying, in whole seconds. */
  readonly retryAfterSeconds: number;
  /** Builds the error. */
  constructor(maxQueue: number, retryAfterSeconds: number) {
    super(`The queue is full (${maxQueue} requests waiting); retry in ${retryAfterSeconds} s`);
    this.name = "QueueFullError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Thrown synchronously by {@linkcode GenerationQueue.submit} after {@linkcode GenerationQueue.close}. */
export class QueueClosedError extends Error {
  /** Builds the error. */
  constructor() {
    super("The server is shutting down and accepts no new work");
    this.name = "QueueClosedError";
  }
}

/** Receives what the queue does (metrics). */
export interface QueueObserver {
  /** A pipeline call finished, its images encoded (or it failed, or was cancelled). */
  onRunEnd?(info: {
    task: Task;
    batchSize: number;
    images: number;
    /** Milliseconds the call held its slot: until the pipeline finished, encoding excluded when it ran elsewhere. */
    durationMs: number;
    stepsDone: number;
    outcome: "ok" | "error" | "cancelled";
  }): void;
}

/** Options of {@linkcode GenerationQueue}. */
export interface GenerationQueueOptions {
  /** Pipeline calls running at once. */
  concurrency: number;
  /** Requests that may wait; more get {@linkcode QueueFullError}. */
  maxQueue: number;
  /** Most images one batched text-to-image call may produce (a larger single request still runs alone). */
  maxBatchImages: number;
  /** Timing source for queue waits and run durations. @default systemClock */
  clock?: Clock;
  /** Metrics hooks. */
  observer?: QueueObserver;
}

interface Entry {
  work: QueueWork;
  options: SubmitOptions;
  enqueuedAt: number;
  state: "waiting" | "running" | "settled";
  /** False while the runner prepares the work (decodes an upload); only ready entries take a slot. */
  ready: boolean;
  batch: Batch | null;
  resolve: (o: QueueOutcome) => void;
  reject: (e: unknown) => void;
  onAbort: () => void;
}

interface Batch {
  controller: AbortController;
  members: Entry[];
  live: number;
}

function images(work: QueueWork): number {
  return work.task === "text-to-image" ? work.job.prompts.length * work.job.numImagesPerPrompt : 1;
}

/** Requests with equal keys can share one pipeline call (diffusers batches latents of one size, one schedule). */
export function batchKey(job: TextToImageJob): string {
  return [job.width, job.height, job.numInferenceSteps, job.scheduler ?? "", job.guidanceScale, job.eta].join("|");
}

/**
 * A FIFO queue with a fixed number of generation slots. `submit()` throws at once when the request cannot be
 * queued, so callers can answer 429/503 before streaming anything.
 *
 * @example Queueing a super-resolution job
 * ```ts ignore
 * const queue = new GenerationQueue(runner, { concurrency: 1, maxQueue: 8, maxBatchImages: 4 });
 * const { result, queueMs } = await queue.submit({ task: "super-resolution", job }, { signal });
 * ```
 */
export class GenerationQueue {
  readonly #runner: PipelineRunner;
  readonly #concurrency: number;
  readonly #maxQueue: number;
  readonly #maxBatchImages: number;
  readonly #clock: Clock;
  readonly #observer: QueueObserver;
  readonly #waiting: Entry[] = [];
  /** Calls holding a slot (the pipeline runs). */
  readonly #batches = new Set<Batch>();
  /** Calls that gave their slot back and whose images are being encoded. */
  readonly #encoding = new Set<Batch>();
  #closed = false;
  #avgRunMs = 0;
  #idleWaiters: (() => void)[] = [];

  /** Creates an empty queue in front of `runner`. */
  constructor(runner: PipelineRunner, options: GenerationQueueOptions) {
    for (const key of ["concurrency", "maxBatchImages"] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) {
        throw new RangeError(`${key} must be an integer >= 1: got ${options[key]}`);
      }
    }
    if (!Number.isInteger(options.maxQueue) || options.maxQueue < 0) {
      throw new RangeError(`maxQueue must be an integer >= 0: got ${options.maxQueue}`);
    }
    this.#runner = runner;
    this.#concurrency = options.concurrency;
    this.#maxQueue = options.maxQueue;
    this.#maxBatchImages = options.maxBatchImages;
    this.#clock = options.clock ?? { now: () => performance.now() };
    this.#observer = options.observer ?? {};
  }

  /** Requests waiting for a slot. */
  get depth(): number {
    return this.#waiting.length;
  }

  /** Pipeline calls running now (holding a slot). */
  get running(): number {
    return this.#batches.size;
  }

  /** Finished pipeline calls whose images are being encoded (no slot held). */
  get encoding(): number {
    return this.#encoding.size;
  }

  /** Slots (concurrent pipeline calls). */
  get concurrency(): number {
    return this.#concurrency;
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Seconds a client should wait before retrying, from the average run time and the queue ahead. */
  retryAfterSeconds(): number {
    const rounds = Math.ceil((this.#waiting.length + 1) / this.#concurrency);
    return Math.max(1, Math.ceil((this.#avgRunMs * rounds) / 1000));
  }

  /**
   * Queues work.
   * @throws {QueueClosedError} after {@linkcode close}.
   * @throws {QueueFullError} when `maxQueue` requests already wait and no slot is free.
   * @returns a promise of the outcome; it rejects with the signal's reason when aborted, with the runner's error
   * otherwise.
   */
  submit(work: QueueWork, options: SubmitOptions): Promise<QueueOutcome> {
    if (this.#closed) throw new QueueClosedError();
    if (options.signal.aborted) return Promise.reject(options.signal.reason);
    const freeSlot = this.#batches.size < this.#concurrency && this.#waiting.length === 0;
    if (!freeSlot && this.#waiting.length >= this.#maxQueue) {
      throw new QueueFullError(this.#maxQueue, this.retryAfterSeconds());
    }
    const { promise, resolve, reject } = Promise.withResolvers<QueueOutcome>();
    const prepare = work.task === "super-resolution" ? this.#runner.prepareSuperResolution?.bind(this.#runner) : null;
    const entry: Entry = {
      work,
      options,
      enqueuedAt: this.#clock.now(),
      state: "waiting",
      ready: !prepare,
      batch: null,
      resolve,
      reject,
      onAbort: () => this.#abort(entry),
    };
    options.signal.addEventListener("abort", entry.onAbort, { once: true });
    this.#waiting.push(entry);
    if (prepare && work.task === "super-resolution") {
      prepare(work.job, options.signal).then(
        (job) => {
          if (entry.state !== "waiting") return;
          entry.work = { task: "super-resolution", job };
          entry.ready = true;
          this.#pump();
        },
        (e) => {
          if (entry.state !== "waiting") return;
          this.#waiting.splice(this.#waiting.indexOf(entry), 1);
          this.#settle(entry, () => entry.reject(e));
          this.#checkIdle();
        },
      );
    }
    this.#pump();
    return promise;
  }

  /** Stops accepting work; queued and running work continues. */
  close(): void {
    this.#closed = true;
  }

  /** Resolves when nothing waits, nothing runs and nothing is being encoded. */
  whenIdle(): Promise<void> {
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Rejects every waiting request and cancels every running (or encoding) one with `reason`. */
  cancelAll(reason: unknown): void {
    for (const entry of this.#waiting.splice(0)) this.#settle(entry, () => entry.reject(reason));
    for (const batch of [...this.#batches, ...this.#encoding]) {
      for (const m of batch.members) if (m.state !== "settled") this.#settle(m, () => m.reject(reason));
      batch.live = 0;
      batch.controller.abort(reason);
    }
    this.#checkIdle();
  }

  #settle(entry: Entry, fn: () => void): void {
    if (entry.state === "settled") return;
    entry.state = "settled";
    entry.options.signal.removeEventListener("abort", entry.onAbort);
    fn();
  }

  #abort(entry: Entry): void {
    const reason = entry.options.signal.reason;
    if (entry.state === "waiting") {
      const i = this.#waiting.indexOf(entry);
      if (i >= 0) this.#waiting.splice(i, 1);
      this.#settle(entry, () => entry.reject(reason));
      this.#checkIdle();
    } else if (entry.state === "running" && entry.batch) {
      const batch = entry.batch;
      this.#settle(entry, () => entry.reject(reason));
      batch.live--;
      if (batch.live === 0) batch.controller.abort(reason);
    }
  }

  #idle(): boolean {
    return this.#waiting.length === 0 && this.#batches.size === 0 && this.#encoding.size === 0;
  }

  #checkIdle(): void {
    if (!this.#idle()) return;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** The oldest ready request, with the compatible ready ones that fit its batch. */
  #take(): Entry[] {
    const head = this.#waiting.splice(this.#waiting.findIndex((e) => e.ready), 1)[0]!;
    const members = [head];
    if (head.work.task === "text-to-image") {
      const key = batchKey(head.work.job);
      let total = images(head.work);
      for (let i = 0; i < this.#waiting.length && total < this.#maxBatchImages;) {
        const e = this.#waiting[i]!;
        if (e.ready && e.work.task === "text-to-image" && batchKey(e.work.job) === key) {
          const n = images(e.work);
          if (total + n <= this.#maxBatchImages) {
            members.push(e);
            total += n;
            this.#waiting.splice(i, 1);
            continue;
          }
        }
        i++;
      }
    }
    return members;
  }

  #pump(): void {
    while (this.#batches.size < this.#concurrency && this.#waiting.some((e) => e.ready)) {
      const members = this.#take();
      const batch: Batch = { controller: new AbortController(), members, live: members.length };
      this.#batches.add(batch);
      for (const m of members) {
        m.state = "running";
        m.batch = batch;
      }
      this.#run(batch);
    }
  }

  async #run(batch: Batch): Promise<void> {
    const startedAt = this.#clock.now();
    let stepsDone = 0;
    let generatedAt: number | null = null;
    const options = {
      signal: batch.controller.signal,
      onProgress: (step: number, total: number) => {
        stepsDone = step;
        for (const m of batch.members) if (m.state === "running") m.options.onProgress?.(step, total);
      },
      // The pipeline is done and its worker free: give the slot to the next call while the images are encoded.
      onGenerated: () => {
        if (generatedAt !== null || !this.#batches.has(batch)) return;
        generatedAt = this.#clock.now();
        this.#batches.delete(batch);
        this.#encoding.add(batch);
        this.#pump();
      },
    };
    const first = batch.members[0]!.work;
    let outcome: "ok" | "error" | "cancelled" = "ok";
    try {
      let results: (RunResult | null)[];
      if (first.task === "text-to-image") {
        const jobs = batch.members.map((m) => (m.work as { job: TextToImageJob }).job);
        const jobSignals = batch.members.map((m) => m.options.signal);
        results = await this.#runner.textToImage(jobs, { ...options, jobSignals });
        if (results.length !== jobs.length) {
          throw new Error(`The runner returned ${results.length} results for ${jobs.length} jobs`);
        }
      } else {
        results = [await this.#runner.superResolution(first.job, options)];
      }
      batch.members.forEach((m, i) => {
        const result = results[i];
        this.#settle(
          m,
          () =>
            result
              ? m.resolve({ result, queueMs: startedAt - m.enqueuedAt, batchSize: batch.members.length })
              : m.reject(new RunnerError("cancelled", "The runner dropped this request from its batch")),
        );
      });
    } catch (e) {
      outcome = batch.controller.signal.aborted ? "cancelled" : "error";
      for (const m of batch.members) this.#settle(m, () => m.reject(e));
    } finally {
      const durationMs = (generatedAt ?? this.#clock.now()) - startedAt;
      if (outcome === "ok") {
        this.#avgRunMs = this.#avgRunMs === 0 ? durationMs : 0.8 * this.#avgRunMs + 0.2 * durationMs;
      }
      this.#batches.delete(batch);
      this.#encoding.delete(batch);
      this.#observer.onRunEnd?.({
        task: first.task,
        batchSize: batch.members.length,
        images: batch.members.reduce((s, m) => s + images(m.work), 0),
        durationMs,
        stepsDone,
        outcome,
      });
      this.#pump();
      this.#checkIdle();
    }
  }
}

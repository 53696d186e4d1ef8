/**
 * {@linkcode WorkerPoolRunner}: the {@linkcode PipelineRunner} the server uses. Each of its workers hosts a runner
 * module (its own ONNX sessions) and runs one pipeline call at a time, so inference never blocks the server's event
 * loop: health checks, readiness and progress streams keep answering while images are made. Encoding the images
 * and decoding uploads happen in separate encoder workers ({@linkcode CodecPool}), so a pipeline worker takes its
 * next call as soon as its pipeline call ends.
 *
 * @module
 */
import type { ImageCodec } from "../codec.ts";
import type { Logger } from "../logger.ts";
import {
  type GeneratedResult,
  type ModelDescriptor,
  type PipelineRunner,
  RunnerError,
  type RunnerStatus,
  type RunOptions,
  type RunResult,
  type SuperResolutionJob,
  type TextToImageJob,
} from "../runner.ts";
import { CodecPool } from "./codec_pool.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

/** Options of {@linkcode WorkerPoolRunner}. */
export interface WorkerPoolOptions {
  /** Workers, i.e. pipeline calls that can run at once. Each loads its own sessions. */
  size: number;
  /** URL of the runner module the workers import; it must export `createRunner(options, { logger })`. */
  module: string | URL;
  /** Passed to `createRunner` (structured-clone safe). */
  options: unknown;
  /** Receives the pool's and the workers' log lines. */
  logger: Logger;
  /** How long `close()` waits for a worker to release its sessions before terminating it. @default 10000 */
  closeTimeoutMs?: number;
  /**
   * Encoder workers: they encode the images while the pipeline workers go on with the next call, and decode
   * super-resolution uploads before their request takes a slot. 0 encodes and decodes on the pipeline worker (the
   * slot is held until the images are encoded). Ignored when `codec` is given. @default min(2, size)
   */
  encoderWorkers?: number;
  /** A codec to use instead of the pool's own encoder workers; the caller closes it. */
  codec?: ImageCodec;
  /** Largest super-resolution upload the encoder workers decode, in pixels. @default 4096 * 4096 */
  maxInputPixels?: number;
}

interface Slot {
  index: number;
  worker: Worker;
  state: "loading" | "ready" | "failed" | "closed";
  reason: string;
  models: ModelDescriptor[];
  busy: number | null;
  closed?: () => void;
}

interface Pending {
  resolve: (results: (RunResult | null)[]) => void;
  reject: (e: unknown) => void;
  options: RunOptions;
  slot: Slot;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);
/** `Slot.busy` of a worker handed to a caller that has not posted its call yet. */
const RESERVED = 0;

/**
 * A pool of pipeline workers behind the {@linkcode PipelineRunner} port. Loading starts at construction;
 * `status()` is `loading` until every worker reports its models, `failed` (with the reason) when one cannot load.
 * A worker that crashes fails its call with an internal error and is replaced.
 *
 * A call holds its pipeline worker only for the pipeline itself: the worker sends the float images back (transferred,
 * not copied), calls `onGenerated` and takes the next call, while the encoder workers encode them; the call's promise
 * settles with the encoded bytes.
 *
 * @example Hosting the ONNX pipelines
 * ```ts ignore
 * const runner = new WorkerPoolRunner({
 *   size: 1,
 *   module: new URL("../onnx_runner.ts", import.meta.url),
 *   options: { functions: ["text-to-image"], textToImageModelDir: "models/builtin/ldm-text2im-tiny", ... },
 *   logger,
 * });
 * ```
 */
export class WorkerPoolRunner implements PipelineRunner {
  readonly #options: WorkerPoolOptions;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #waiting: { acquire: (slot: Slot) => void; reject: (e: unknown) => void }[] = [];
  /** Calls whose pipeline part is done and whose images are being encoded: rejected on close. */
  readonly #encoding = new Set<(e: unknown) => void>();
  readonly #codec: ImageCodec | null;
  readonly #ownsCodec: boolean;
  #nextId = 1;
  #closing = false;

  /** Starts `size` pipeline workers, each loading the runner module, and the encoder workers. */
  constructor(options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError(`size must be an integer >= 1: got ${options.size}`);
    }
    const encoders = options.encoderWorkers ?? Math.min(2, options.size);
    if (!Number.isInteger(encoders) || encoders < 0) {
      throw new RangeError(`encoderWorkers must be an integer >= 0: got ${options.encoderWorkers}`);
    }
    const maxPixels = options.maxInputPixels;
    if (maxPixels !== undefined && (!Number.isInteger(maxPixels) || maxPixels < 1)) {
      throw new RangeError(`maxInputPixels must be an integer >= 1: got ${maxPixels}`);
    }
    this.#options = options;
    this.#ownsCodec = !options.codec && encoders > 0;
    this.#codec = options.codec ?? (encoders > 0 ? new CodecPool({ size: encoders, logger: options.logger }) : null);
    for (let i = 0; i < options.size; i++) this.#slots.push(this.#spawn(i));
  }

  #spawn(index: number): Slot {
    const worker = new Worker(WORKER_URL.href, { type: "module", name: `ldm-pipeline-${index}` });
    const slot: Slot = { index, worker, state: "loading", reason: "", models: [], busy: null };
    worker.onmessage = (e: MessageEvent<FromWorker>) => this.#onMessage(slot, e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#onCrash(slot, e.message);
    };
    worker.onmessageerror = () => this.#onCrash(slot, "a message from the worker could not be deserialized");
    const init: ToWorker = { type: "init", module: String(this.#options.module), options: this.#options.options };
    worker.postMessage(init);
    return slot;
  }

  #onMessage(slot: Slot, msg: FromWorker): void {
    const log = this.#options.logger;
    switch (msg.type) {
      case "ready":
        slot.state = "ready";
        slot.models = msg.models;
        log.info("pipeline worker ready", { worker: slot.index, models: msg.models.map((m) => m.id) });
        this.#dispatchWaiting();
        break;
      case "init_error":
        slot.state = "failed";
        slot.reason = msg.message;
        log.error("pipeline worker failed to load", { worker: slot.index, reason: msg.message });
        for (const w of this.#waiting.splice(0)) {
          w.reject(new RunnerError("not_ready", `Models failed to load: ${msg.message}`));
        }
        break;
      case "progress":
        this.#pending.get(msg.id)?.options.onProgress?.(msg.step, msg.total);
        break;
      case "generated": {
        const p = this.#pending.get(msg.id);
        if (!p) break;
        this.#pending.delete(msg.id);
        slot.busy = null;
        this.#dispatchWaiting();
        p.options.onGenerated?.();
        this.#encode(msg.results, p);
        break;
      }
      case "result":
      case "error": {
        const p = this.#pending.get(msg.id);
        if (!p) break;
        this.#pending.delete(msg.id);
        slot.busy = null;
        if (msg.type === "result") p.resolve(msg.results);
        else p.reject(new RunnerError(msg.error.code, msg.error.message, msg.error.param));
        this.#dispatchWaiting();
        break;
      }
      case "log":
        log[msg.level](msg.msg, { worker: slot.index, ...msg.fields });
        break;
      case "closed":
        slot.closed?.();
        break;
    }
  }

  /** Encodes a finished call's images (each job on its own, in parallel as far as the codec goes). */
  #encode(generated: (GeneratedResult | null)[], p: Pending): void {
    const codec = this.#codec;
    if (!codec) {
      p.reject(new RunnerError("internal", "The worker returned images to encode but the pool has no encoder"));
      return;
    }
    const t0 = performance.now();
    const { signal, jobSignals } = p.options;
    let settled = false;
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      this.#encoding.delete(fail);
      p.reject(e);
    };
    this.#encoding.add(fail);
    // A buffer may back several images of one job, never two jobs: if a runner broke that, copy rather than
    // transfer one buffer twice.
    const claimed = new Set<ArrayBuffer>();
    const owned = generated.map((r) => {
      if (!r) return r;
      const mine = new Set(r.images.map((i) => i.pixels.buffer));
      const shared = [...mine].some((b) => claimed.has(b));
      for (const b of mine) claimed.add(b);
      return shared ? { ...r, images: r.images.map((i) => ({ ...i, pixels: i.pixels.slice() })) } : r;
    });
    Promise.all(owned.map(async (r, j) => {
      // A job that left its batch after the pipeline finished needs no images.
      if (!r || jobSignals?.[j]?.aborted) return null;
      const images = await codec.encode(r, signal);
      return { images, inferenceMs: r.inferenceMs, encodeMs: performance.now() - t0 } satisfies RunResult;
    })).then((results) => {
      if (settled) return;
      settled = true;
      this.#encoding.delete(fail);
      p.resolve(results);
    }, fail);
  }

  #onCrash(slot: Slot, message: string): void {
    if (slot.state === "closed") return;
    this.#options.logger.error("pipeline worker crashed", { worker: slot.index, reason: message });
    slot.worker.terminate();
    for (const [id, p] of this.#pending) {
      if (p.slot !== slot) continue;
      this.#pending.delete(id);
      p.reject(new RunnerError("internal", `The pipeline worker crashed: ${message}`));
    }
    slot.state = "closed";
    if (this.#closing) return;
    // Replace it; it reports loading until its models are back.
    const fresh = this.#spawn(slot.index);
    this.#slots[slot.index] = fresh;
  }

  #dispatchWaiting(): void {
    while (this.#waiting.length > 0) {
      const slot = this.#slots.find((s) => s.state === "ready" && s.busy === null);
      if (!slot) return;
      slot.busy = RESERVED;
      this.#waiting.shift()!.acquire(slot);
    }
  }

  /** A ready, idle worker, reserved for the caller (waits while all are busy or loading). */
  #acquire(signal: AbortSignal): Promise<Slot> {
    if (this.#closing) return Promise.reject(new RunnerError("not_ready", "The runner is closing"));
    const failed = this.#slots.find((s) => s.state === "failed");
    if (failed) return Promise.reject(new RunnerError("not_ready", `Models failed to load: ${failed.reason}`));
    const slot = this.#slots.find((s) => s.state === "ready" && s.busy === null);
    if (slot) {
      slot.busy = RESERVED;
      return Promise.resolve(slot);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(new RunnerError("cancelled", "The generation was cancelled"));
      };
      const waiter = {
        acquire: (s: Slot) => {
          signal.removeEventListener("abort", onAbort);
          resolve(s);
        },
        reject: (e: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  async #call(
    message: { task: "text-to-image"; jobs: TextToImageJob[] } | { task: "super-resolution"; job: SuperResolutionJob },
    options: RunOptions,
  ): Promise<(RunResult | null)[]> {
    if (options.signal.aborted) throw new RunnerError("cancelled", "The generation was cancelled");
    const slot = await this.#acquire(options.signal);
    if (options.signal.aborted) {
      slot.busy = null;
      this.#dispatchWaiting();
      throw new RunnerError("cancelled", "The generation was cancelled");
    }
    const id = this.#nextId++;
    slot.busy = id;
    const cancel = (job?: number) => {
      const msg: ToWorker = { type: "cancel", id, reason: "cancelled", ...(job === undefined ? {} : { job }) };
      if (this.#pending.has(id)) slot.worker.postMessage(msg);
    };
    const onAbort = () => cancel();
    options.signal.addEventListener("abort", onAbort, { once: true });
    const jobListeners = (options.jobSignals ?? []).map((s, i) => {
      const fn = () => cancel(i);
      s.addEventListener("abort", fn, { once: true });
      return () => s.removeEventListener("abort", fn);
    });
    const raw = this.#codec !== null;
    try {
      return await new Promise<(RunResult | null)[]>((resolve, reject) => {
        this.#pending.set(id, { resolve, reject, options, slot });
        const run: ToWorker = message.task === "text-to-image"
          ? { type: "run", id, raw, task: "text-to-image", jobs: message.jobs }
          : { type: "run", id, raw, task: "super-resolution", job: message.job };
        // The input image is copied, not transferred: the caller may still hold it.
        slot.worker.postMessage(run);
        // Job signals that fired while the call waited for a worker.
        (options.jobSignals ?? []).forEach((s, i) => s.aborted && cancel(i));
      });
    } finally {
      options.signal.removeEventListener("abort", onAbort);
      for (const off of jobListeners) off();
    }
  }

  /** `failed` when a worker could not load (with its reason), `loading` until all have loaded, else `ready`. */
  status(): RunnerStatus {
    const failed = this.#slots.find((s) => s.state === "failed");
    if (failed) return { state: "failed", reason: failed.reason };
    if (this.#slots.every((s) => s.state === "ready")) return { state: "ready" };
    return { state: "loading" };
  }

  /** The models of the first loaded worker (all workers host the same). */
  models(): ModelDescriptor[] {
    return this.#slots.find((s) => s.state === "ready")?.models ?? [];
  }

  /** Runs a batch of compatible text-to-image jobs in a free worker. */
  textToImage(jobs: readonly TextToImageJob[], options: RunOptions): Promise<(RunResult | null)[]> {
    return this.#call({ task: "text-to-image", jobs: [...jobs] }, options);
  }

  /**
   * Decodes the upload in an encoder worker (`job.decoded`), so the pipeline worker receives pixels. Without
   * encoder workers, or when `job.decoded` is already set, returns `job` as it is (the pipeline worker decodes).
   */
  async prepareSuperResolution(job: SuperResolutionJob, signal: AbortSignal): Promise<SuperResolutionJob> {
    if (!this.#codec || job.decoded) return job;
    if (this.#closing) throw new RunnerError("not_ready", "The runner is closing");
    const maxPixels = this.#options.maxInputPixels ?? 4096 * 4096;
    return { ...job, decoded: await this.#codec.decode(job.image, { maxPixels }, signal) };
  }

  /** Upscales one image in a free worker (decoding it first in an encoder worker, unless it is decoded). */
  async superResolution(job: SuperResolutionJob, options: RunOptions): Promise<RunResult> {
    if (options.signal.aborted) throw new RunnerError("cancelled", "The generation was cancelled");
    const prepared = await this.prepareSuperResolution(job, options.signal);
    const [result] = await this.#call({ task: "super-resolution", job: prepared }, options);
    if (!result) throw new RunnerError("internal", "The worker returned no super-resolution result");
    return result;
  }

  /**
   * Asks every pipeline worker to release its sessions, then terminates them (after `closeTimeoutMs` at the latest);
   * rejects calls still running or encoding (`cancelled`) and terminates the pool's own encoder workers.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    for (const w of this.#waiting.splice(0)) w.reject(new RunnerError("not_ready", "The runner is closing"));
    const timeout = this.#options.closeTimeoutMs ?? 10_000;
    await Promise.all(this.#slots.map(async (slot) => {
      if (slot.state === "closed") return;
      const closed = new Promise<void>((resolve) => (slot.closed = resolve));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout)));
      slot.worker.postMessage({ type: "close" } satisfies ToWorker);
      await Promise.race([closed, timedOut]);
      clearTimeout(timer);
      slot.state = "closed";
      slot.worker.terminate();
    }));
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.reject(new RunnerError("cancelled", "The runner closed"));
    }
    for (const fail of [...this.#encoding]) fail(new RunnerError("cancelled", "The runner closed"));
    if (this.#ownsCodec) await this.#codec?.close();
  }
}

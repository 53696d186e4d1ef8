/**
 * {@linkcode WorkerPoolRunner}: the {@linkcode PipelineRunner} the server uses. Each of its workers hosts a runner
 * module (its own ONNX sessions) and runs one pipeline call at a time, so inference never blocks the server's event
 * loop: health checks, readiness and progress streams keep answering while images are made.
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import {
  type ModelDescriptor,
  type PipelineRunner,
  RunnerError,
  type RunnerStatus,
  type RunOptions,
  type RunResult,
  type SuperResolutionJob,
  type TextToImageJob,
} from "../runner.ts";
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
  onProgress: ((step: number, total: number) => void) | undefined;
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
  #nextId = 1;
  #closing = false;

  /** Starts `size` workers, each loading the runner module. */
  constructor(options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError(`size must be an integer >= 1: got ${options.size}`);
    }
    this.#options = options;
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
        this.#pending.get(msg.id)?.onProgress?.(msg.step, msg.total);
        break;
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
    try {
      return await new Promise<(RunResult | null)[]>((resolve, reject) => {
        this.#pending.set(id, { resolve, reject, onProgress: options.onProgress, slot });
        const run: ToWorker = message.task === "text-to-image"
          ? { type: "run", id, task: "text-to-image", jobs: message.jobs }
          : { type: "run", id, task: "super-resolution", job: message.job };
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

  /** Upscales one image in a free worker. */
  async superResolution(job: SuperResolutionJob, options: RunOptions): Promise<RunResult> {
    const [result] = await this.#call({ task: "super-resolution", job }, options);
    if (!result) throw new RunnerError("internal", "The worker returned no super-resolution result");
    return result;
  }

  /** Asks every worker to release its sessions, then terminates them (after `closeTimeoutMs` at the latest). */
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
  }
}

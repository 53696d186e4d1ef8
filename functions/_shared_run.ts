/**
 * One generation and the requests waiting for it. Without an `Idempotency-Key` a run has exactly one client, and
 * it is cancelled as soon as that client leaves; with a key, retries of the same request attach to the run already
 * going instead of starting another, and the run outlives its clients for a grace period so that a client whose
 * connection dropped can come back for the result.
 *
 * @module
 */
import { AbortReason } from "./errors.ts";
import type { StoredResponse } from "./idempotency.ts";
import type { GenerationQueue, QueueOutcome, QueueWork } from "./queue.ts";

/** Options of {@linkcode SharedRun}. */
export interface SharedRunOptions {
  /** The queue the work is submitted to. */
  queue: GenerationQueue;
  /** The work. */
  work: QueueWork;
  /** Milliseconds from now until the run is cancelled with a timeout. */
  deadlineMs: number;
  /** The configured request timeout, for the timeout's message. */
  timeoutMs: number;
  /** How long the run goes on once its last client has left, waiting for one to attach; 0 cancels it at once. */
  graceMs: number;
  /** Turns the outcome into the response every client gets (rendered once, so all get the same bytes). */
  render: (outcome: QueueOutcome) => StoredResponse;
}

/** A client's hold on a run. */
export interface Attachment {
  /** Lets go of the run; the last one out cancels it with `reason` (after the grace period, if any). Idempotent. */
  detach(reason: AbortReason): void;
}

/**
 * A generation shared by every request that waits for it. The constructor submits the work at once, so a full or
 * closed queue throws synchronously (429/503 before anything streams), as `GenerationQueue.submit` does.
 */
export class SharedRun {
  /** The rendered response; rejects with the queue's error (the signal's `AbortReason` when cancelled). */
  readonly result: Promise<StoredResponse>;
  readonly #controller = new AbortController();
  readonly #graceMs: number;
  readonly #deadline: ReturnType<typeof setTimeout>;
  readonly #progress = new Set<(step: number, total: number) => void>();
  #clients = 0;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #settled = false;

  /**
   * Submits the work.
   * @throws {QueueFullError} / {@linkcode QueueClosedError} from the queue, synchronously.
   */
  constructor(options: SharedRunOptions) {
    this.#graceMs = options.graceMs;
    const outcome = options.queue.submit(options.work, {
      signal: this.#controller.signal,
      onProgress: (step, total) => {
        for (const listener of this.#progress) listener(step, total);
      },
    });
    this.#deadline = setTimeout(() =>
      this.#controller.abort(
        new AbortReason("timeout", `The request did not finish within ${options.timeoutMs} ms and was cancelled`),
      ), Math.max(1, options.deadlineMs));
    this.result = outcome.then(options.render).finally(() => {
      this.#settled = true;
      clearTimeout(this.#deadline);
      clearTimeout(this.#graceTimer);
      this.#progress.clear();
    });
    // Every client handles the rejection itself; this keeps a run nobody waits for from being "unhandled".
    this.result.catch(() => {});
  }

  /** Clients attached now. */
  get clients(): number {
    return this.#clients;
  }

  /** Whether the run has ended (with a response or an error). */
  get settled(): boolean {
    return this.#settled;
  }

  /**
   * Attaches a client: it receives progress from now on, and keeps the run alive until it detaches. Its own
   * `signal` (the connection) detaches it when it aborts.
   */
  attach(signal: AbortSignal, onProgress?: (step: number, total: number) => void): Attachment {
    this.#clients++;
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    if (onProgress) this.#progress.add(onProgress);
    let attached = true;
    const detach = (reason: AbortReason) => {
      if (!attached) return;
      attached = false;
      signal.removeEventListener("abort", onAbort);
      if (onProgress) this.#progress.delete(onProgress);
      this.#clients--;
      if (this.#clients > 0 || this.#settled) return;
      if (this.#graceMs === 0) {
        this.#controller.abort(reason);
        return;
      }
      this.#graceTimer = setTimeout(() => {
        if (this.#clients === 0) {
          this.#controller.abort(
            new AbortReason(
              "client_disconnect",
              `Every client disconnected and none came back within ${this.#graceMs} ms`,
            ),
          );
        }
      }, this.#graceMs);
    };
    const onAbort = () => detach(new AbortReason("client_disconnect", "The client disconnected"));
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    return { detach };
  }

  /**
   * Waits for the response on behalf of one client: rejects with a `client_disconnect` {@linkcode AbortReason}
   * as soon as `signal` aborts (the run goes on for the others), with the run's error when it fails.
   */
  async wait(signal: AbortSignal): Promise<StoredResponse> {
    const attachment = this.attach(signal);
    const { promise: gone, reject } = Promise.withResolvers<never>();
    const onAbort = () => reject(new AbortReason("client_disconnect", "The client disconnected"));
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      return await Promise.race([this.result, gone]);
    } finally {
      signal.removeEventListener("abort", onAbort);
      attachment.detach(new AbortReason("client_disconnect", "The client disconnected"));
    }
  }
}

/**
 * Handing previews to the caller without waiting for it: the loop decodes a preview (one decoder run, which it must
 * do itself since onnxruntime-node runs sessions on the calling thread) and calls `onPreview`, then goes on with the
 * next step while a returned promise settles. One callback is in flight at most: a preview that falls due before the
 * previous callback's promise settled is skipped (not decoded), so a slow consumer costs dropped frames, not steps.
 *
 * @module
 */
import type { PreviewImages } from "./types.ts";

/** See the module documentation. */
export class PreviewQueue {
  readonly #onPreview: ((p: PreviewImages) => void | Promise<void>) | undefined;
  #pending: Promise<void> | undefined;
  #failure: { error: unknown } | undefined;

  /** @param onPreview the caller's callback (`undefined` when the run has no previews). */
  constructor(onPreview: ((p: PreviewImages) => void | Promise<void>) | undefined) {
    this.#onPreview = onPreview;
  }

  /** Whether a callback's promise is still pending (the next preview would be skipped). */
  get busy(): boolean {
    return this.#pending !== undefined;
  }

  /**
   * Calls `onPreview` with `preview`. A synchronous throw propagates at once; a returned promise is tracked, and its
   * rejection is rethrown by {@linkcode PreviewQueue.throwIfFailed} / {@linkcode PreviewQueue.settle}.
   */
  deliver(preview: PreviewImages): void {
    if (this.#onPreview === undefined) return;
    const r: unknown = this.#onPreview(preview);
    if (typeof (r as PromiseLike<void> | undefined)?.then !== "function") return;
    const pending: Promise<void> = Promise.resolve(r as PromiseLike<void>).then(
      () => {},
      (error: unknown) => void (this.#failure ??= { error }),
    ).finally(() => {
      if (this.#pending === pending) this.#pending = undefined;
    });
    this.#pending = pending;
  }

  /** Rethrows the first rejection of a callback's promise. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  /** Waits for the pending callback, then rethrows its rejection if any. */
  async settle(): Promise<void> {
    while (this.#pending !== undefined) await this.#pending;
    this.throwIfFailed();
  }
}

/**
 * Retry policy: which failures are retried, how long to wait (the server's `Retry-After`, else jittered exponential
 * backoff), and the injectable clock that waits.
 *
 * @module
 */

/**
 * Time as the client sees it; inject one to test retries and backoff without waiting real seconds.
 *
 * @example A clock that records the waits instead of waiting
 * ```ts
 * import { type ClientClock, createClient } from "@ldm/sdk";
 *
 * const waits: number[] = [];
 * const clock: Partial<ClientClock> = {
 *   sleep: (ms) => {
 *     waits.push(ms);
 *     return Promise.resolve();
 *   },
 *   random: () => 0,
 * };
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000", clock });
 * ```
 */
export interface ClientClock {
  /**
   * Resolves after `ms` milliseconds; rejects with `signal.reason` as soon as `signal` aborts.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Wall-clock milliseconds since the Unix epoch (to read `Retry-After` given as an HTTP date). */
  now(): number;
  /** A uniform random number in [0, 1), the backoff's jitter. */
  random(): number;
}

/** Sleeps with the runtime's timers. */
export function realSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The runtime's clock: real timers, `Date.now()`, `Math.random()`. */
export const systemClock: ClientClock = {
  sleep: realSleep,
  now: () => Date.now(),
  random: () => Math.random(),
};

/** Statuses worth another try: request timeout, too many requests, and every server-side failure. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * The wait a response asks for, in milliseconds: `Retry-After-Ms` (milliseconds, as some gateways send), else
 * `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3). `null` when absent or unreadable; never
 * negative.
 */
export function parseRetryAfter(headers: Headers, nowMs: number): number | null {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Number(ms);
  const value = headers.get("retry-after")?.trim();
  if (value === undefined || value === "") return null;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP date names its day and month; other text ("-3", "1.5") is not one, however Date.parse reads it.
  if (!/^[A-Za-z]{3},/.test(value)) return null;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

/** Bounds of the exponential backoff. */
export interface BackoffOptions {
  /** Wait before the first retry, before jitter. */
  initialDelayMs: number;
  /** Longest wait, before jitter. */
  maxDelayMs: number;
}

/**
 * The backoff before retry number `retry` (0 for the first): `min(initial × 2^retry, max)` shortened by up to a
 * quarter at random, so clients that failed together do not retry together (the jitter openai-node uses).
 */
export function backoffDelay(retry: number, random: number, { initialDelayMs, maxDelayMs }: BackoffOptions): number {
  const base = Math.min(initialDelayMs * 2 ** retry, maxDelayMs);
  return base * (1 - 0.25 * random);
}

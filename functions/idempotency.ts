/**
 * `Idempotency-Key` support for the generation endpoints, after draft-ietf-httpapi-idempotency-key-header (the IETF
 * "The Idempotency-Key HTTP Header Field") and Stripe's API, which the draft generalises:
 *
 * - {@linkcode parseIdempotencyKey}: the header's value (1–255 visible ASCII characters, or the draft's quoted
 *   structured-field string), or a 400 naming the header.
 * - {@linkcode requestFingerprint}: a SHA-256 over what makes two requests "the same" (method, path, query, media
 *   type, `Accept`, and the body's bytes, or the parts of a multipart body, whose boundary changes per attempt).
 * - {@linkcode IdempotencyStore}: keys scoped per caller, each either running (duplicates join the run) or done
 *   (its response is replayed for `ttlMs`), in least-recently-used order under a byte cap.
 *
 * How the app uses them is in `README.md` ("Idempotent retries").
 *
 * @module
 */
import { ApiError } from "./errors.ts";
import type { Clock } from "./queue.ts";

/** The request header carrying the key. */
export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";

/** The response header marking a response that was not produced by this request's own run. */
export const IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed";

/** Longest key accepted, in characters (Stripe's limit, and the draft's examples fit). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

function invalidKey(message: string): ApiError {
  return new ApiError(400, "invalid_request_error", "invalid_idempotency_key", message, {
    param: IDEMPOTENCY_KEY_HEADER,
  });
}

/**
 * Reads the `Idempotency-Key` header.
 *
 * The draft defines the value as a structured-field string (`"8e03978e-..."`, RFC 8941 §3.3.3); Stripe and most
 * clients (this project's SDK included) send the bare token. Both are accepted and mean the same key: a value in
 * double quotes is unquoted (`\"` and `\\` unescaped) first.
 *
 * @param header The header's value (`null` when absent).
 * @returns The key, or `null` when the header is absent.
 * @throws {ApiError} 400 `invalid_idempotency_key` (param `Idempotency-Key`) for an empty value, one longer than
 * 255 characters, or one with characters other than visible ASCII (so no spaces: two headers joined by `, ` are
 * refused too).
 */
export function parseIdempotencyKey(header: string | null | undefined): string | null {
  if (header === null || header === undefined) return null;
  let key = header;
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) {
    const inner = key.slice(1, -1);
    if (!/^(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*$/.test(inner)) {
      throw invalidKey(`${IDEMPOTENCY_KEY_HEADER} is not a valid quoted string: got ${JSON.stringify(header)}`);
    }
    key = inner.replace(/\\(["\\])/g, "$1");
  }
  if (key.length === 0) throw invalidKey(`${IDEMPOTENCY_KEY_HEADER} must not be empty`);
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw invalidKey(
      `${IDEMPOTENCY_KEY_HEADER} must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters: got ${key.length}`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(key)) {
    const shown = key.length > 40 ? `${key.slice(0, 37)}...` : key;
    throw invalidKey(
      `${IDEMPOTENCY_KEY_HEADER} must be visible ASCII characters only (no spaces), e.g. a UUID: got ` +
        JSON.stringify(shown),
    );
  }
  return key;
}

/** Lowercase hex SHA-256 of `data`. */
export async function sha256Hex(data: string | Uint8Array<ArrayBuffer>): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}

/** The media type of a `Content-Type` value, lowercased, without parameters. */
function mediaTypeOf(header: string | null): string {
  return (header ?? "").split(";")[0]!.trim().toLowerCase();
}

/**
 * A digest of a multipart body that does not depend on its boundary: the SDK (like any client re-sending a
 * `FormData`) serialises the form afresh on every attempt, with a new random boundary, so the bytes differ while
 * the request is the same. Each part contributes its name, whether it is a file, and its bytes, in order.
 */
async function multipartDigest(contentType: string, body: Uint8Array<ArrayBuffer>): Promise<string | null> {
  let form: FormData;
  try {
    form = await new Response(body, { headers: { "content-type": contentType } }).formData();
  } catch {
    return null; // not parsable: the raw bytes stand in (the request fails its parse anyway)
  }
  const parts: string[] = [];
  for (const [name, value] of form.entries()) {
    const bytes = typeof value === "string"
      ? new TextEncoder().encode(value)
      : new Uint8Array(await value.arrayBuffer());
    parts.push(`${JSON.stringify(name)}:${typeof value === "string" ? "text" : "file"}:${await sha256Hex(bytes)}`);
  }
  return await sha256Hex(parts.join("\n"));
}

/**
 * The fingerprint of a request: SHA-256 over its method, path, query string, media type, `Accept` (it chooses the
 * response's form: JSON, image bytes or events, so a replay must have been produced for the same one) and body. The
 * body counts byte for byte, except multipart bodies, which count part by part (see above).
 *
 * @param request The request (only its method, URL and headers are read).
 * @param body The request's body bytes.
 * @returns 64 hex digits.
 */
export async function requestFingerprint(request: Request, body: Uint8Array<ArrayBuffer>): Promise<string> {
  const url = new URL(request.url);
  const contentType = request.headers.get("content-type");
  const media = mediaTypeOf(contentType);
  const bodyDigest = (media === "multipart/form-data" ? await multipartDigest(contentType ?? "", body) : null) ??
    await sha256Hex(body);
  const accept = (request.headers.get("accept") ?? "").replace(/\s+/g, "").toLowerCase();
  return await sha256Hex([request.method, url.pathname, url.search, media, accept, bodyDigest].join("\n"));
}

/** A finished response kept for replay. The body is the exact bytes the first request sent. */
export interface StoredResponse {
  /** HTTP status (always 2xx: only successes are kept). */
  status: number;
  /** The headers that describe the body (`Content-Type`, `X-Seed`, ...); never `X-Request-Id`. */
  headers: Readonly<Record<string, string>>;
  /** The body's bytes. */
  body: Uint8Array<ArrayBuffer>;
}

/** What {@linkcode IdempotencyStore.lookup} found for a key. */
export type IdempotencyLookup<R> =
  | { kind: "absent" }
  | { kind: "running"; run: R }
  | { kind: "done"; response: StoredResponse }
  | { kind: "mismatch"; state: "running" | "done" };

/** Options of {@linkcode IdempotencyStore}. */
export interface IdempotencyStoreOptions {
  /** How long a finished response is replayed, from its completion, in milliseconds; 0 keeps none. */
  ttlMs: number;
  /** Most bytes the kept responses may hold together (bodies, headers and bookkeeping); the least recently used
   * are evicted past it; 0 keeps none. */
  maxBytes: number;
  /** Time source of the expiry. @default systemClock */
  clock?: Clock;
}

type Slot<R> =
  | { state: "running"; fingerprint: string; run: R }
  | { state: "done"; fingerprint: string; response: StoredResponse; bytes: number; expiresAt: number };

/** Bookkeeping bytes counted per kept response on top of its body and headers, so the cap bounds the count too. */
const ENTRY_OVERHEAD_BYTES = 256;

/**
 * Keys and what they stand for, per scope (one API key, or one anonymous client): a run in progress, or the
 * response of a finished one. Running entries are never evicted (their waiters need them) and hold no response
 * bytes; finished ones expire `ttlMs` after completion and are evicted least recently used first when the kept bytes
 * exceed `maxBytes`. Failed runs keep nothing, so a retry runs again.
 *
 * `R` is the caller's handle of a run (the app's shared run); the store only hands it back.
 *
 * @example
 * ```ts
 * import { IdempotencyStore } from "@ldm/functions";
 *
 * const store = new IdempotencyStore<string>({ ttlMs: 60_000, maxBytes: 1 << 20 });
 * store.begin("key:abc", "k1", "fp", "run-1");
 * console.log(store.lookup("key:abc", "k1", "fp").kind); // running
 * store.finish("key:abc", "k1", "run-1", { status: 200, headers: {}, body: new Uint8Array(3) });
 * console.log(store.lookup("key:abc", "k1", "fp").kind); // done
 * console.log(store.lookup("key:abc", "k1", "other").kind); // mismatch
 * ```
 */
export class IdempotencyStore<R> {
  readonly #ttlMs: number;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  /** Every slot, least recently used first (a Map iterates in insertion order; a use re-inserts). */
  readonly #slots = new Map<string, Slot<R>>();
  /** Finished slots by completion, oldest first: with one TTL for all, also the order they expire in. */
  readonly #expiry = new Map<string, number>();
  #bytes = 0;

  /**
   * Creates an empty store.
   * @throws {RangeError} when `ttlMs` or `maxBytes` is not a non-negative integer.
   */
  constructor(options: IdempotencyStoreOptions) {
    for (const name of ["ttlMs", "maxBytes"] as const) {
      const v = options[name];
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be an integer >= 0: got ${v}`);
    }
    this.#ttlMs = options.ttlMs;
    this.#maxBytes = options.maxBytes;
    this.#clock = options.clock ?? { now: () => performance.now() };
  }

  /** Keys held: running and finished. */
  get size(): number {
    return this.#slots.size;
  }

  /** Keys whose response is kept for replay. */
  get storedCount(): number {
    return this.#expiry.size;
  }

  /** Bytes the kept responses hold (as counted against `maxBytes`). */
  get storedBytes(): number {
    return this.#bytes;
  }

  static #id(scope: string, key: string): string {
    return `${scope}\n${key}`;
  }

  /**
   * What `key` stands for in `scope`. A finished entry found is marked as recently used.
   * @param scope Whose key it is (see the app: a digest of the API key, or the anonymous client).
   * @param key The `Idempotency-Key`.
   * @param fingerprint The request's {@linkcode requestFingerprint}.
   */
  lookup(scope: string, key: string, fingerprint: string): IdempotencyLookup<R> {
    this.#sweep();
    const id = IdempotencyStore.#id(scope, key);
    const slot = this.#slots.get(id);
    if (!slot) return { kind: "absent" };
    if (slot.fingerprint !== fingerprint) return { kind: "mismatch", state: slot.state };
    if (slot.state === "running") return { kind: "running", run: slot.run };
    this.#slots.delete(id);
    this.#slots.set(id, slot);
    return { kind: "done", response: slot.response };
  }

  /**
   * Records that `run` now serves `key` (after {@linkcode lookup} found it absent, with no `await` between).
   * @throws {Error} when the key is already held: that would be a caller bug.
   */
  begin(scope: string, key: string, fingerprint: string, run: R): void {
    const id = IdempotencyStore.#id(scope, key);
    if (this.#slots.has(id)) throw new Error(`Idempotency key already held: ${key}`);
    this.#slots.set(id, { state: "running", fingerprint, run });
  }

  /**
   * Ends `run`'s hold on `key`: keeps `response` for replay when one is given and fits, forgets the key otherwise
   * (a failure, or nothing to keep), so that a retry runs again.
   * @returns Whether the response is kept.
   */
  finish(scope: string, key: string, run: R, response: StoredResponse | null): boolean {
    const id = IdempotencyStore.#id(scope, key);
    const slot = this.#slots.get(id);
    if (!slot || slot.state !== "running" || slot.run !== run) return false;
    this.#slots.delete(id);
    if (response === null || this.#ttlMs === 0) return false;
    let bytes = response.body.byteLength + id.length + slot.fingerprint.length + ENTRY_OVERHEAD_BYTES;
    for (const [k, v] of Object.entries(response.headers)) bytes += k.length + v.length;
    if (bytes > this.#maxBytes) return false;
    const expiresAt = this.#clock.now() + this.#ttlMs;
    this.#slots.set(id, { state: "done", fingerprint: slot.fingerprint, response, bytes, expiresAt });
    this.#expiry.set(id, expiresAt);
    this.#bytes += bytes;
    for (const [oldId, old] of this.#slots) {
      if (this.#bytes <= this.#maxBytes) break;
      if (old.state === "done") this.#drop(oldId, old.bytes);
    }
    return true;
  }

  #drop(id: string, bytes: number): void {
    this.#slots.delete(id);
    this.#expiry.delete(id);
    this.#bytes -= bytes;
  }

  /** Drops the expired responses: the oldest completions, so the front of `#expiry`. */
  #sweep(): void {
    const now = this.#clock.now();
    for (const [id, expiresAt] of this.#expiry) {
      if (expiresAt > now) break;
      const slot = this.#slots.get(id);
      this.#drop(id, slot?.state === "done" ? slot.bytes : 0);
    }
  }
}

/**
 * The client: {@linkcode createClient} and {@linkcode LdmClient}. Web APIs only (`fetch`, `Headers`, `FormData`,
 * `Blob`, `ReadableStream`, `AbortController`, `TextDecoder`, timers), so it runs in Deno, Node.js 18+, Bun, browsers
 * and edge workers.
 *
 * Each call goes through one loop: build the request, send it with a per-attempt deadline, read the answer (JSON,
 * or the event stream when progress is asked for), and on a retryable failure (408, 429, 5xx, network) wait the
 * server's `Retry-After` or a jittered exponential backoff and try again.
 *
 * @module
 */
import { superResolutionParamsSchema, textToImageRequestSchema } from "./schemas.ts";
import { type ClientClock, isRetryableStatus, parseRetryAfter, systemClock } from "./_retry.ts";
import { backoffDelay } from "./_retry.ts";
import { SseParser } from "./_sse.ts";
import {
  apiErrorFromEvent,
  apiErrorFromResponse,
  parseJson,
  readHealth,
  readImageResponse,
  readModelList,
  readProgress,
  sniffImageType,
  toWire,
  validateWire,
} from "./_wire.ts";
import {
  AbortError,
  ApiError,
  ConnectionError,
  InvalidParameterError,
  InvalidResponseError,
  TimeoutError,
} from "./errors.ts";
import type {
  GenerationProgress,
  HealthStatus,
  ImageInput,
  ImageResult,
  ModelDescription,
  SuperResolutionInput,
  TextToImageInput,
} from "./types.ts";

/**
 * Version of this SDK, as published.
 *
 * @example
 * ```ts
 * import { SDK_VERSION } from "@ldm/sdk";
 *
 * console.log(`ldm-sdk/${SDK_VERSION}`);
 * ```
 */
export const SDK_VERSION = "0.1.0";

/**
 * The `fetch` the client calls: the runtime's by default; inject another to add instrumentation, or to call an
 * app in process (`(input, init) => app.request(input, init)` for a Hono app). It is called as a plain function
 * (no `this`).
 *
 * @example Logging every request
 * ```ts
 * import { createClient, type FetchLike } from "@ldm/sdk";
 *
 * const logged: FetchLike = async (url, init) => {
 *   const res = await fetch(url, init);
 *   console.log(init.method, url, res.status);
 *   return res;
 * };
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000", fetch: logged });
 * ```
 */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/**
 * Options of {@linkcode createClient}.
 *
 * @example
 * ```ts
 * import type { ClientOptions } from "@ldm/sdk";
 *
 * const options: ClientOptions = { baseUrl: "https://ldm.example.com", apiKey: "my-key", maxRetries: 4 };
 * ```
 */
export interface ClientOptions {
  /** Where the server is, e.g. `http://127.0.0.1:8000` or `https://example.com/ldm` (a path prefix is kept). */
  baseUrl: string | URL;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The `fetch` to call. @default the runtime's `fetch` */
  fetch?: FetchLike;
  /** Deadline of each attempt, from sending the request to the end of the response, in milliseconds; `Infinity`
   * for none. @default 600000 (10 minutes) */
  timeoutMs?: number;
  /** Retries after the first attempt. @default 2 */
  maxRetries?: number;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** Check parameters against the shared schemas before sending (errors without a round trip). @default true */
  validate?: boolean;
  /** Backoff before the first retry, before jitter, when the server gives no `Retry-After`. @default 500 */
  initialRetryDelayMs?: number;
  /** Longest backoff, before jitter. @default 8000 */
  maxRetryDelayMs?: number;
  /** Longest `Retry-After` honoured; when the server asks for a longer wait the error is thrown instead.
   * @default 60000 */
  maxRetryAfterMs?: number;
  /** Timers, wall clock and randomness of the retry loop; tests inject fakes. @default real timers */
  clock?: Partial<ClientClock>;
}

/**
 * Options of one call.
 *
 * @example
 * ```ts
 * import type { RequestOptions } from "@ldm/sdk";
 *
 * const options: RequestOptions = { signal: AbortSignal.timeout(5000), maxRetries: 0 };
 * ```
 */
export interface RequestOptions {
  /** Aborting it cancels the request, any retry wait, and the server's work; the call rejects with
   * {@linkcode AbortError}. */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number;
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

/**
 * Options of a generation call.
 *
 * @example
 * ```ts
 * import type { GenerationOptions } from "@ldm/sdk";
 *
 * const options: GenerationOptions = {
 *   onProgress: ({ step, total }) => console.log(`${step}/${total}`),
 *   idempotencyKey: crypto.randomUUID(),
 * };
 * ```
 */
export interface GenerationOptions extends RequestOptions {
  /**
   * Called after each denoising step. Asking for progress makes the server answer with its event stream
   * (`Accept: text/event-stream`). When an attempt is retried its steps start again from 1. An exception thrown
   * here cancels the request and is rethrown as is.
   */
  onProgress?: (progress: GenerationProgress) => void;
  /** Sent as `Idempotency-Key` on every attempt of this call, so a server that supports it runs the work once
   * however many times the request is retried; servers that do not ignore it. */
  idempotencyKey?: string;
}

/** One prepared request, re-sent as is by each attempt. */
interface PreparedRequest {
  method: "GET" | "POST";
  path: string;
  headers: Headers;
  /** A fresh body per attempt (a FormData or a string can be sent again; a consumed stream could not). */
  body?: () => BodyInit;
}

/** Per-attempt reader of a successful (or accepted) response. */
type ReadResponse<T> = (res: Response, signal: AbortSignal) => Promise<T>;

/** An exception of the caller's own `onProgress`: rethrown unchanged, never retried. */
class CallbackFailure {
  constructor(readonly error: unknown) {}
}

const MAX_TIMER_MS = 2_147_483_647;

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return String(v);
  return Object.prototype.toString.call(v);
}

function checkTimeout(name: string, v: unknown): number {
  if (v === Infinity) return v;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > MAX_TIMER_MS) {
    throw new RangeError(
      `${name} must be a number of milliseconds in (0, ${MAX_TIMER_MS}] or Infinity: got ${describe(v)}`,
    );
  }
  return v;
}

function checkCount(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 100) {
    throw new RangeError(`${name} must be an integer in [0, 100]: got ${describe(v)}`);
  }
  return v;
}

function checkDelay(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`${name} must be a number of milliseconds >= 0: got ${describe(v)}`);
  }
  return v;
}

function checkHeaderValue(name: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0 || /[\r\n\0]/.test(v) || v.trim() !== v) {
    throw new TypeError(
      `${name} must be a non-empty string without line breaks or surrounding spaces: got ${describe(v)}`,
    );
  }
  return v;
}

/** The server's rule for `Idempotency-Key` (1–255 visible ASCII characters), checked before anything is sent. */
function checkIdempotencyKey(v: unknown): string {
  if (typeof v !== "string" || !/^[\x21-\x7e]{1,255}$/.test(v)) {
    throw new TypeError(`idempotencyKey must be 1-255 visible ASCII characters (no spaces): got ${describe(v)}`);
  }
  return v;
}

function checkHeaders(name: string, v: unknown): Record<string, string> {
  if (v === undefined) return {};
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new TypeError(`${name} must be an object of header names to values: got ${describe(v)}`);
  }
  for (const [k, value] of Object.entries(v)) {
    if (typeof value !== "string") throw new TypeError(`${name}.${k} must be a string: got ${describe(value)}`);
  }
  return v as Record<string, string>;
}

function normalizeBaseUrl(v: unknown): string {
  let url: URL;
  try {
    url = new URL(v instanceof URL ? v.href : String(v));
  } catch {
    throw new TypeError(`baseUrl must be an absolute http(s) URL such as http://127.0.0.1:8000: got ${describe(v)}`);
  }
  if ((typeof v !== "string" && !(v instanceof URL)) || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new TypeError(`baseUrl must be an absolute http(s) URL such as http://127.0.0.1:8000: got ${describe(v)}`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new TypeError(`baseUrl must not have a query or fragment: got ${url.href}`);
  }
  return url.href.replace(/\/+$/, "");
}

/** Rejects with `signal.reason` as soon as `signal` aborts, whatever `promise` does. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function abortErrorFrom(signal: AbortSignal): AbortError {
  return new AbortError("The request was aborted", { cause: signal.reason });
}

/** Reads a whole body as text; a broken connection becomes a {@linkcode ConnectionError}. */
async function readText(res: Response, signal: AbortSignal): Promise<string> {
  try {
    return await raceAbort(res.text(), signal);
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    throw new ConnectionError(`The connection failed while reading the response: ${message(e)}`, { cause: e });
  }
}

/** Reads the body of a generation call: the JSON result, or the event stream when progress was asked for. */
async function readGeneration(
  res: Response,
  signal: AbortSignal,
  onProgress: ((p: GenerationProgress) => void) | undefined,
): Promise<ImageResult> {
  const ctx = { status: res.status, requestId: res.headers.get("x-request-id") };
  const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "text/event-stream") {
    return readImageResponse(parseJson(await readText(res, signal), "result", ctx), ctx);
  }
  if (!res.body) throw new InvalidResponseError("The server's event stream has no body", res.status, ctx.requestId);
  const reader = res.body.getReader();
  const parser = new SseParser();
  let result: ImageResult | null = null;
  const onAbort = () => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await raceAbort(reader.read(), signal);
      } catch (e) {
        // The result is in hand: what happens to the rest of the stream no longer matters.
        if (result !== null) break;
        if (signal.aborted) throw signal.reason;
        throw new ConnectionError(`The connection failed during the event stream: ${message(e)}`, { cause: e });
      }
      for (const event of chunk.done ? parser.end() : parser.push(chunk.value)) {
        if (result !== null) continue;
        if (event.event === "progress") {
          const progress = readProgress(parseJson(event.data, "progress event", ctx), ctx);
          try {
            onProgress?.(progress);
          } catch (e) {
            throw new CallbackFailure(e);
          }
        } else if (event.event === "result") {
          result = readImageResponse(parseJson(event.data, "result", ctx), ctx);
        } else if (event.event === "error") {
          throw apiErrorFromEvent(parseJson(event.data, "error event", ctx), res.headers, ctx);
        }
      }
      if (chunk.done) break;
    }
  } catch (e) {
    // Closing our side tells the server to stop the work (its stream's cancel aborts the generation).
    reader.cancel().catch(() => {});
    throw e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  if (result === null) {
    throw new ConnectionError("The event stream ended before the result arrived");
  }
  return result;
}

/** The image as a Blob, a stream read to its end first. */
async function toBlob(image: ImageInput, signal: AbortSignal | undefined): Promise<Blob> {
  if (typeof Blob !== "undefined" && image instanceof Blob) return image;
  if (image instanceof ArrayBuffer) return new Blob([image]);
  if (ArrayBuffer.isView(image)) {
    const view = new Uint8Array(image.buffer, image.byteOffset, image.byteLength);
    // A view of a SharedArrayBuffer cannot go into a Blob; copy it.
    return new Blob([view.buffer instanceof ArrayBuffer ? view as Uint8Array<ArrayBuffer> : view.slice()]);
  }
  if (image !== null && typeof image === "object" && typeof (image as ReadableStream).getReader === "function") {
    const reader = (image as ReadableStream<Uint8Array>).getReader();
    const parts: Uint8Array<ArrayBuffer>[] = [];
    const onAbort = () => void reader.cancel(signal?.reason).catch(() => {});
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (signal?.aborted) throw abortErrorFrom(signal);
        if (done) break;
        if (!(value instanceof Uint8Array)) {
          throw new InvalidParameterError("image", `image stream must yield Uint8Array chunks: got ${describe(value)}`);
        }
        parts.push(value.slice());
      }
    } catch (e) {
      if (e instanceof InvalidParameterError || e instanceof AbortError) throw e;
      if (signal?.aborted) throw abortErrorFrom(signal);
      throw new InvalidParameterError("image", `image stream failed while being read: ${message(e)}`, { cause: e });
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return new Blob(parts);
  }
  throw new InvalidParameterError(
    "image",
    `image must be a Uint8Array, ArrayBuffer, Blob or ReadableStream of the encoded image: got ${describe(image)}`,
  );
}

/**
 * A client of one LDM server. Create it with {@linkcode createClient}; it holds no connection, so one client can
 * serve any number of concurrent calls.
 *
 * @example
 * ```ts
 * import { LdmClient } from "@ldm/sdk";
 *
 * const client = new LdmClient({ baseUrl: "http://127.0.0.1:8000" });
 * console.log(client.baseUrl); // http://127.0.0.1:8000
 * ```
 */
export class LdmClient {
  /** The server's base URL, without a trailing slash. */
  readonly baseUrl: string;
  readonly #apiKey: string | undefined;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #headers: Record<string, string>;
  readonly #validate: boolean;
  readonly #initialRetryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #maxRetryAfterMs: number;
  readonly #clock: ClientClock;

  /**
   * Checks the options.
   * @throws {TypeError} for a `baseUrl` that is not an absolute http(s) URL, an empty or multi-line `apiKey`, a
   * `fetch` that is not a function or headers that are not strings.
   * @throws {RangeError} for a non-positive `timeoutMs`, a `maxRetries` outside [0, 100] or a negative delay.
   */
  constructor(options: ClientOptions) {
    if (options === null || typeof options !== "object") {
      throw new TypeError(`options must be an object with at least baseUrl: got ${describe(options)}`);
    }
    this.baseUrl = normalizeBaseUrl(options.baseUrl);
    this.#apiKey = options.apiKey === undefined ? undefined : checkHeaderValue("apiKey", options.apiKey);
    if (options.fetch !== undefined && typeof options.fetch !== "function") {
      throw new TypeError(`fetch must be a function: got ${describe(options.fetch)}`);
    }
    // Looked up at call time, and called unbound from `globalThis` (browsers refuse a detached `window.fetch`).
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = checkTimeout("timeoutMs", options.timeoutMs ?? 600_000);
    this.#maxRetries = checkCount("maxRetries", options.maxRetries ?? 2);
    this.#headers = { ...checkHeaders("headers", options.headers) };
    this.#validate = options.validate ?? true;
    this.#initialRetryDelayMs = checkDelay("initialRetryDelayMs", options.initialRetryDelayMs ?? 500);
    this.#maxRetryDelayMs = checkDelay("maxRetryDelayMs", options.maxRetryDelayMs ?? 8000);
    this.#maxRetryAfterMs = checkDelay("maxRetryAfterMs", options.maxRetryAfterMs ?? 60_000);
    this.#clock = { ...systemClock, ...options.clock };
  }

  /**
   * Generates images from text (`POST /v1/text-to-image`).
   *
   * @param params The prompt and diffusers' parameters in camelCase.
   * @param options Cancellation, progress, deadline, retries.
   * @returns The images (bytes, content type, seed, size), server timings, model and request id.
   * @throws {InvalidParameterError} when a parameter fails the shared schema (nothing is sent).
   * @throws {ApiError} when the server refuses or fails: {@linkcode BadRequestError}, {@linkcode
   * AuthenticationError}, {@linkcode UnprocessableEntityError}, {@linkcode RateLimitError}, {@linkcode ServerError}.
   * @throws {TimeoutError} / {@linkcode AbortError} / {@linkcode ConnectionError}.
   *
   * @example Two images of one prompt, with progress
   * ```ts
   * import { createClient } from "@ldm/sdk";
   *
   * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
   * const result = await client.textToImage(
   *   { prompt: "a painting of a squirrel eating a burger", numImagesPerPrompt: 2, guidanceScale: 6, seed: 7 },
   *   { onProgress: ({ step, total }) => console.log(`step ${step}/${total}`) },
   * );
   * for (const image of result.images) console.log(image.seed, image.width, image.height, image.data.length);
   * ```
   */
  async textToImage(params: TextToImageInput, options: GenerationOptions = {}): Promise<ImageResult> {
    if (params === null || typeof params !== "object" || Array.isArray(params)) {
      throw new InvalidParameterError(null, `params must be an object with at least prompt: got ${describe(params)}`);
    }
    const wire = toWire(params as unknown as Record<string, unknown>);
    if (this.#validate) validateWire(textToImageRequestSchema, wire);
    const body = JSON.stringify(wire);
    const headers = this.#generationHeaders(options);
    headers.set("content-type", "application/json");
    return await this.#send(
      { method: "POST", path: "/v1/text-to-image", headers, body: () => body },
      options,
      (res, signal) => readGeneration(res, signal, options.onProgress),
    );
  }

  /**
   * Upscales an image (`POST /v1/super-resolution`, sent as `multipart/form-data`).
   *
   * @param params The image (bytes, Blob or stream) and diffusers' parameters in camelCase.
   * @param options Cancellation, progress, deadline, retries.
   * @returns The upscaled image, server timings, model and request id.
   * @throws {InvalidParameterError} when the image is missing, empty or not bytes, a Blob or a stream, or a
   * parameter fails the shared schema (nothing is sent).
   * @throws {ApiError} when the server refuses or fails ({@linkcode PayloadTooLargeError} for a body over its
   * limit, {@linkcode UnprocessableEntityError} for an image it cannot use: not PNG/JPEG, too large, too small).
   * @throws {TimeoutError} / {@linkcode AbortError} / {@linkcode ConnectionError}.
   *
   * @example Upscaling a file in Deno
   * ```ts ignore
   * import { createClient } from "@ldm/sdk";
   *
   * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
   * const { images } = await client.superResolve({ image: await Deno.readFile("small.png"), numInferenceSteps: 50 });
   * await Deno.writeFile("large.png", images[0]!.data);
   * ```
   */
  async superResolve(params: SuperResolutionInput, options: GenerationOptions = {}): Promise<ImageResult> {
    if (params === null || typeof params !== "object" || Array.isArray(params)) {
      throw new InvalidParameterError(null, `params must be an object with at least image: got ${describe(params)}`);
    }
    const { image, ...rest } = params;
    if (image === undefined || image === null) {
      throw new InvalidParameterError("image", "image is required: pass the encoded PNG or JPEG image");
    }
    const wire = toWire(rest as Record<string, unknown>);
    if (this.#validate) validateWire(superResolutionParamsSchema, wire);
    if (options.signal?.aborted) throw abortErrorFrom(options.signal);
    const blob = await toBlob(image, options.signal);
    if (this.#validate && blob.size === 0) throw new InvalidParameterError("image", "image is empty");
    // Only for the part's Content-Type and file name: which formats it takes is the server's call (422 otherwise).
    const sniffed = sniffImageType(new Uint8Array(await blob.slice(0, 12).arrayBuffer()));
    const type = sniffed ?? (blob.type || "application/octet-stream");
    const file = blob.type === type ? blob : new Blob([blob], { type });
    const filename = sniffed ? `image.${sniffed.slice("image/".length)}` : "image";
    const headers = this.#generationHeaders(options);
    // The runtime writes multipart's Content-Type with its boundary.
    headers.delete("content-type");
    const body = () => {
      const form = new FormData();
      form.append("image", file, filename);
      for (const [k, v] of Object.entries(wire)) form.append(k, String(v));
      return form;
    };
    return await this.#send(
      { method: "POST", path: "/v1/super-resolution", headers, body },
      options,
      (res, signal) => readGeneration(res, signal, options.onProgress),
    );
  }

  /**
   * Asks whether the server is ready for generation requests (`GET /readyz`). A server that is loading, failed or
   * shutting down answers too (with `ready: false`); only network failures and unexpected answers throw.
   *
   * @param options Cancellation, deadline, retries.
   * @returns `ready`, the status and the reason when not ready.
   *
   * @example Waiting until a server is ready
   * ```ts
   * import { createClient } from "@ldm/sdk";
   *
   * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
   * while (!(await client.health()).ready) await new Promise((r) => setTimeout(r, 1000));
   * ```
   */
  async health(options: RequestOptions = {}): Promise<HealthStatus> {
    const headers = this.#baseHeaders(options);
    headers.set("accept", "application/json");
    return await this.#send({ method: "GET", path: "/readyz", headers }, options, async (res, signal) => {
      const ctx = { status: res.status, requestId: res.headers.get("x-request-id") };
      const text = await readText(res, signal);
      try {
        return readHealth(parseJson(text, "health answer", ctx), ctx);
      } catch (e) {
        // A 503 without the health shape is a proxy or load balancer saying no: an error (and retried).
        if (res.status === 503) throw apiErrorFromResponse(503, res.headers, text, null);
        throw e;
      }
    }, (status) => status === 503);
  }

  /**
   * Lists the models the server hosts (`GET /v1/models`).
   *
   * @param options Cancellation, deadline, retries.
   * @returns One description per model: task, status, default size, size multiple, upscale factor, scheduler.
   *
   * @example Finding the size a text-to-image model draws by default
   * ```ts
   * import { createClient } from "@ldm/sdk";
   *
   * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
   * const model = (await client.models()).find((m) => m.task === "text-to-image");
   * console.log(model?.defaultWidth, model?.defaultHeight, model?.sizeMultiple);
   * ```
   */
  async models(options: RequestOptions = {}): Promise<ModelDescription[]> {
    const headers = this.#baseHeaders(options);
    headers.set("accept", "application/json");
    return await this.#send({ method: "GET", path: "/v1/models", headers }, options, async (res, signal) => {
      const ctx = { status: res.status, requestId: res.headers.get("x-request-id") };
      return readModelList(parseJson(await readText(res, signal), "model list", ctx), ctx);
    });
  }

  #baseHeaders(options: RequestOptions): Headers {
    const headers = new Headers(this.#headers);
    for (const [k, v] of Object.entries(checkHeaders("headers", options.headers))) headers.set(k, v);
    if (this.#apiKey !== undefined) headers.set("authorization", `Bearer ${this.#apiKey}`);
    return headers;
  }

  #generationHeaders(options: GenerationOptions): Headers {
    const headers = this.#baseHeaders(options);
    if (options.onProgress !== undefined && typeof options.onProgress !== "function") {
      throw new TypeError(`onProgress must be a function: got ${describe(options.onProgress)}`);
    }
    headers.set("accept", options.onProgress ? "text/event-stream" : "application/json");
    if (options.idempotencyKey !== undefined) {
      headers.set("idempotency-key", checkIdempotencyKey(options.idempotencyKey));
    }
    return headers;
  }

  /** The retry loop around one request. */
  async #send<T>(
    req: PreparedRequest,
    options: RequestOptions,
    read: ReadResponse<T>,
    acceptStatus: (status: number) => boolean = () => false,
  ): Promise<T> {
    const timeoutMs = options.timeoutMs === undefined ? this.#timeoutMs : checkTimeout("timeoutMs", options.timeoutMs);
    const maxRetries = options.maxRetries === undefined
      ? this.#maxRetries
      : checkCount("maxRetries", options.maxRetries);
    const userSignal = options.signal;
    const url = this.baseUrl + req.path;
    for (let retry = 0;; retry++) {
      if (userSignal?.aborted) throw abortErrorFrom(userSignal);
      const attempt = new AbortController();
      const onUserAbort = () => attempt.abort(abortErrorFrom(userSignal!));
      userSignal?.addEventListener("abort", onUserAbort, { once: true });
      const timer = timeoutMs === Infinity
        ? undefined
        : setTimeout(() => attempt.abort(new TimeoutError(timeoutMs)), timeoutMs);
      let failure: unknown;
      try {
        let res: Response;
        try {
          const init: RequestInit = { method: req.method, headers: req.headers, signal: attempt.signal };
          if (req.body) init.body = req.body();
          // Called unbound: a browser's `fetch` throws "Illegal invocation" when called as a method of another object.
          const fetch = this.#fetch;
          const pending = fetch(url, init);
          // A fetch that ignores the signal (or an in-process app) may still answer later: drop that answer.
          pending.then((late) => {
            if (attempt.signal.aborted) late.body?.cancel().catch(() => {});
          }, () => {});
          res = await raceAbort(pending, attempt.signal);
        } catch (e) {
          if (attempt.signal.aborted) throw attempt.signal.reason;
          throw new ConnectionError(`Could not reach ${url}: ${message(e)}`, { cause: e });
        }
        if (!res.ok && !acceptStatus(res.status)) {
          const text = await readText(res, attempt.signal);
          throw apiErrorFromResponse(res.status, res.headers, text, parseRetryAfter(res.headers, this.#clock.now()));
        }
        return await read(res, attempt.signal);
      } catch (e) {
        failure = e instanceof CallbackFailure ? e : attempt.signal.aborted ? attempt.signal.reason : e;
        // Whatever went wrong, this attempt is over: release its connection, and with it the server's work.
        if (!attempt.signal.aborted) attempt.abort(failure);
      } finally {
        clearTimeout(timer);
        userSignal?.removeEventListener("abort", onUserAbort);
      }
      if (failure instanceof CallbackFailure) throw failure.error;
      const retryable = failure instanceof ConnectionError ||
        (failure instanceof ApiError && isRetryableStatus(failure.status));
      if (!retryable || retry >= maxRetries) throw failure;
      let delay: number;
      if (failure instanceof ApiError && failure.retryAfterMs !== null) {
        // Never earlier than the server asked; when it asks for longer than we are willing to wait, give up now.
        if (failure.retryAfterMs > this.#maxRetryAfterMs) throw failure;
        delay = failure.retryAfterMs;
      } else {
        delay = backoffDelay(retry, this.#clock.random(), {
          initialDelayMs: this.#initialRetryDelayMs,
          maxDelayMs: this.#maxRetryDelayMs,
        });
      }
      try {
        await this.#clock.sleep(delay, userSignal);
      } catch (e) {
        if (userSignal?.aborted) throw abortErrorFrom(userSignal);
        throw e;
      }
    }
  }
}

/**
 * Creates a client of one LDM server.
 *
 * @param options Where the server is, the API key, and how to send (fetch, deadline, retries, headers).
 * @returns The client.
 * @throws {TypeError} / {@linkcode RangeError} for invalid options, naming the option and the value.
 *
 * @example Deno, Node.js, Bun, browsers and workers alike
 * ```ts
 * import { createClient } from "@ldm/sdk";
 *
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000", apiKey: "my-key", timeoutMs: 120_000 });
 * const { images, timings, requestId } = await client.textToImage({ prompt: "a squirrel", seed: 42 });
 * console.log(requestId, timings.inferenceMs, images[0]!.contentType);
 * ```
 */
export function createClient(options: ClientOptions): LdmClient {
  return new LdmClient(options);
}

/**
 * The SDK's error classes. Everything the client throws is an {@linkcode LdmError}:
 *
 * - {@linkcode ApiError} (and one subclass per status family) when the server answered with an error;
 * - {@linkcode TimeoutError} when an attempt ran past `timeoutMs`;
 * - {@linkcode AbortError} when the caller's `AbortSignal` fired;
 * - {@linkcode ConnectionError} when the request could not be sent or the response could not be read;
 * - {@linkcode InvalidParameterError} when a parameter fails the shared schema before anything is sent;
 * - {@linkcode InvalidResponseError} when the server's answer is not what the shared schemas describe.
 *
 * @module
 */

/**
 * Values of the server's `error.type`, one per family of failure.
 *
 * @example
 * ```ts
 * import type { ApiErrorType } from "@ldm/sdk";
 *
 * const clientSide: ApiErrorType[] = ["invalid_request_error", "authentication_error", "not_found_error"];
 * ```
 */
export type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "rate_limit_error"
  | "timeout_error"
  | "unavailable_error"
  | "server_error";

/**
 * Base class of every error the SDK throws.
 *
 * @example Telling SDK failures from bugs in your own code
 * ```ts
 * import { createClient, LdmError } from "@ldm/sdk";
 *
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
 * try {
 *   await client.health();
 * } catch (e) {
 *   if (!(e instanceof LdmError)) throw e;
 *   console.error(`the server could not be asked: ${e.message}`);
 * }
 * ```
 */
export class LdmError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LdmError";
  }
}

/**
 * What an {@linkcode ApiError} is built from.
 *
 * @example
 * ```ts
 * import { ApiError, type ApiErrorInit } from "@ldm/sdk";
 *
 * const init: ApiErrorInit = {
 *   status: 503,
 *   type: "unavailable_error",
 *   code: "model_loading",
 *   param: null,
 *   requestId: null,
 *   headers: new Headers(),
 *   retryAfterMs: 5000,
 * };
 * const error = ApiError.from("Models are still loading", init);
 * ```
 */
export interface ApiErrorInit {
  /** HTTP status of the response (for an error event of a stream: the status the server gives that error). */
  status: number;
  /** `error.type` of the server's envelope, or `null` when the body was not the envelope (e.g. a proxy's page). */
  type: ApiErrorType | null;
  /** Machine-readable reason (`error.code`), e.g. `invalid_parameter`, `queue_full`; `http_<status>` without an
   * envelope. */
  code: string;
  /** The request field at fault, as the server names it (`num_inference_steps`, `prompt[1]`), or `null`. */
  param: string | null;
  /** The server's request id (`request_id` / `X-Request-Id`), or `null` when it sent none. */
  requestId: string | null;
  /** The response headers. */
  headers: Headers;
  /** The wait the server asked for in `Retry-After`, in milliseconds, or `null`. */
  retryAfterMs: number | null;
}

/**
 * The server answered with an error. Subclasses name the status families; `status`, `code` and `param` say
 * exactly what was wrong.
 *
 * @example Reporting which field the server refused
 * ```ts
 * import { ApiError, createClient } from "@ldm/sdk";
 *
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
 * try {
 *   await client.textToImage({ prompt: "a squirrel", numInferenceSteps: 999 });
 * } catch (e) {
 *   if (e instanceof ApiError) console.error(e.status, e.code, e.param, e.requestId);
 * }
 * ```
 */
export class ApiError extends LdmError {
  /** HTTP status. */
  readonly status: number;
  /** Family of the failure, or `null` when the body was not the server's error envelope. */
  readonly type: ApiErrorType | null;
  /** Machine-readable reason. */
  readonly code: string;
  /** The request field at fault (the server's snake_case name), or `null`. */
  readonly param: string | null;
  /** The server's request id, to quote when reporting a problem. */
  readonly requestId: string | null;
  /** The response headers. */
  readonly headers: Headers;
  /** The wait the server asked for in `Retry-After`, in milliseconds, or `null`. */
  readonly retryAfterMs: number | null;

  /** Builds the error; {@linkcode ApiError.from} picks the subclass for a status. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, options);
    this.name = "ApiError";
    this.status = init.status;
    this.type = init.type;
    this.code = init.code;
    this.param = init.param;
    this.requestId = init.requestId;
    this.headers = init.headers;
    this.retryAfterMs = init.retryAfterMs;
  }

  /**
   * The error for a status: {@linkcode BadRequestError} for 400, {@linkcode AuthenticationError} 401,
   * {@linkcode NotFoundError} 404, {@linkcode PayloadTooLargeError} 413, {@linkcode UnprocessableEntityError} 422,
   * {@linkcode RateLimitError} 429, {@linkcode ServiceUnavailableError} 503, {@linkcode GatewayTimeoutError} 504,
   * {@linkcode ServerError} for other 5xx, and a plain {@linkcode ApiError} otherwise.
   *
   * @example
   * ```ts
   * import { ApiError, RateLimitError } from "@ldm/sdk";
   *
   * const e = ApiError.from("The queue is full", {
   *   status: 429,
   *   type: "rate_limit_error",
   *   code: "queue_full",
   *   param: null,
   *   requestId: "abc",
   *   headers: new Headers({ "retry-after": "2" }),
   *   retryAfterMs: 2000,
   * });
   * console.log(e instanceof RateLimitError); // true
   * ```
   */
  static from(message: string, init: ApiErrorInit, options?: ErrorOptions): ApiError {
    const s = init.status;
    if (s === 400) return new BadRequestError(message, init, options);
    if (s === 401) return new AuthenticationError(message, init, options);
    if (s === 404) return new NotFoundError(message, init, options);
    if (s === 413) return new PayloadTooLargeError(message, init, options);
    if (s === 422) return new UnprocessableEntityError(message, init, options);
    if (s === 429) return new RateLimitError(message, init, options);
    if (s === 503) return new ServiceUnavailableError(message, init, options);
    if (s === 504) return new GatewayTimeoutError(message, init, options);
    if (s >= 500) return new ServerError(message, init, options);
    return new ApiError(message, init, options);
  }
}

/**
 * 400: a parameter fails the server's schema (wrong type, out of the static bounds, unknown field) or the body
 * could not be parsed. Never retried.
 *
 * @example
 * ```ts
 * import { BadRequestError } from "@ldm/sdk";
 *
 * function explain(e: unknown): string | null {
 *   return e instanceof BadRequestError ? `fix ${e.param}: ${e.message}` : null;
 * }
 * ```
 */
export class BadRequestError extends ApiError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "BadRequestError";
  }
}

/**
 * 401: no API key was sent, or the key is not valid. Never retried.
 *
 * @example
 * ```ts
 * import { AuthenticationError } from "@ldm/sdk";
 *
 * const needsKey = (e: unknown) => e instanceof AuthenticationError && e.code === "missing_api_key";
 * ```
 */
export class AuthenticationError extends ApiError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "AuthenticationError";
  }
}

/**
 * 404: the route does not exist, or this server does not serve the function (`function_not_enabled`).
 *
 * @example
 * ```ts
 * import { NotFoundError } from "@ldm/sdk";
 *
 * const notServed = (e: unknown) => e instanceof NotFoundError && e.code === "function_not_enabled";
 * ```
 */
export class NotFoundError extends ApiError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "NotFoundError";
  }
}

/**
 * 413: the request body is larger than the server accepts (`LDM_MAX_BODY_BYTES`). Never retried.
 *
 * @example
 * ```ts
 * import { PayloadTooLargeError } from "@ldm/sdk";
 *
 * const tooBig = (e: unknown) => e instanceof PayloadTooLargeError;
 * ```
 */
export class PayloadTooLargeError extends ApiError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "PayloadTooLargeError";
  }
}

/**
 * 422: a well-formed parameter exceeds this server's limits or does not fit the model (`limit_exceeded`,
 * `invalid_image`, `image_too_large`, ...). Never retried.
 *
 * @example
 * ```ts
 * import { UnprocessableEntityError } from "@ldm/sdk";
 *
 * const overLimit = (e: unknown) => e instanceof UnprocessableEntityError && e.code === "limit_exceeded";
 * ```
 */
export class UnprocessableEntityError extends ApiError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "UnprocessableEntityError";
  }
}

/**
 * 429: the server's queue is full. Retried after the server's `Retry-After`; thrown once retries are spent.
 *
 * @example
 * ```ts
 * import { RateLimitError } from "@ldm/sdk";
 *
 * const waitMs = (e: unknown) => e instanceof RateLimitError ? e.retryAfterMs ?? 1000 : 0;
 * ```
 */
export class RateLimitError extends ApiError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "RateLimitError";
  }
}

/**
 * 5xx: the server failed (`internal_error`), is unavailable, or gave up. Retried with backoff.
 *
 * @example
 * ```ts
 * import { ServerError } from "@ldm/sdk";
 *
 * const serverSide = (e: unknown) => e instanceof ServerError;
 * ```
 */
export class ServerError extends ApiError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "ServerError";
  }
}

/**
 * 503: models still loading (`model_loading`, with `Retry-After`), the server shutting down, or the work cancelled
 * on the server. Retried.
 *
 * @example
 * ```ts
 * import { ServiceUnavailableError } from "@ldm/sdk";
 *
 * const loading = (e: unknown) => e instanceof ServiceUnavailableError && e.code === "model_loading";
 * ```
 */
export class ServiceUnavailableError extends ServerError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "ServiceUnavailableError";
  }
}

/**
 * 504: the request ran past the server's own deadline (`LDM_REQUEST_TIMEOUT_MS`) and its work was cancelled there.
 * Not to be confused with {@linkcode TimeoutError}, the client's deadline.
 *
 * @example
 * ```ts
 * import { GatewayTimeoutError } from "@ldm/sdk";
 *
 * const serverDeadline = (e: unknown) => e instanceof GatewayTimeoutError;
 * ```
 */
export class GatewayTimeoutError extends ServerError {
  /** Builds the error. */
  constructor(message: string, init: ApiErrorInit, options?: ErrorOptions) {
    super(message, init, options);
    this.name = "GatewayTimeoutError";
  }
}

/**
 * An attempt ran past the client's `timeoutMs`. The request is cancelled (so is the server's work); it is not
 * retried.
 *
 * @example
 * ```ts
 * import { createClient, TimeoutError } from "@ldm/sdk";
 *
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000", timeoutMs: 60_000 });
 * try {
 *   await client.textToImage({ prompt: "a squirrel" });
 * } catch (e) {
 *   if (e instanceof TimeoutError) console.error(`gave up after ${e.timeoutMs} ms`);
 * }
 * ```
 */
export class TimeoutError extends LdmError {
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;
  /** Builds the error. */
  constructor(timeoutMs: number, options?: ErrorOptions) {
    super(`The request did not finish within ${timeoutMs} ms and was cancelled`, options);
    this.name = "TimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The caller's `AbortSignal` fired: the request (and the server's work) was cancelled. `cause` is the signal's
 * reason. Never retried.
 *
 * @example
 * ```ts
 * import { AbortError, createClient } from "@ldm/sdk";
 *
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
 * const controller = new AbortController();
 * setTimeout(() => controller.abort(), 1000);
 * try {
 *   await client.textToImage({ prompt: "a squirrel" }, { signal: controller.signal });
 * } catch (e) {
 *   if (!(e instanceof AbortError)) throw e;
 * }
 * ```
 */
export class AbortError extends LdmError {
  /** Builds the error. */
  constructor(message = "The request was aborted", options?: ErrorOptions) {
    super(message, options);
    this.name = "AbortError";
  }
}

/**
 * The request could not be sent, or the connection failed before the whole response arrived (`cause` is the
 * runtime's error). Retried with backoff.
 *
 * @example
 * ```ts
 * import { ConnectionError } from "@ldm/sdk";
 *
 * const unreachable = (e: unknown) => e instanceof ConnectionError;
 * ```
 */
export class ConnectionError extends LdmError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

/**
 * A parameter fails the shared schema, found before anything was sent (turn off with `validate: false`).
 * `param` is the SDK's camelCase name; the message names the field, the value and what was expected.
 *
 * @example
 * ```ts
 * import { createClient, InvalidParameterError } from "@ldm/sdk";
 *
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
 * try {
 *   await client.textToImage({ prompt: "a squirrel", numInferenceSteps: 0 });
 * } catch (e) {
 *   if (e instanceof InvalidParameterError) console.error(e.param, e.message); // numInferenceSteps ...
 * }
 * ```
 */
export class InvalidParameterError extends LdmError {
  /** The parameter at fault (camelCase, `prompt[1]` for list entries), or `null` for the whole call. */
  readonly param: string | null;
  /** Builds the error. */
  constructor(param: string | null, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidParameterError";
    this.param = param;
  }
}

/**
 * The server answered, but not in the shape the shared schemas describe (a proxy's page, a different server, a
 * version mismatch). Not retried.
 *
 * @example
 * ```ts
 * import { InvalidResponseError } from "@ldm/sdk";
 *
 * const wrongServer = (e: unknown) => e instanceof InvalidResponseError;
 * ```
 */
export class InvalidResponseError extends LdmError {
  /** HTTP status of the response. */
  readonly status: number;
  /** The server's request id, if it sent one. */
  readonly requestId: string | null;
  /** Builds the error. */
  constructor(message: string, status: number, requestId: string | null, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidResponseError";
    this.status = status;
    this.requestId = requestId;
  }
}

/**
 * The one error funnel: every failure becomes an {@linkcode ApiError} and is answered with the shared
 * `ErrorResponse` shape `{ error: { type, code, message, param }, request_id }`.
 *
 * @module
 */
import type { ErrorResponse } from "@ldm/sdk/schemas";
import type { z } from "zod";
import { HTTPException } from "hono/http-exception";
import { QueueClosedError, QueueFullError } from "./queue.ts";
import { RunnerError } from "./runner.ts";

/** Values of `error.type`. */
export type ErrorType = ErrorResponse["error"]["type"];

/** An HTTP failure with everything the error envelope needs. Throw it from handlers and middleware. */
export class ApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** Family of the failure. */
  readonly type: ErrorType;
  /** Machine-readable reason. */
  readonly code: string;
  /** The request field at fault, or `null`. */
  readonly param: string | null;
  /** Extra response headers (e.g. `Retry-After`). */
  readonly headers: Readonly<Record<string, string>>;

  /** Builds the error. */
  constructor(
    status: number,
    type: ErrorType,
    code: string,
    message: string,
    { param = null, headers = {} }: { param?: string | null; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = param;
    this.headers = headers;
  }

  /** The JSON body for this error. */
  body(requestId: string): ErrorResponse {
    return {
      error: { type: this.type, code: this.code, message: this.message, param: this.param },
      request_id: requestId,
    };
  }
}

/** 400: a field fails the shared schema. */
export function invalidParameter(param: string | null, message: string): ApiError {
  return new ApiError(400, "invalid_request_error", "invalid_parameter", message, { param });
}

/** 422: a well-formed field exceeds this server's limits or does not fit the model. */
export function unprocessable(param: string | null, message: string, code = "invalid_parameter"): ApiError {
  return new ApiError(422, "invalid_request_error", code, message, { param });
}

/** 499 is what the access log records for a request whose client went away; nothing is sent. */
export const CLIENT_CLOSED_REQUEST = 499;

/** Why the server aborted a request's work. Used as an `AbortSignal` reason so the handler can tell. */
export class AbortReason extends Error {
  /** What happened. */
  readonly kind: "client_disconnect" | "timeout" | "shutdown";
  /** Builds the reason. */
  constructor(kind: "client_disconnect" | "timeout" | "shutdown", message: string) {
    super(message);
    this.name = "AbortReason";
    this.kind = kind;
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Turns the first zod issue into a 400 naming the field and the value received. */
export function fromZodError(error: z.ZodError, input: unknown): ApiError {
  const issue = error.issues[0];
  if (!issue) return invalidParameter(null, "The request is invalid");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const param = formatPath([...issue.path, key]);
    return invalidParameter(param, `Unrecognized parameter '${param}'`);
  }
  const param = formatPath(issue.path);
  const name = param === "" ? "The request body" : param;
  let message = issue.message;
  if (issue.code === "invalid_union") message = "Invalid input: expected a string or a list of strings";
  return invalidParameter(param === "" ? null : param, `${name}: ${message} (got ${show(valueAt(input, issue.path))})`);
}

const STATUS_DEFAULTS: Record<number, [ErrorType, string]> = {
  400: ["invalid_request_error", "bad_request"],
  401: ["authentication_error", "unauthorized"],
  404: ["not_found_error", "not_found"],
  405: ["invalid_request_error", "method_not_allowed"],
  406: ["invalid_request_error", "not_acceptable"],
  413: ["invalid_request_error", "payload_too_large"],
  415: ["invalid_request_error", "unsupported_media_type"],
  422: ["invalid_request_error", "invalid_parameter"],
  429: ["rate_limit_error", "queue_full"],
  503: ["unavailable_error", "unavailable"],
  504: ["timeout_error", "timeout"],
};

/**
 * Maps anything thrown while handling a request to an {@linkcode ApiError}: `ApiError` as is, Hono's
 * `HTTPException` by status, queue and runner errors by kind, everything else as a 500 whose message hides
 * internals.
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof HTTPException) {
    const [type, code] = STATUS_DEFAULTS[e.status] ?? ["server_error", "internal_error"];
    const message = e.status === 413 ? "The request body is too large" : e.message || `HTTP ${e.status}`;
    return new ApiError(e.status, type, code, message);
  }
  if (e instanceof QueueFullError) {
    return new ApiError(429, "rate_limit_error", "queue_full", e.message, {
      headers: { "Retry-After": String(e.retryAfterSeconds) },
    });
  }
  if (e instanceof QueueClosedError) {
    return new ApiError(503, "unavailable_error", "shutting_down", e.message, { headers: { Connection: "close" } });
  }
  if (e instanceof AbortReason) {
    if (e.kind === "timeout") return new ApiError(504, "timeout_error", "timeout", e.message);
    if (e.kind === "shutdown") return new ApiError(503, "unavailable_error", "shutting_down", e.message);
    return new ApiError(CLIENT_CLOSED_REQUEST, "invalid_request_error", "client_disconnected", e.message);
  }
  if (e instanceof RunnerError) {
    switch (e.code) {
      case "invalid_image":
        return unprocessable(e.param ?? "image", e.message, "invalid_image");
      case "invalid_parameter":
        return unprocessable(e.param, e.message);
      case "not_ready":
        return new ApiError(503, "unavailable_error", "model_loading", e.message, { headers: { "Retry-After": "5" } });
      case "cancelled":
        return new ApiError(503, "unavailable_error", "cancelled", e.message);
      default:
        return new ApiError(500, "server_error", "internal_error", "The pipeline failed; see the server log");
    }
  }
  return new ApiError(500, "server_error", "internal_error", "Internal server error; see the server log");
}

/**
 * Between the SDK's camelCase types and the wire: parameter names, client-side validation against the shared
 * schemas, decoding of responses (JSON bodies, event-stream events, error envelopes).
 *
 * @module
 */
import type { z } from "zod";
import {
  ERROR_TYPES,
  errorResponseSchema,
  healthResponseSchema,
  imageResponseSchema,
  modelListSchema,
  progressEventSchema,
} from "./schemas.ts";
import type { ErrorResponse, ImageResponse } from "./schemas.ts";
import { decodeBase64 } from "./_base64.ts";
import { ApiError, type ApiErrorType, InvalidParameterError, InvalidResponseError } from "./errors.ts";
import type { GenerationProgress, HealthStatus, ImageResult, ModelDescription } from "./types.ts";

/** `numInferenceSteps` → `num_inference_steps`. */
export function toSnakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `num_inference_steps` → `numInferenceSteps`. */
export function toCamelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The parameters with snake_case names, `undefined` values dropped (the server applies its defaults). */
export function toWire(params: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    const key = toSnakeCase(k);
    if (Object.hasOwn(out, key)) {
      throw new InvalidParameterError(toCamelCase(key), `${toCamelCase(key)} is given twice (as ${k} and ${key})`);
    }
    out[key] = v;
  }
  return out;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? toCamelCase(String(p)) : `.${toCamelCase(String(p))}`;
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
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Checks snake_case parameters against a shared schema, as the server will.
 * @throws {InvalidParameterError} naming the first bad field (camelCase), the value and what was expected.
 */
export function validateWire(schema: z.ZodType, wire: Record<string, unknown>): void {
  const parsed = schema.safeParse(wire);
  if (parsed.success) return;
  const issue = parsed.error.issues[0];
  if (!issue) throw new InvalidParameterError(null, "The parameters are invalid");
  if (issue.code === "unrecognized_keys") {
    const name = formatPath([...issue.path, issue.keys[0] ?? ""]);
    throw new InvalidParameterError(name, `Unknown parameter '${name}'`);
  }
  const name = formatPath(issue.path);
  const message = issue.code === "invalid_union" ? "expected a string or a list of strings" : issue.message;
  // Some of the schema's own refinements already say what they got.
  const got = /\bgot\b/.test(message) ? "" : ` (got ${show(valueAt(wire, issue.path))})`;
  throw new InvalidParameterError(
    name === "" ? null : name,
    `${name === "" ? "The parameters" : name}: ${message}${got}`,
  );
}

/** Turns a JSON `ImageResponse` into the SDK's result, decoding every image. */
export function toImageResult(body: ImageResponse): ImageResult {
  return {
    images: body.images.map((img) => ({
      data: decodeBase64(img.data),
      contentType: img.content_type,
      seed: img.seed,
      width: img.width,
      height: img.height,
    })),
    timings: {
      queueMs: body.timings.queue_ms,
      inferenceMs: body.timings.inference_ms,
      encodeMs: body.timings.encode_ms,
      totalMs: body.timings.total_ms,
      batchSize: body.timings.batch_size,
    },
    model: body.model,
    requestId: body.request_id,
  };
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "it does not match the schema";
  const path = issue.path.map(String).join(".");
  return `${path === "" ? "the body" : path}: ${issue.message}`;
}

/** What a response is being read as, for error messages. */
interface ResponseContext {
  status: number;
  requestId: string | null;
}

function parseWith<S extends z.ZodType>(schema: S, json: unknown, what: string, ctx: ResponseContext): z.output<S> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new InvalidResponseError(
      `The server's ${what} is not what this SDK expects (${describeIssue(parsed.error)}); is this an LDM server ` +
        "of a compatible version?",
      ctx.status,
      ctx.requestId,
    );
  }
  return parsed.data;
}

/** Parses JSON text; {@linkcode InvalidResponseError} otherwise. */
export function parseJson(text: string, what: string, ctx: ResponseContext): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const excerpt = text.trim().slice(0, 80);
    throw new InvalidResponseError(
      `The server's ${what} is not JSON (HTTP ${ctx.status}): ${excerpt === "" ? "(empty body)" : excerpt}`,
      ctx.status,
      ctx.requestId,
    );
  }
}

/** Reads a generation result. */
export function readImageResponse(json: unknown, ctx: ResponseContext): ImageResult {
  const body = parseWith(imageResponseSchema, json, "result", ctx);
  try {
    return toImageResult(body);
  } catch (e) {
    throw new InvalidResponseError(
      "The server's result holds an image that is not valid base64",
      ctx.status,
      ctx.requestId,
      {
        cause: e,
      },
    );
  }
}

/** Reads a `progress` event. */
export function readProgress(json: unknown, ctx: ResponseContext): GenerationProgress {
  const p = parseWith(progressEventSchema, json, "progress event", ctx);
  return { step: p.step, total: p.total, elapsedMs: p.elapsed_ms };
}

/** Reads `GET /v1/models`. */
export function readModelList(json: unknown, ctx: ResponseContext): ModelDescription[] {
  return parseWith(modelListSchema, json, "model list", ctx).data.map((m) => ({
    id: m.id,
    task: m.task,
    status: m.status,
    executionProvider: m.execution_provider,
    defaultWidth: m.default_width,
    defaultHeight: m.default_height,
    sizeMultiple: m.size_multiple,
    upscaleFactor: m.upscale_factor,
    defaultScheduler: m.default_scheduler,
  }));
}

/** Reads `GET /readyz`. */
export function readHealth(json: unknown, ctx: ResponseContext): HealthStatus {
  const h = parseWith(healthResponseSchema, json, "health answer", ctx);
  const out: HealthStatus = { ready: h.status === "ready" || h.status === "ok", status: h.status };
  if (h.reason !== undefined) out.reason = h.reason;
  return out;
}

/**
 * The HTTP status a server gives each `error.type`, for error events of an event stream, which carry none.
 * Errors found before the work starts get their own HTTP status; inside a stream only the pipeline's refusals
 * (an image it cannot decode, a parameter the model cannot take) are `invalid_request_error`, and those are 422.
 */
export const STATUS_OF_ERROR_TYPE: Readonly<Record<ApiErrorType, number>> = {
  invalid_request_error: 422,
  authentication_error: 401,
  not_found_error: 404,
  rate_limit_error: 429,
  timeout_error: 504,
  unavailable_error: 503,
  server_error: 500,
};

// A new error type in the schema must get a status above; this fails type checking until it does.
ERROR_TYPES satisfies readonly (keyof typeof STATUS_OF_ERROR_TYPE)[];

/** The {@linkcode ApiError} of an `error` event. */
export function apiErrorFromEvent(json: unknown, headers: Headers, ctx: ResponseContext): ApiError {
  const body: ErrorResponse = parseWith(errorResponseSchema, json, "error event", ctx);
  const e = body.error;
  return ApiError.from(e.message, {
    // The server sends the status the same error has as a response; older servers did not, so fall back to the type.
    status: body.status ?? STATUS_OF_ERROR_TYPE[e.type],
    type: e.type,
    code: e.code,
    param: e.param,
    requestId: body.request_id || ctx.requestId,
    headers,
    retryAfterMs: null,
  });
}

/**
 * The {@linkcode ApiError} of an error response: the shared envelope when the body is one, otherwise the status
 * and a short excerpt of the body (a proxy's page, say).
 */
export function apiErrorFromResponse(
  status: number,
  headers: Headers,
  bodyText: string,
  retryAfterMs: number | null,
): ApiError {
  const headerId = headers.get("x-request-id");
  let json: unknown;
  try {
    json = JSON.parse(bodyText);
  } catch {
    json = undefined;
  }
  const parsed = errorResponseSchema.safeParse(json);
  if (parsed.success) {
    const e = parsed.data.error;
    return ApiError.from(e.message, {
      status,
      type: e.type,
      code: e.code,
      param: e.param,
      requestId: parsed.data.request_id || headerId,
      headers,
      retryAfterMs,
    });
  }
  const excerpt = bodyText.trim().replace(/\s+/g, " ");
  const shown = excerpt.length > 200 ? `${excerpt.slice(0, 197)}...` : excerpt;
  return ApiError.from(`HTTP ${status}${shown === "" ? "" : `: ${shown}`}`, {
    status,
    type: null,
    code: `http_${status}`,
    param: null,
    requestId: headerId,
    headers,
    retryAfterMs,
  });
}

/** Media type of an image by its first bytes, or `null` when it is none of PNG, JPEG, WebP. */
export function sniffImageType(bytes: Uint8Array): "image/png" | "image/jpeg" | "image/webp" | null {
  const at = (i: number) => bytes[i] ?? -1;
  if (at(0) === 0x89 && at(1) === 0x50 && at(2) === 0x4e && at(3) === 0x47) return "image/png";
  if (at(0) === 0xff && at(1) === 0xd8 && at(2) === 0xff) return "image/jpeg";
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
  return null;
}

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  apiErrorFromEvent,
  apiErrorFromResponse,
  readImageResponse,
  sniffImageType,
  toCamelCase,
  toSnakeCase,
  toWire,
} from "./_wire.ts";
import {
  BadRequestError,
  InvalidResponseError,
  RateLimitError,
  ServerError,
  UnprocessableEntityError,
} from "./errors.ts";

Deno.test("toSnakeCase() and toCamelCase() rename the parameters both ways", () => {
  const names = ["prompt", "negativePrompt", "numInferenceSteps", "guidanceScale", "numImagesPerPrompt", "tileSize"];
  for (const n of names) assert.equal(toCamelCase(toSnakeCase(n)), n);
  assert.equal(toSnakeCase("numImagesPerPrompt"), "num_images_per_prompt");
  assert.equal(toCamelCase("elapsed_ms"), "elapsedMs");
});

Deno.test("toWire() drops undefined values and refuses a parameter given under both names", () => {
  assert.deepEqual(toWire({ prompt: "x", seed: undefined, guidanceScale: 2 }), { prompt: "x", guidance_scale: 2 });
  assert.throws(() => toWire({ tileSize: 32, tile_size: 64 }), /tileSize is given twice/);
});

Deno.test("apiErrorFromResponse() reads the error envelope, or keeps the status and an excerpt of other bodies", () => {
  const headers = new Headers({ "x-request-id": "from-header" });
  const envelope = {
    error: { type: "invalid_request_error", code: "invalid_parameter", message: "seed: bad", param: "seed" },
    request_id: "from-body",
  };
  const e = apiErrorFromResponse(400, headers, JSON.stringify(envelope), null);
  assert.ok(e instanceof BadRequestError);
  assert.deepEqual([e.type, e.code, e.param, e.requestId, e.message], [
    "invalid_request_error",
    "invalid_parameter",
    "seed",
    "from-body",
    "seed: bad",
  ]);
  const r = apiErrorFromResponse(429, headers, "slow down", 2000);
  assert.ok(r instanceof RateLimitError);
  assert.deepEqual([r.type, r.code, r.requestId, r.retryAfterMs, r.message], [
    null,
    "http_429",
    "from-header",
    2000,
    "HTTP 429: slow down",
  ]);
  const long = apiErrorFromResponse(502, new Headers(), "x".repeat(1000), null);
  assert.equal(long.message.length, "HTTP 502: ".length + 200);
});

Deno.test("apiErrorFromEvent() gives a stream's error the status of its type", () => {
  const ctx = { status: 200, requestId: "rid" };
  const event = (type: string, code: string) => ({ error: { type, code, message: "m", param: null }, request_id: "" });
  const invalid = apiErrorFromEvent(event("invalid_request_error", "invalid_image"), new Headers(), ctx);
  assert.ok(invalid instanceof UnprocessableEntityError);
  assert.equal(invalid.requestId, "rid");
  const server = apiErrorFromEvent(event("server_error", "internal_error"), new Headers(), ctx);
  assert.ok(server instanceof ServerError);
  assert.equal(apiErrorFromEvent(event("timeout_error", "timeout"), new Headers(), ctx).status, 504);
  assert.equal(apiErrorFromEvent(event("unavailable_error", "cancelled"), new Headers(), ctx).status, 503);
  assert.throws(() => apiErrorFromEvent({ nope: 1 }, new Headers(), ctx), InvalidResponseError);
});

Deno.test("apiErrorFromEvent() takes the status the server puts in the event over the type's", () => {
  const ctx = { status: 200, requestId: "rid" };
  const body = {
    error: { type: "invalid_request_error", code: "c", message: "m", param: null },
    request_id: "",
    status: 400,
  };
  const e = apiErrorFromEvent(body, new Headers(), ctx);
  assert.ok(e instanceof BadRequestError);
  assert.equal(e.status, 400);
});

Deno.test("readImageResponse() decodes the images and refuses a body of another shape", () => {
  const ctx = { status: 200, requestId: "rid" };
  const body = {
    images: [{
      data: Buffer.from([1, 2, 3]).toString("base64"),
      content_type: "image/png",
      seed: 4,
      width: 8,
      height: 16,
    }],
    timings: { queue_ms: 1, inference_ms: 2, encode_ms: 3, total_ms: 6, batch_size: 1 },
    model: "m",
    request_id: "rid",
  };
  assert.deepEqual(readImageResponse(body, ctx), {
    images: [{ data: new Uint8Array([1, 2, 3]), contentType: "image/png", seed: 4, width: 8, height: 16 }],
    timings: { queueMs: 1, inferenceMs: 2, encodeMs: 3, totalMs: 6, batchSize: 1 },
    model: "m",
    requestId: "rid",
  });
  assert.throws(
    () => readImageResponse({ ...body, images: [{ ...body.images[0], seed: -1 }] }, ctx),
    /images\.0\.seed/,
  );
  assert.throws(
    () => readImageResponse({ ...body, images: [{ ...body.images[0], data: "%%%" }] }, ctx),
    InvalidResponseError,
  );
});

Deno.test("sniffImageType() recognises PNG, JPEG and WebP by their first bytes", () => {
  const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  assert.equal(sniffImageType(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a])), "image/png");
  assert.equal(sniffImageType(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])), "image/jpeg");
  assert.equal(sniffImageType(ascii("RIFF\0\0\0\0WEBP")), "image/webp");
  assert.equal(sniffImageType(ascii("RIFF\0\0\0\0WAVE")), null);
  assert.equal(sniffImageType(new Uint8Array([0x89])), null);
});

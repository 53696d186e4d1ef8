import assert from "node:assert/strict";
import {
  AbortError,
  ApiError,
  type ApiErrorInit,
  AuthenticationError,
  BadRequestError,
  ConnectionError,
  GatewayTimeoutError,
  InvalidParameterError,
  InvalidResponseError,
  LdmError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitError,
  ServerError,
  ServiceUnavailableError,
  TimeoutError,
  UnprocessableEntityError,
} from "./errors.ts";

const init = (status: number): ApiErrorInit => ({
  status,
  type: null,
  code: `http_${status}`,
  param: null,
  requestId: "rid",
  headers: new Headers(),
  retryAfterMs: null,
});

Deno.test("ApiError.from() picks the subclass of each status, keeping every field", () => {
  const cases: [number, abstract new (...a: never[]) => ApiError, string][] = [
    [400, BadRequestError, "BadRequestError"],
    [401, AuthenticationError, "AuthenticationError"],
    [404, NotFoundError, "NotFoundError"],
    [413, PayloadTooLargeError, "PayloadTooLargeError"],
    [422, UnprocessableEntityError, "UnprocessableEntityError"],
    [429, RateLimitError, "RateLimitError"],
    [500, ServerError, "ServerError"],
    [502, ServerError, "ServerError"],
    [503, ServiceUnavailableError, "ServiceUnavailableError"],
    [504, GatewayTimeoutError, "GatewayTimeoutError"],
    [409, ApiError, "ApiError"],
  ];
  for (const [status, type, name] of cases) {
    const e = ApiError.from("message", init(status));
    assert.equal(e.constructor, type, String(status));
    assert.equal(e.name, name);
    assert.ok(e instanceof ApiError && e instanceof LdmError && e instanceof Error);
    assert.equal(e.status, status);
    assert.equal(e.code, `http_${status}`);
    assert.equal(e.requestId, "rid");
    assert.equal(e.message, "message");
  }
  assert.ok(ApiError.from("m", init(503)) instanceof ServerError);
  assert.ok(ApiError.from("m", init(504)) instanceof ServerError);
});

Deno.test("the non-HTTP errors are LdmErrors with their own names and fields", () => {
  const cause = new Error("why");
  const t = new TimeoutError(250, { cause });
  assert.equal(t.name, "TimeoutError");
  assert.equal(t.timeoutMs, 250);
  assert.match(t.message, /250 ms/);
  assert.equal(t.cause, cause);
  const a = new AbortError(undefined, { cause });
  assert.equal(a.name, "AbortError");
  assert.equal(a.message, "The request was aborted");
  assert.equal(new ConnectionError("down").name, "ConnectionError");
  const p = new InvalidParameterError("seed", "seed: bad");
  assert.deepEqual([p.name, p.param, p.message], ["InvalidParameterError", "seed", "seed: bad"]);
  const r = new InvalidResponseError("odd", 200, "rid");
  assert.deepEqual([r.name, r.status, r.requestId], ["InvalidResponseError", 200, "rid"]);
  for (const e of [t, a, p, r]) assert.ok(e instanceof LdmError && !(e instanceof ApiError));
});

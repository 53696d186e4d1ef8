import assert from "node:assert/strict";
import { HTTPException } from "hono/http-exception";
import { textToImageRequestSchema } from "@ldm/sdk/schemas";
import { AbortReason, ApiError, fromZodError, toApiError } from "./errors.ts";
import { QueueClosedError, QueueFullError } from "./queue.ts";
import { RunnerError } from "./runner.ts";

Deno.test("toApiError() maps every failure to status, type and code", () => {
  const cases: [unknown, number, string, string][] = [
    [new ApiError(418, "invalid_request_error", "teapot", "x"), 418, "invalid_request_error", "teapot"],
    [new HTTPException(413), 413, "invalid_request_error", "payload_too_large"],
    [new QueueFullError(4, 7), 429, "rate_limit_error", "queue_full"],
    [new QueueClosedError(), 503, "unavailable_error", "shutting_down"],
    [new AbortReason("timeout", "late"), 504, "timeout_error", "timeout"],
    [new AbortReason("shutdown", "bye"), 503, "unavailable_error", "shutting_down"],
    [new AbortReason("client_disconnect", "gone"), 499, "invalid_request_error", "client_disconnected"],
    [new RunnerError("invalid_image", "bad png", "image"), 422, "invalid_request_error", "invalid_image"],
    [
      new RunnerError("invalid_parameter", "width must be…", "width"),
      422,
      "invalid_request_error",
      "invalid_parameter",
    ],
    [new RunnerError("not_ready", "loading"), 503, "unavailable_error", "model_loading"],
    [new RunnerError("internal", "segfault at 0x0"), 500, "server_error", "internal_error"],
    [new Error("secret path /etc/x"), 500, "server_error", "internal_error"],
  ];
  for (const [e, status, type, code] of cases) {
    const a = toApiError(e);
    assert.deepEqual([a.status, a.type, a.code], [status, type, code], String(e));
    assert.doesNotMatch(a.message, /secret|segfault/);
  }
  assert.equal(toApiError(new QueueFullError(4, 7)).headers["Retry-After"], "7");
});

Deno.test("fromZodError() names the field, the problem and the value received", () => {
  const input = { prompt: ["a", 3], num_inference_steps: 0 };
  const r = textToImageRequestSchema.safeParse(input);
  assert.ok(!r.success);
  const e = fromZodError(r.error, input);
  assert.equal(e.status, 400);
  assert.match(e.param ?? "", /^(prompt|num_inference_steps)/);
  const unknown = textToImageRequestSchema.safeParse({ prompt: "a", stepz: 3 });
  assert.ok(!unknown.success);
  const u = fromZodError(unknown.error, {});
  assert.deepEqual([u.param, u.message], ["stepz", "Unrecognized parameter 'stepz'"]);
  const body = u.body("rid");
  assert.deepEqual(body, {
    error: { type: "invalid_request_error", code: "invalid_parameter", message: u.message, param: "stepz" },
    request_id: "rid",
  });
});

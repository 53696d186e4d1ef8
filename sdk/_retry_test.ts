import assert from "node:assert/strict";
import { backoffDelay, isRetryableStatus, parseRetryAfter, realSleep } from "./_retry.ts";

Deno.test("isRetryableStatus() is true for 408, 429 and 5xx only", () => {
  const retryable = [400, 401, 404, 408, 409, 413, 415, 422, 429, 499, 500, 502, 503, 504].filter(isRetryableStatus);
  assert.deepEqual(retryable, [408, 429, 500, 502, 503, 504]);
});

Deno.test("parseRetryAfter() reads seconds, milliseconds and HTTP dates", () => {
  const now = Date.UTC(2026, 10, 26, 12, 0, 0);
  const h = (init: Record<string, string>) => new Headers(init);
  assert.equal(parseRetryAfter(h({}), now), null);
  assert.equal(parseRetryAfter(h({ "retry-after": "5" }), now), 5000);
  assert.equal(parseRetryAfter(h({ "retry-after": " 0 " }), now), 0);
  assert.equal(parseRetryAfter(h({ "retry-after": "Thu, 26 Nov 2026 12:00:30 GMT" }), now), 30_000);
  assert.equal(parseRetryAfter(h({ "retry-after": "Thu, 26 Nov 2026 11:00:00 GMT" }), now), 0);
  assert.equal(parseRetryAfter(h({ "retry-after": "-3" }), now), null);
  assert.equal(parseRetryAfter(h({ "retry-after": "1.5" }), now), null);
  assert.equal(parseRetryAfter(h({ "retry-after": "soon" }), now), null);
  assert.equal(parseRetryAfter(h({ "retry-after": "Mon, 99 Foo 2026" }), now), null);
  assert.equal(parseRetryAfter(h({ "retry-after-ms": "1500", "retry-after": "9" }), now), 1500);
  assert.equal(parseRetryAfter(h({ "retry-after-ms": "x", "retry-after": "9" }), now), 9000);
});

Deno.test("backoffDelay() doubles from the initial delay up to the cap, shortened by up to a quarter", () => {
  const opts = { initialDelayMs: 500, maxDelayMs: 8000 };
  assert.deepEqual([0, 1, 2, 3, 4, 5, 10].map((r) => backoffDelay(r, 0, opts)), [
    500,
    1000,
    2000,
    4000,
    8000,
    8000,
    8000,
  ]);
  assert.equal(backoffDelay(0, 0.999999, opts) > 375, true);
  assert.equal(backoffDelay(2, 1, opts), 1500);
  assert.equal(backoffDelay(2, 0.5, opts), 1750);
});

Deno.test("realSleep() resolves after the delay and rejects with the signal's reason when aborted", async () => {
  await realSleep(1);
  const controller = new AbortController();
  const sleeping = realSleep(60_000, controller.signal);
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(sleeping, (e) => e === reason);
  await assert.rejects(realSleep(1, controller.signal), (e) => e === reason);
});

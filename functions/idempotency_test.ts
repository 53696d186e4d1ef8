import assert from "node:assert/strict";
import { Image } from "imagescript";
import { errorResponseSchema, imageResponseSchema } from "@ldm/sdk/schemas";
import { createApp, observeRuns } from "./app.ts";
import { loadConfig, type ServerConfig } from "./config.ts";
import { IdempotencyStore, parseIdempotencyKey, requestFingerprint, type StoredResponse } from "./idempotency.ts";
import { Metrics } from "./metrics.ts";
import { type Clock, GenerationQueue } from "./queue.ts";
import { FakeRunner, type FakeRunnerOptions } from "./testing/fake_runner.ts";

const KEY_A = "idempotency-test-key-a-0123456789";
const KEY_B = "idempotency-test-key-b-0123456789";
const T2I = "/v1/text-to-image";
const SR = "/v1/super-resolution";

interface Overrides {
  fake?: FakeRunnerOptions;
  idempotency?: Partial<ServerConfig["idempotency"]>;
  requestTimeoutMs?: number;
  clock?: Clock;
  maxSteps?: number;
}

function harness({ fake = {}, idempotency = {}, requestTimeoutMs, clock, maxSteps }: Overrides = {}) {
  const base = loadConfig({ LDM_API_KEYS: `${KEY_A},${KEY_B}` });
  const config: ServerConfig = {
    ...base,
    requestTimeoutMs: requestTimeoutMs ?? base.requestTimeoutMs,
    // One slot, no batching: each run is one call of the fake, so `calls.length` counts generations.
    queue: { concurrency: 1, maxQueue: 16, maxBatchImages: 1 },
    limits: { ...base.limits, maxSteps: maxSteps ?? base.limits.maxSteps },
    idempotency: { ...base.idempotency, ...idempotency },
  };
  const runner = new FakeRunner(fake);
  const metrics = new Metrics();
  const queue = new GenerationQueue(runner, { ...config.queue, observer: observeRuns(metrics) });
  let seed = 1000;
  const app = createApp({ runner, config, metrics, queue, clock, randomSeed: () => seed++ });
  return { app, runner, metrics, queue };
}

type App = ReturnType<typeof harness>["app"];

function post(
  app: App,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return Promise.resolve(app.request(path, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY_A}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  }));
}

async function bytesOf(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}

async function expectError(res: Response, status: number, code: string, param?: string | null) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = errorResponseSchema.parse(JSON.parse(text));
  assert.equal(body.error.code, code, text);
  if (param !== undefined) assert.equal(body.error.param, param, text);
  return body;
}

function parseSse(text: string): { event: string; data: unknown }[] {
  const events: { event: string; data: unknown }[] = [];
  for (const block of text.split("\n\n")) {
    const lines = block.split("\n").filter((l) => l && !l.startsWith(":"));
    if (lines.length === 0) continue;
    const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message";
    const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    events.push({ event, data: JSON.parse(data) });
  }
  return events;
}

async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function metricValue(app: App, line: RegExp): Promise<number> {
  const text = await (await app.request("/metrics", { headers: { authorization: `Bearer ${KEY_A}` } })).text();
  const m = new RegExp(`^${line.source} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

const replayed = (res: Response) => res.headers.get("idempotent-replayed") === "true";

Deno.test("parseIdempotencyKey() takes 1-255 visible ASCII characters, bare or as a quoted string", () => {
  assert.equal(parseIdempotencyKey(null), null);
  assert.equal(parseIdempotencyKey("8e03978e-40d5-43e8-bc93-6894a57f9324"), "8e03978e-40d5-43e8-bc93-6894a57f9324");
  assert.equal(parseIdempotencyKey('"8e03978e"'), "8e03978e");
  assert.equal(parseIdempotencyKey('"a\\"b\\\\c"'), 'a"b\\c');
  assert.equal(parseIdempotencyKey("k".repeat(255)), "k".repeat(255));
  for (
    const [bad, why] of [
      ["", /must not be empty/],
      ['""', /must not be empty/],
      ["k".repeat(256), /at most 255 characters: got 256/],
      ["a b", /visible ASCII/],
      ["a, b", /visible ASCII/],
      ["caf\u00e9", /visible ASCII/],
      ['"a"b"', /not a valid quoted string/],
    ] as const
  ) {
    assert.throws(() => parseIdempotencyKey(bad), (e: Error & { status?: number; param?: string }) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, "Idempotency-Key");
      assert.match(e.message, why);
      return true;
    }, bad);
  }
});

Deno.test("requestFingerprint() sees method, path, query, media type, Accept and body; not a multipart boundary", async () => {
  const fp = async (init: RequestInit & { url?: string }) => {
    const req = new Request(init.url ?? `http://x${T2I}`, { method: "POST", ...init });
    return await requestFingerprint(req, new Uint8Array(await req.clone().arrayBuffer()));
  };
  const json = { headers: { "content-type": "application/json" }, body: '{"prompt":"a"}' };
  const base = await fp(json);
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(await fp(json), base);
  assert.equal(await fp({ ...json, headers: { "content-type": "application/json; charset=utf-8" } }), base);
  assert.notEqual(await fp({ ...json, body: '{"prompt":"b"}' }), base);
  assert.notEqual(await fp({ ...json, body: '{"prompt": "a"}' }), base, "bytes count, not meaning");
  assert.notEqual(await fp({ ...json, url: `http://x${SR}` }), base);
  assert.notEqual(await fp({ ...json, url: `http://x${T2I}?seed=1` }), base);
  assert.notEqual(await fp({ ...json, headers: { ...json.headers, accept: "text/event-stream" } }), base);
  assert.notEqual(await fp({ ...json, headers: { "content-type": "text/plain" } }), base);

  const form = (seed: string) => {
    const f = new FormData();
    f.set("image", new Blob([new Uint8Array([1, 2, 3])], { type: "image/png" }), "a.png");
    f.set("seed", seed);
    return f;
  };
  // Each serialisation of a FormData gets its own boundary: the bytes differ, the fingerprint does not.
  const r1 = new Request(`http://x${SR}`, { method: "POST", body: form("1") });
  const r2 = new Request(`http://x${SR}`, { method: "POST", body: form("1") });
  assert.notEqual(r1.headers.get("content-type"), r2.headers.get("content-type"));
  const m1 = await requestFingerprint(r1, new Uint8Array(await r1.clone().arrayBuffer()));
  const m2 = await requestFingerprint(r2, new Uint8Array(await r2.clone().arrayBuffer()));
  assert.equal(m1, m2);
  const r3 = new Request(`http://x${SR}`, { method: "POST", body: form("2") });
  assert.notEqual(await requestFingerprint(r3, new Uint8Array(await r3.clone().arrayBuffer())), m1);
});

Deno.test("IdempotencyStore keeps finished responses for ttlMs, evicts least recently used past maxBytes", async (t) => {
  let now = 0;
  const clock = { now: () => now };
  const response = (n: number): StoredResponse => ({ status: 200, headers: {}, body: new Uint8Array(n) });
  // scope "s" + "\n" + a one-letter key + a 2-character fingerprint + 256 of bookkeeping + the body.
  const size = (n: number) => 3 + 2 + 256 + n;

  await t.step("running, done, mismatch; failures are forgotten", () => {
    const store = new IdempotencyStore<string>({ ttlMs: 100, maxBytes: 10_000, clock });
    assert.deepEqual(store.lookup("s", "a", "fp"), { kind: "absent" });
    store.begin("s", "a", "fp", "run");
    assert.deepEqual(store.lookup("s", "a", "fp"), { kind: "running", run: "run" });
    assert.deepEqual(store.lookup("s", "a", "xx"), { kind: "mismatch", state: "running" });
    assert.deepEqual(store.lookup("other", "a", "fp"), { kind: "absent" });
    assert.throws(() => store.begin("s", "a", "fp", "again"), /already held/);
    assert.equal(store.finish("s", "a", "not-this-run", response(1)), false);
    assert.equal(store.finish("s", "a", "run", response(10)), true);
    assert.equal(store.storedBytes, size(10));
    assert.equal(store.lookup("s", "a", "fp").kind, "done");
    assert.deepEqual(store.lookup("s", "a", "xx"), { kind: "mismatch", state: "done" });
    store.begin("s", "b", "fp", "run-b");
    assert.equal(store.finish("s", "b", "run-b", null), false);
    assert.deepEqual(store.lookup("s", "b", "fp"), { kind: "absent" });
  });
  await t.step("expiry counts from completion", () => {
    now = 1000;
    const store = new IdempotencyStore<string>({ ttlMs: 100, maxBytes: 10_000, clock });
    store.begin("s", "a", "fp", "run");
    now = 1050; // a run's duration does not count against its TTL
    store.finish("s", "a", "run", response(1));
    now = 1149;
    assert.equal(store.lookup("s", "a", "fp").kind, "done");
    now = 1150;
    assert.equal(store.lookup("s", "a", "fp").kind, "absent");
    assert.equal(store.storedBytes, 0);
    assert.equal(store.size, 0);
  });
  await t.step("LRU eviction under the byte cap; a use refreshes; too large is not kept", () => {
    now = 0;
    const store = new IdempotencyStore<string>({ ttlMs: 1000, maxBytes: 2 * size(100), clock });
    for (const k of ["a", "b"]) {
      store.begin("s", k, "fp", k);
      assert.equal(store.finish("s", k, k, response(100)), true);
    }
    assert.equal(store.lookup("s", "a", "fp").kind, "done"); // a is now the most recently used
    store.begin("s", "c", "fp", "c");
    store.finish("s", "c", "c", response(100));
    assert.equal(store.lookup("s", "b", "fp").kind, "absent");
    assert.equal(store.lookup("s", "a", "fp").kind, "done");
    assert.equal(store.lookup("s", "c", "fp").kind, "done");
    assert.equal(store.storedBytes, 2 * size(100));
    store.begin("s", "d", "fp", "d");
    assert.equal(store.finish("s", "d", "d", response(2 * size(100))), false);
    assert.equal(store.storedCount, 2);
    // A running key is never evicted: it holds no bytes and its waiters need it.
    store.begin("s", "e", "fp", "e");
    store.begin("s", "f", "fp", "f");
    store.finish("s", "f", "f", response(100));
    assert.equal(store.lookup("s", "e", "fp").kind, "running");
  });
  await t.step("ttlMs 0 or maxBytes 0 keeps nothing, but in-flight duplicates still share", () => {
    for (const opts of [{ ttlMs: 0, maxBytes: 1000 }, { ttlMs: 1000, maxBytes: 0 }]) {
      const store = new IdempotencyStore<string>({ ...opts, clock });
      store.begin("s", "a", "fp", "run");
      assert.equal(store.lookup("s", "a", "fp").kind, "running");
      assert.equal(store.finish("s", "a", "run", response(1)), false);
      assert.equal(store.lookup("s", "a", "fp").kind, "absent");
    }
    assert.throws(() => new IdempotencyStore({ ttlMs: -1, maxBytes: 0 }), /ttlMs must be an integer >= 0: got -1/);
  });
});

Deno.test("concurrent duplicates with one Idempotency-Key run one generation and get identical responses", async (t) => {
  const body = { prompt: "a squirrel", num_inference_steps: 20, seed: 3 };
  for (
    const [form, accept] of [["JSON", "application/json"], ["image bytes", "image/png"]] as const
  ) {
    await t.step(form, async () => {
      const h = harness({ fake: { stepMs: 3 } });
      const headers = { "idempotency-key": `dup-${accept}`, accept };
      const [r1, r2] = await Promise.all([post(h.app, T2I, body, headers), post(h.app, T2I, body, headers)]);
      assert.equal(r1.status, 200);
      assert.equal(r2.status, 200);
      assert.equal(h.runner.calls.length, 1);
      assert.equal(h.runner.calls[0]!.outcome, "ok");
      // Exactly one of them ran; the other joined it.
      assert.deepEqual([replayed(r1), replayed(r2)].sort(), [false, true]);
      assert.notEqual(r1.headers.get("x-request-id"), r2.headers.get("x-request-id"));
      for (const name of ["content-type", "x-seed", "x-image-width", "server-timing"]) {
        assert.equal(r1.headers.get(name), r2.headers.get(name), name);
      }
      assert.deepEqual(await bytesOf(r1), await bytesOf(r2));
      assert.equal(
        await metricValue(h.app, /ldm_idempotent_replays_total\{source="in_flight",task="text-to-image"\}/),
        1,
      );
    });
  }
  await t.step("event stream: the one who joins gets the progress from then on and the same result event", async () => {
    const h = harness({ fake: { stepMs: 3 } });
    const headers = { "idempotency-key": "dup-sse", accept: "text/event-stream" };
    const first = await post(h.app, T2I, body, headers);
    await until(() => (h.runner.calls[0]?.stepsRun ?? 0) >= 2);
    const second = await post(h.app, T2I, body, headers);
    assert.equal(replayed(first), false);
    assert.equal(replayed(second), true);
    assert.match(second.headers.get("content-type") ?? "", /^text\/event-stream/);
    const [e1, e2] = [parseSse(await first.text()), parseSse(await second.text())];
    assert.equal(h.runner.calls.length, 1);
    const results = [e1, e2].map((events) => events.filter((e) => e.event === "result"));
    assert.equal(results[0]!.length, 1);
    assert.deepEqual(results[1], results[0]);
    imageResponseSchema.parse(results[0]![0]!.data);
    const steps = (events: typeof e1) =>
      events.filter((e) => e.event === "progress").map((e) => (e.data as { step: number }).step);
    assert.deepEqual(steps(e1), Array.from({ length: 20 }, (_, i) => i + 1));
    const joined = steps(e2);
    assert.ok(joined.length < 20 && joined.at(-1) === 20, `joined at step ${joined[0]}`);
  });
  await t.step("a failing run fails both, once", async () => {
    const h = harness({ fake: { failRun: "boom" } });
    const headers = { "idempotency-key": "dup-fail" };
    const [r1, r2] = await Promise.all([post(h.app, T2I, body, headers), post(h.app, T2I, body, headers)]);
    await expectError(r1, 500, "internal_error");
    await expectError(r2, 500, "internal_error");
    assert.equal(h.runner.calls.length, 1);
  });
});

Deno.test("a finished response is replayed with Idempotent-Replayed: true; other keys, scopes and endpoints run", async (t) => {
  const h = harness();
  const body = { prompt: "a squirrel", num_inference_steps: 2 };
  let firstBytes: Uint8Array = new Uint8Array();
  await t.step("the same request again is answered from the store", async () => {
    const r1 = await post(h.app, T2I, body, { "idempotency-key": "k1" });
    assert.equal(r1.status, 200);
    assert.equal(replayed(r1), false);
    firstBytes = await bytesOf(r1);
    const r2 = await post(h.app, T2I, body, { "idempotency-key": '"k1"' }); // the draft's quoted form: same key
    assert.equal(r2.status, 200);
    assert.equal(replayed(r2), true);
    assert.equal(r2.headers.get("content-type"), "application/json");
    assert.notEqual(r2.headers.get("x-request-id"), r1.headers.get("x-request-id"));
    assert.deepEqual(await bytesOf(r2), firstBytes);
    // The body is the first request's, its id included; the seed drawn for it is kept.
    const parsed = imageResponseSchema.parse(JSON.parse(new TextDecoder().decode(firstBytes)));
    assert.equal(parsed.request_id, r1.headers.get("x-request-id"));
    assert.equal(h.runner.calls.length, 1);
    assert.equal(await metricValue(h.app, /ldm_idempotent_replays_total\{source="stored",task="text-to-image"\}/), 1);
    assert.equal(await metricValue(h.app, /ldm_idempotency_stored_responses/), 1);
    assert.ok(await metricValue(h.app, /ldm_idempotency_stored_bytes/) > firstBytes.length);
  });
  await t.step("an event-stream request is replayed as its result event", async () => {
    const headers = { "idempotency-key": "k-sse", accept: "text/event-stream" };
    const r1 = parseSse(await (await post(h.app, T2I, body, headers)).text());
    const r2 = await post(h.app, T2I, body, headers);
    assert.equal(replayed(r2), true);
    const events = parseSse(await r2.text());
    assert.deepEqual(events, r1.filter((e) => e.event === "result"));
  });
  await t.step("another API key with the same Idempotency-Key is another request", async () => {
    const calls = h.runner.calls.length;
    const r = await post(h.app, T2I, body, { "idempotency-key": "k1", authorization: `Bearer ${KEY_B}` });
    assert.equal(r.status, 200);
    assert.equal(replayed(r), false);
    assert.equal(h.runner.calls.length, calls + 1);
  });
  await t.step("without the header nothing is replayed", async () => {
    const calls = h.runner.calls.length;
    const r = await post(h.app, T2I, body);
    assert.equal(replayed(r), false);
    await r.body?.cancel();
    assert.equal(h.runner.calls.length, calls + 1);
  });
  await t.step("super-resolution multipart: each retry's new boundary is still the same request", async () => {
    const png = new Uint8Array(await new Image(32, 32).fill(0x336699ff).encode());
    const send = () => {
      const form = new FormData();
      form.set("image", new Blob([png], { type: "image/png" }), "in.png");
      form.set("num_inference_steps", "2");
      return h.app.request(SR, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY_A}`, "idempotency-key": "k-sr" },
        body: form,
      });
    };
    const calls = h.runner.calls.length;
    const r1 = await send();
    const r2 = await send();
    assert.equal(r1.status, 200);
    assert.equal(replayed(r2), true);
    assert.deepEqual(await bytesOf(r2), await bytesOf(r1));
    assert.equal(h.runner.calls.length, calls + 1);
  });
});

Deno.test("the same key for a different request is 422 idempotency_key_mismatch naming the header", async (t) => {
  const h = harness({ fake: { stepMs: 3 } });
  const body = { prompt: "a squirrel", num_inference_steps: 2 };
  const headers = { "idempotency-key": "k-mismatch" };
  await t.step("while the first runs", async () => {
    const first = post(h.app, T2I, { ...body, num_inference_steps: 30 }, headers);
    await until(() => h.runner.calls.length === 1);
    const e = await expectError(await post(h.app, T2I, body, headers), 422, "idempotency_key_mismatch");
    assert.equal(e.error.param, "Idempotency-Key");
    assert.equal(e.error.type, "invalid_request_error");
    assert.match(e.error.message, /already used for a different request \(still running\)/);
    assert.equal((await first).status, 200);
  });
  await t.step("after it finished: another body, another Accept, another endpoint", async () => {
    const e = await expectError(await post(h.app, T2I, body, headers), 422, "idempotency_key_mismatch");
    assert.match(e.error.message, /\(completed\)/);
    await expectError(
      await post(h.app, T2I, { ...body, num_inference_steps: 30 }, { ...headers, accept: "image/png" }),
      422,
      "idempotency_key_mismatch",
      "Idempotency-Key",
    );
    const png = new Uint8Array(await new Image(32, 32).fill(0x336699ff).encode());
    const res = await h.app.request(SR, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY_A}`, "content-type": "image/png", ...headers },
      body: png,
    });
    await expectError(res, 422, "idempotency_key_mismatch", "Idempotency-Key");
    assert.equal(h.runner.calls.length, 1);
  });
  await t.step("an invalid key is 400 naming the header, before anything runs", async () => {
    for (const key of ["a b", "k".repeat(256)]) {
      await expectError(
        await post(h.app, T2I, body, { "idempotency-key": key }),
        400,
        "invalid_idempotency_key",
        "Idempotency-Key",
      );
    }
    assert.equal(h.runner.calls.length, 1);
  });
});

Deno.test("stored responses expire after LDM_IDEMPOTENCY_TTL_MS (injected clock)", async () => {
  let now = 0;
  const h = harness({ clock: { now: () => now }, idempotency: { ttlMs: 60_000 } });
  const body = { prompt: "a squirrel", num_inference_steps: 1, seed: 1 };
  const headers = { "idempotency-key": "k-ttl" };
  assert.equal(replayed(await post(h.app, T2I, body, headers)), false);
  now = 59_999;
  assert.equal(replayed(await post(h.app, T2I, body, headers)), true);
  assert.equal(h.runner.calls.length, 1);
  now = 60_000;
  const again = await post(h.app, T2I, body, headers);
  assert.equal(again.status, 200);
  assert.equal(replayed(again), false);
  assert.equal(h.runner.calls.length, 2);
  // The run at 60 000 is kept until 120 000; then the key is free even for a different request.
  now = 120_000;
  const other = await post(h.app, T2I, { ...body, prompt: "a cat" }, headers);
  assert.equal(other.status, 200);
  assert.equal(replayed(other), false);
});

Deno.test("LDM_IDEMPOTENCY_MAX_BYTES evicts the least recently used response", async () => {
  const body = (prompt: string) => ({ prompt, num_inference_steps: 1, seed: 1 });
  // Measure what one response holds, then allow one and a half of them.
  const probe = harness();
  await (await post(probe.app, T2I, body("a"), { "idempotency-key": "probe" })).body?.cancel();
  const one = await metricValue(probe.app, /ldm_idempotency_stored_bytes/);
  assert.ok(one > 0);

  const h = harness({ idempotency: { maxBytes: Math.floor(one * 1.5) } });
  const send = (prompt: string) => post(h.app, T2I, body(prompt), { "idempotency-key": `k-${prompt}` });
  await (await send("a")).body?.cancel();
  await (await send("b")).body?.cancel(); // evicts a
  assert.equal(await metricValue(h.app, /ldm_idempotency_stored_responses/), 1);
  const b = await send("b");
  assert.equal(replayed(b), true);
  await b.body?.cancel();
  const a = await send("a");
  assert.equal(replayed(a), false);
  await a.body?.cancel();
  assert.equal(h.runner.calls.length, 3);
});

Deno.test("failures are not stored: a retry with the same key runs again", async (t) => {
  const body = { prompt: "a squirrel", num_inference_steps: 2 };
  await t.step("500 from the pipeline", async () => {
    const h = harness({ fake: { failRun: "boom" } });
    const headers = { "idempotency-key": "k-500" };
    await expectError(await post(h.app, T2I, body, headers), 500, "internal_error");
    const again = await post(h.app, T2I, body, headers);
    assert.equal(replayed(again), false);
    await expectError(again, 500, "internal_error");
    assert.equal(h.runner.calls.length, 2);
  });
  await t.step("504 after the request timeout", async () => {
    const h = harness({ fake: { stepMs: 10 }, requestTimeoutMs: 40 });
    const headers = { "idempotency-key": "k-504" };
    await expectError(await post(h.app, T2I, { ...body, num_inference_steps: 100 }, headers), 504, "timeout");
    await h.queue.whenIdle();
    await expectError(await post(h.app, T2I, { ...body, num_inference_steps: 100 }, headers), 504, "timeout");
    assert.equal(h.runner.calls.length, 2);
    await h.queue.whenIdle();
  });
  await t.step("a validation error leaves the key free for the corrected request", async () => {
    const h = harness({ maxSteps: 10 });
    const headers = { "idempotency-key": "k-422" };
    await expectError(await post(h.app, T2I, { ...body, num_inference_steps: 11 }, headers), 422, "limit_exceeded");
    const fixed = await post(h.app, T2I, body, headers);
    assert.equal(fixed.status, 200);
    assert.equal(replayed(fixed), false);
    await fixed.body?.cancel();
    assert.equal(h.runner.calls.length, 1);
  });
});

Deno.test("a keyed run outlives a dropped client for LDM_IDEMPOTENCY_GRACE_MS, and a retry picks it up", async (t) => {
  const body = { prompt: "a squirrel", num_inference_steps: 30, seed: 4 };
  await t.step("the retry joins the run still going", async () => {
    const h = harness({ fake: { stepMs: 3 }, idempotency: { graceMs: 5_000 } });
    const headers = { "idempotency-key": "k-drop" };
    const ac = new AbortController();
    const dropped = post(h.app, T2I, body, headers, ac.signal);
    await until(() => (h.runner.calls[0]?.stepsRun ?? 0) >= 2);
    ac.abort();
    assert.equal((await dropped).status, 499);
    const retry = await post(h.app, T2I, body, headers);
    assert.equal(retry.status, 200);
    assert.equal(replayed(retry), true);
    imageResponseSchema.parse(await retry.json());
    assert.deepEqual(h.runner.calls.map((c) => [c.outcome, c.stepsRun]), [["ok", 30]]);
  });
  await t.step("nobody comes back: cancelled once the grace is over, and the key is free again", async () => {
    const h = harness({ fake: { stepMs: 3 }, idempotency: { graceMs: 20 }, maxSteps: 1000 });
    const headers = { "idempotency-key": "k-gone" };
    const ac = new AbortController();
    const dropped = post(h.app, T2I, { ...body, num_inference_steps: 1000 }, headers, ac.signal);
    await until(() => h.runner.calls.length === 1);
    ac.abort();
    await dropped;
    await h.queue.whenIdle();
    assert.equal(h.runner.calls[0]!.outcome, "cancelled");
    assert.match(
      await (await h.app.request("/metrics", { headers: { authorization: `Bearer ${KEY_A}` } })).text(),
      /ldm_cancelled_requests_total\{reason="client_disconnect"\} 1/,
    );
    const again = await post(h.app, T2I, { ...body, num_inference_steps: 1 }, headers);
    assert.equal(again.status, 200);
    assert.equal(replayed(again), false);
  });
});

Deno.test("an error event carries its HTTP status", async () => {
  const h = harness({ fake: { failRun: "boom" } });
  const res = await post(h.app, T2I, { prompt: "a", num_inference_steps: 1 }, { accept: "text/event-stream" });
  const events = parseSse(await res.text());
  const error = events.find((e) => e.event === "error")!.data as { status: number };
  assert.equal(error.status, 500);
  errorResponseSchema.parse(error);
});

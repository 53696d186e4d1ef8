/**
 * The SDK against the real Hono app of `functions/`, in process: the client's injected `fetch` hands each request
 * to `app.request`, the app runs the fake pipelines. Every endpoint, progress, abort, timeouts, retries (time
 * faked through the client's clock) and each error class.
 */
import assert from "node:assert/strict";
import { decode } from "imagescript";
import { imageResponseSchema } from "@ldm/sdk/schemas";
import {
  AbortError,
  ApiError,
  AuthenticationError,
  BadRequestError,
  type ClientClock,
  type ClientOptions,
  ConnectionError,
  createClient,
  type FetchLike,
  GatewayTimeoutError,
  type GenerationProgress,
  InvalidParameterError,
  InvalidResponseError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitError,
  ServerError,
  ServiceUnavailableError,
  TimeoutError,
  UnprocessableEntityError,
} from "@ldm/sdk";
import { API_KEY, type InProcessServer, inProcessServer, pngOf, until } from "./sdk_node/harness.ts";

const PNG = [0x89, 0x50, 0x4e, 0x47];
const JPEG = [0xff, 0xd8, 0xff];
const RIFF = [0x52, 0x49, 0x46, 0x46];

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return magic.every((b, i) => bytes[i] === b);
}

/** A clock whose `sleep` records the wait and runs `onSleep` instead of waiting. */
function fakeClock(onSleep: (ms: number) => void | Promise<void> = () => {}, now = 1_700_000_000_000) {
  const sleeps: number[] = [];
  const clock: ClientClock = {
    sleep: async (ms, signal) => {
      sleeps.push(ms);
      await onSleep(ms);
      if (signal?.aborted) throw signal.reason;
    },
    now: () => now,
    random: () => 0.5,
  };
  return { sleeps, clock };
}

function client(server: InProcessServer, options: Partial<ClientOptions> = {}) {
  return createClient({ baseUrl: "http://ldm.test", apiKey: API_KEY, fetch: server.fetch, ...options });
}

/** A fetch that records each response's status. */
function recording(inner: FetchLike) {
  const statuses: number[] = [];
  const fetch: FetchLike = async (input, init) => {
    const res = await inner(input, init);
    statuses.push(res.status);
    return res;
  };
  return { statuses, fetch };
}

async function rejects<E extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
    return e;
  }
  assert.fail(`expected ${type.name}, but the call succeeded`);
}

Deno.test("health() reports a ready server, and one that is loading or failed without throwing", async () => {
  const server = inProcessServer();
  const c = client(server);
  assert.deepEqual(await c.health(), { ready: true, status: "ready" });
  server.runner.state = { state: "loading" };
  assert.deepEqual(await c.health(), { ready: false, status: "loading", reason: "Models are loading" });
  server.runner.state = { state: "failed", reason: "no model.onnx" };
  assert.deepEqual(await c.health(), { ready: false, status: "failed", reason: "no model.onnx" });
  // /readyz is public: no key is needed.
  const anonymous = createClient({ baseUrl: "http://ldm.test", fetch: server.fetch });
  assert.equal((await anonymous.health()).status, "failed");
});

Deno.test("models() returns the hosted models in camelCase", async () => {
  const server = inProcessServer();
  const models = await client(server).models();
  assert.deepEqual(models, [
    {
      id: "fake-text2im",
      task: "text-to-image",
      status: "ready",
      executionProvider: "cpu",
      defaultWidth: 32,
      defaultHeight: 32,
      sizeMultiple: 8,
      upscaleFactor: null,
      defaultScheduler: "ddim",
    },
    {
      id: "fake-super-resolution",
      task: "super-resolution",
      status: "ready",
      executionProvider: "cpu",
      defaultWidth: null,
      defaultHeight: null,
      sizeMultiple: 32,
      upscaleFactor: 4,
      defaultScheduler: "ddim",
    },
  ]);
});

Deno.test("AuthenticationError is thrown for a missing or wrong API key, and not retried", async () => {
  const server = inProcessServer();
  const rec = recording(server.fetch);
  const anonymous = createClient({ baseUrl: "http://ldm.test", fetch: rec.fetch });
  const missing = await rejects(anonymous.models(), AuthenticationError);
  assert.equal(missing.status, 401);
  assert.equal(missing.code, "missing_api_key");
  assert.equal(missing.type, "authentication_error");
  assert.ok(missing.requestId && missing.requestId.length > 0);
  const wrong = createClient({ baseUrl: "http://ldm.test", apiKey: "not-the-key-0123456789", fetch: rec.fetch });
  const invalid = await rejects(wrong.textToImage({ prompt: "x" }), AuthenticationError);
  assert.equal(invalid.code, "invalid_api_key");
  assert.deepEqual(rec.statuses, [401, 401]);
});

Deno.test("textToImage() returns the server's images byte for byte, with seeds, sizes, timings and request id", async (t) => {
  const server = inProcessServer();
  const c = client(server);

  await t.step("two images of one prompt", async () => {
    // Keep a copy of what went over the wire, to compare the SDK's bytes with the base64 the server sent.
    const bodies: string[] = [];
    const tee: FetchLike = async (input, init) => {
      const res = await server.fetch(input, init);
      bodies.push(await res.clone().text());
      return res;
    };
    const result = await client(server, { fetch: tee }).textToImage({
      prompt: "a squirrel",
      numImagesPerPrompt: 2,
      seed: 7,
      numInferenceSteps: 3,
    });
    assert.equal(result.model, "fake-text2im");
    assert.equal(result.timings.batchSize, 1);
    for (const k of ["queueMs", "inferenceMs", "encodeMs", "totalMs"] as const) assert.ok(result.timings[k] >= 0);
    assert.deepEqual(result.images.map((i) => [i.seed, i.width, i.height, i.contentType]), [
      [7, 32, 32, "image/png"],
      [8, 32, 32, "image/png"],
    ]);
    assert.equal(server.runner.calls.at(-1)?.stepsRun, 3);
    const wire = imageResponseSchema.parse(JSON.parse(bodies[0]!));
    assert.equal(result.requestId, wire.request_id);
    assert.ok(result.requestId.length > 0);
    for (const [i, img] of result.images.entries()) {
      assert.deepEqual(img.data, Uint8Array.fromBase64(wire.images[i]!.data));
      assert.ok(startsWith(img.data, PNG));
      const decoded = await decode(img.data);
      assert.equal(decoded.width, 32);
    }
    // Seeds 7 and 8 are drawn in different colours by the fake: the two images are really two.
    assert.notDeepEqual(result.images[0]!.data, result.images[1]!.data);
  });

  await t.step("every parameter reaches the server", async () => {
    const result = await c.textToImage({
      prompt: ["a squirrel", "a burger"],
      negativePrompt: ["blurry", "dark"],
      numInferenceSteps: 2,
      guidanceScale: 7.5,
      eta: 0.5,
      seed: 100,
      width: 64,
      height: 48,
      numImagesPerPrompt: 1,
      scheduler: "euler",
      outputFormat: "jpeg",
    });
    assert.deepEqual(result.images.map((i) => [i.seed, i.width, i.height, i.contentType]), [
      [100, 64, 48, "image/jpeg"],
      [101, 64, 48, "image/jpeg"],
    ]);
    assert.ok(result.images.every((i) => startsWith(i.data, JPEG)));
    const webp = await c.textToImage({ prompt: "x", numInferenceSteps: 1, outputFormat: "webp" });
    assert.equal(webp.images[0]!.contentType, "image/webp");
    assert.ok(startsWith(webp.images[0]!.data, RIFF));
  });

  await t.step("the server draws a seed when none is given and returns it", async () => {
    const result = await c.textToImage({ prompt: "x", numInferenceSteps: 1 });
    assert.ok(Number.isInteger(result.images[0]!.seed));
  });
});

Deno.test("superResolve() accepts a Uint8Array, ArrayBuffer, Blob or ReadableStream and returns the 4x image", async () => {
  const server = inProcessServer();
  const c = client(server);
  const png = await pngOf(32, 64);
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        // Split across chunks, as a file or network stream would deliver it.
        for (let i = 0; i < png.length; i += 100) controller.enqueue(png.slice(i, i + 100));
        controller.close();
      },
    });
  const inputs = [png, png.buffer, new Blob([png]), new Blob([png], { type: "image/png" }), stream()];
  for (const image of inputs) {
    const result = await c.superResolve({ image, seed: 5, numInferenceSteps: 2, tileSize: 32, scheduler: "ddim" });
    assert.equal(result.model, "fake-super-resolution");
    assert.deepEqual(result.images.map((i) => [i.seed, i.width, i.height, i.contentType]), [[
      5,
      128,
      256,
      "image/png",
    ]]);
    assert.ok(startsWith(result.images[0]!.data, PNG));
  }
  const webp = await c.superResolve({ image: png, numInferenceSteps: 1, outputFormat: "webp", eta: 1, tileSize: 0 });
  assert.equal(webp.images[0]!.contentType, "image/webp");
  assert.equal(server.runner.calls.filter((call) => call.task === "super-resolution").length, inputs.length + 1);
  // A stream that fails is the caller's problem, named as the image.
  const broken = new ReadableStream<Uint8Array>({
    pull: (controller) => controller.error(new Error("disk gone")),
  });
  const e = await rejects(c.superResolve({ image: broken }), InvalidParameterError);
  assert.equal(e.param, "image");
  assert.match(e.message, /disk gone/);
  assert.equal((e.cause as Error).message, "disk gone");
});

Deno.test("onProgress receives every denoising step from the event stream, then the result", async (t) => {
  const server = inProcessServer();
  const c = client(server);
  await t.step("textToImage", async () => {
    const seen: GenerationProgress[] = [];
    const result = await c.textToImage({ prompt: "x", numInferenceSteps: 4, seed: 3 }, {
      onProgress: (p) => seen.push(p),
    });
    assert.deepEqual(seen.map((p) => [p.step, p.total]), [[1, 4], [2, 4], [3, 4], [4, 4]]);
    assert.ok(seen.every((p, i) => p.elapsedMs >= 0 && (i === 0 || p.elapsedMs >= seen[i - 1]!.elapsedMs)));
    assert.equal(result.images[0]!.seed, 3);
    assert.ok(startsWith(result.images[0]!.data, PNG));
    assert.equal(server.requests.at(-1)?.headers.get("accept"), "text/event-stream");
  });
  await t.step("superResolve", async () => {
    const seen: number[] = [];
    const result = await c.superResolve({ image: await pngOf(32, 32), numInferenceSteps: 3 }, {
      onProgress: (p) => seen.push(p.step),
    });
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(result.images[0]!.width, 128);
  });
});

Deno.test("signal aborts a generation mid-way with AbortError and frees the server's slot", async (t) => {
  for (const mode of ["json", "event-stream"] as const) {
    await t.step(mode, async () => {
      const server = inProcessServer({ fake: { stepMs: 5 } });
      const c = client(server);
      const controller = new AbortController();
      const reason = new Error("user pressed stop");
      const call = c.textToImage(
        { prompt: "x", numInferenceSteps: 1000 },
        mode === "json" ? { signal: controller.signal } : { signal: controller.signal, onProgress: () => {} },
      );
      await until(() => (server.runner.calls[0]?.stepsRun ?? 0) >= 2);
      controller.abort(reason);
      const e = await rejects(call, AbortError);
      assert.equal(e.cause, reason);
      await server.queue.whenIdle();
      const run = server.runner.calls[0]!;
      assert.equal(run.outcome, "cancelled");
      assert.ok(run.stepsRun < 1000);
      assert.equal(server.queue.running, 0);
      // One slot, no waiting room: this would be a 429 if the aborted generation still held the slot.
      const next = await c.textToImage({ prompt: "y", numInferenceSteps: 1 }, { maxRetries: 0 });
      assert.equal(next.images.length, 1);
    });
  }
  await t.step("an already aborted signal sends nothing", async () => {
    const server = inProcessServer();
    const controller = new AbortController();
    controller.abort();
    await rejects(client(server).textToImage({ prompt: "x" }, { signal: controller.signal }), AbortError);
    await rejects(
      client(server).superResolve({ image: await pngOf(32, 32) }, { signal: controller.signal }),
      AbortError,
    );
    assert.equal(server.requests.length, 0);
  });
});

Deno.test("timeoutMs cancels the attempt with TimeoutError, frees the server's slot and is not retried", async () => {
  const server = inProcessServer({ fake: { stepMs: 5 } });
  const rec = recording(server.fetch);
  const c = client(server, { fetch: rec.fetch, timeoutMs: 60_000, maxRetries: 3 });
  const e = await rejects(c.textToImage({ prompt: "x", numInferenceSteps: 1000 }, { timeoutMs: 80 }), TimeoutError);
  assert.equal(e.timeoutMs, 80);
  await server.queue.whenIdle();
  assert.equal(server.runner.calls.length, 1);
  assert.equal(server.runner.calls[0]!.outcome, "cancelled");
  assert.equal(server.requests.length, 1);
});

Deno.test("a 429 from a full queue is retried after the server's Retry-After", async () => {
  const server = inProcessServer({ fake: { stepMs: 2 } });
  const rec = recording(server.fetch);
  const stop = new AbortController();
  const busy = client(server).textToImage({ prompt: "first", numInferenceSteps: 1000 }, { signal: stop.signal })
    .then(() => null, (e: unknown) => e);
  await until(() => server.runner.calls.length === 1);
  // Instead of sleeping, the "wait" stops the generation that holds the only slot and waits for the slot.
  const { sleeps, clock } = fakeClock(async () => {
    stop.abort();
    await server.queue.whenIdle();
  });
  const result = await client(server, { fetch: rec.fetch, clock }).textToImage({
    prompt: "second",
    numInferenceSteps: 1,
  });
  assert.equal(result.images.length, 1);
  assert.deepEqual(rec.statuses, [429, 200]);
  assert.deepEqual(sleeps, [1000]); // Retry-After: 1
  assert.ok((await busy) instanceof AbortError);
});

Deno.test("RateLimitError is thrown once retries are spent, carrying Retry-After", async () => {
  const server = inProcessServer({ fake: { stepMs: 2 } });
  const stop = new AbortController();
  const busy = client(server).textToImage({ prompt: "first", numInferenceSteps: 1000 }, { signal: stop.signal })
    .then(() => null, (e: unknown) => e);
  await until(() => server.runner.calls.length === 1);
  const { sleeps, clock } = fakeClock();
  const rec = recording(server.fetch);
  const e = await rejects(
    client(server, { fetch: rec.fetch, clock, maxRetries: 2 }).textToImage({ prompt: "second" }),
    RateLimitError,
  );
  assert.equal(e.status, 429);
  assert.equal(e.code, "queue_full");
  assert.equal(e.retryAfterMs, 1000);
  assert.deepEqual(rec.statuses, [429, 429, 429]);
  assert.deepEqual(sleeps, [1000, 1000]);
  stop.abort();
  assert.ok((await busy) instanceof AbortError);
  await server.queue.whenIdle();
});

Deno.test("a 503 while models load is retried after Retry-After, then succeeds", async () => {
  const server = inProcessServer();
  server.runner.state = { state: "loading" };
  const rec = recording(server.fetch);
  const { sleeps, clock } = fakeClock(() => {
    server.runner.state = { state: "ready" };
  });
  const result = await client(server, { fetch: rec.fetch, clock }).textToImage({ prompt: "x", numInferenceSteps: 1 });
  assert.equal(result.images.length, 1);
  assert.deepEqual(rec.statuses, [503, 200]);
  assert.deepEqual(sleeps, [5000]);
  // A retried upload sends the whole image again, even one given as a stream (read once, before the first try).
  server.runner.state = { state: "loading" };
  const png = await pngOf(32, 32);
  const again = fakeClock(() => {
    server.runner.state = { state: "ready" };
  });
  const upscaled = await client(server, { fetch: rec.fetch, clock: again.clock }).superResolve({
    image: new Blob([png]).stream(),
    numInferenceSteps: 1,
  });
  assert.equal(upscaled.images[0]!.width, 128);
  assert.deepEqual(rec.statuses, [503, 200, 503, 200]);
  // With no retries left the 503 surfaces as ServiceUnavailableError.
  server.runner.state = { state: "loading" };
  const e = await rejects(client(server, { maxRetries: 0 }).textToImage({ prompt: "x" }), ServiceUnavailableError);
  assert.equal(e.code, "model_loading");
  assert.equal(e.retryAfterMs, 5000);
  assert.ok(e instanceof ServerError);
});

Deno.test("a 500 without Retry-After is retried with jittered exponential backoff, then thrown as ServerError", async () => {
  const server = inProcessServer({ fake: { failRun: "the GPU fell over" } });
  const x = { prompt: "x", numInferenceSteps: 1 };
  const rec = recording(server.fetch);
  const { sleeps, clock } = fakeClock();
  const e = await rejects(
    client(server, { fetch: rec.fetch, clock, maxRetries: 3 }).textToImage(x),
    ServerError,
  );
  assert.equal(e.status, 500);
  assert.equal(e.code, "internal_error");
  assert.equal(e.type, "server_error");
  assert.ok(e.requestId);
  assert.deepEqual(rec.statuses, [500, 500, 500, 500]);
  // min(500 × 2^n, 8000) × (1 − 0.25 × random), random = 0.5
  assert.deepEqual(sleeps, [437.5, 875, 1750]);
  const capped = fakeClock();
  await rejects(
    client(server, { clock: capped.clock, maxRetries: 6, maxRetryDelayMs: 3000 }).textToImage(x),
    ServerError,
  );
  assert.deepEqual(capped.sleeps, [437.5, 875, 1750, 2625, 2625, 2625]);
});

Deno.test("an error event in the stream becomes the ApiError of its type, and is retried like a response", async () => {
  const server = inProcessServer({ fake: { failRun: "boom" } });
  const { sleeps, clock } = fakeClock();
  const seen: number[] = [];
  const e = await rejects(
    client(server, { clock, maxRetries: 1 }).textToImage({ prompt: "x", numInferenceSteps: 2 }, {
      onProgress: (p) => seen.push(p.step),
    }),
    ServerError,
  );
  assert.equal(e.status, 500);
  assert.equal(e.code, "internal_error");
  assert.deepEqual(seen, [1, 2, 1, 2]);
  assert.equal(server.runner.calls.length, 2);
  assert.equal(sleeps.length, 1);
});

Deno.test("network failures are retried, then thrown as ConnectionError", async () => {
  const server = inProcessServer();
  let failures = 2;
  const flaky: FetchLike = (input, init) => {
    if (failures-- > 0) return Promise.reject(new TypeError("connection refused"));
    return server.fetch(input, init);
  };
  const { sleeps, clock } = fakeClock();
  const result = await client(server, { fetch: flaky, clock }).textToImage({ prompt: "x", numInferenceSteps: 1 });
  assert.equal(result.images.length, 1);
  assert.deepEqual(sleeps, [437.5, 875]);

  const down: FetchLike = () => Promise.reject(new TypeError("connection refused"));
  const e = await rejects(client(server, { fetch: down, clock, maxRetries: 1 }).models(), ConnectionError);
  assert.ok(e.cause instanceof TypeError);
  assert.match(e.message, /http:\/\/ldm\.test\/v1\/models/);
});

Deno.test("Retry-After is honoured as seconds, milliseconds or an HTTP date; a longer one than allowed is not waited", async () => {
  const server = inProcessServer();
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const envelope = JSON.stringify({
    error: { type: "rate_limit_error", code: "queue_full", message: "busy", param: null },
    request_id: "r1",
  });
  const once = (headers: Record<string, string>): FetchLike => {
    let first = true;
    return (input, init) => {
      if (!first) return server.fetch(input, init);
      first = false;
      return Promise.resolve(new Response(envelope, { status: 429, headers }));
    };
  };
  for (
    const [headers, wait] of [
      [{ "retry-after": "3" }, 3000],
      [{ "retry-after-ms": "250" }, 250],
      [{ "retry-after": new Date(now + 7000).toUTCString() }, 7000],
      [{ "retry-after": new Date(now - 7000).toUTCString() }, 0],
      [{ "retry-after": "soon" }, 437.5],
    ] as const
  ) {
    const { sleeps, clock } = fakeClock(() => {}, now);
    await client(server, { fetch: once(headers), clock }).models();
    assert.deepEqual(sleeps, [wait], JSON.stringify(headers));
  }
  const { sleeps, clock } = fakeClock(() => {}, now);
  const e = await rejects(
    client(server, { fetch: once({ "retry-after": "120" }), clock, maxRetryAfterMs: 60_000 }).models(),
    RateLimitError,
  );
  assert.equal(e.retryAfterMs, 120_000);
  assert.equal(e.requestId, "r1");
  assert.deepEqual(sleeps, []);
});

Deno.test("4xx errors are thrown at once as their classes, never retried", async (t) => {
  const { sleeps, clock } = fakeClock();
  const check = async <E extends ApiError>(
    server: InProcessServer,
    call: (c: ReturnType<typeof client>) => Promise<unknown>,
    type: abstract new (...args: never[]) => E,
  ) => {
    const rec = recording(server.fetch);
    const e = await rejects(call(client(server, { fetch: rec.fetch, clock, validate: false, maxRetries: 5 })), type);
    assert.equal(rec.statuses.length, 1);
    assert.equal(e.status, rec.statuses[0]);
    assert.ok(e.requestId);
    return e;
  };

  await t.step("400 BadRequestError for a value outside the schema", async () => {
    const e = await check(
      inProcessServer(),
      (c) => c.textToImage({ prompt: "x", numInferenceSteps: 0 }),
      BadRequestError,
    );
    assert.equal(e.code, "invalid_parameter");
    assert.equal(e.param, "num_inference_steps");
    assert.match(e.message, /got 0/);
    const tile = await check(
      inProcessServer(),
      async (c) => c.superResolve({ image: await pngOf(32, 32), tileSize: 16 }),
      BadRequestError,
    );
    assert.equal(tile.param, "tile_size");
  });

  await t.step("404 NotFoundError for a function the server does not serve", async () => {
    const server = inProcessServer({ config: { functions: ["text-to-image"] } });
    const e = await check(server, async (c) => c.superResolve({ image: await pngOf(32, 32) }), NotFoundError);
    assert.equal(e.code, "function_not_enabled");
  });

  await t.step("413 PayloadTooLargeError for a body over the server's limit", async () => {
    const server = inProcessServer({ config: { limits: { maxBodyBytes: 2048 } } });
    const image = await pngOf(64, 64, true);
    assert.ok(image.length > 4096);
    const e = await check(server, (c) => c.superResolve({ image }), PayloadTooLargeError);
    assert.equal(e.code, "payload_too_large");
  });

  await t.step(
    "422 UnprocessableEntityError for a parameter over the server's limit or an unusable image",
    async () => {
      const server = inProcessServer({ config: { limits: { maxSteps: 10 } } });
      const steps = await check(
        server,
        (c) => c.textToImage({ prompt: "x", numInferenceSteps: 11 }),
        UnprocessableEntityError,
      );
      assert.equal(steps.code, "limit_exceeded");
      assert.equal(steps.param, "num_inference_steps");
      const size = await check(
        server,
        (c) => c.textToImage({ prompt: "x", width: 33, numInferenceSteps: 1 }),
        UnprocessableEntityError,
      );
      assert.equal(size.param, "width");
      const small = await check(
        server,
        async (c) => c.superResolve({ image: await pngOf(16, 16) }),
        UnprocessableEntityError,
      );
      assert.equal(small.code, "image_too_small");
      const garbage = await check(
        server,
        (c) => c.superResolve({ image: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) }),
        UnprocessableEntityError,
      );
      assert.equal(garbage.code, "invalid_image");
      const webp = (await client(server).textToImage({ prompt: "x", numInferenceSteps: 1, outputFormat: "webp" }))
        .images[0]!.data;
      const notInput = await check(server, (c) => c.superResolve({ image: webp }), UnprocessableEntityError);
      assert.equal(notInput.code, "invalid_image");
    },
  );

  assert.deepEqual(sleeps, []);
});

Deno.test("a 504 from the server's own deadline is GatewayTimeoutError", async () => {
  const server = inProcessServer({ fake: { stepMs: 5 }, config: { requestTimeoutMs: 30 } });
  const e = await rejects(
    client(server, { maxRetries: 0 }).textToImage({ prompt: "x", numInferenceSteps: 1000 }),
    GatewayTimeoutError,
  );
  assert.equal(e.status, 504);
  assert.equal(e.code, "timeout");
  await server.queue.whenIdle();
  assert.equal(server.runner.calls[0]!.outcome, "cancelled");
});

Deno.test("answers that are not the server's shapes become InvalidResponseError or a plain ApiError", async () => {
  const server = inProcessServer();
  const html: FetchLike = () =>
    Promise.resolve(new Response("<html>hello</html>", { status: 200, headers: { "content-type": "text/html" } }));
  const e = await rejects(client(server, { fetch: html }).models(), InvalidResponseError);
  assert.equal(e.status, 200);
  const wrongShape: FetchLike = () => Promise.resolve(Response.json({ object: "list", data: [{ id: 3 }] }));
  await rejects(client(server, { fetch: wrongShape }).models(), InvalidResponseError);
  const { clock } = fakeClock();
  const gateway: FetchLike = () => Promise.resolve(new Response("<h1>502 Bad Gateway</h1>", { status: 502 }));
  const bad = await rejects(client(server, { fetch: gateway, clock, maxRetries: 1 }).models(), ServerError);
  assert.equal(bad.status, 502);
  assert.equal(bad.code, "http_502");
  assert.equal(bad.type, null);
  assert.match(bad.message, /502 Bad Gateway/);
  const teapot: FetchLike = () => Promise.resolve(new Response("", { status: 418 }));
  const other = await rejects(client(server, { fetch: teapot }).models(), ApiError);
  assert.equal(other.constructor, ApiError);
  assert.equal(other.status, 418);
});

Deno.test("an exception in onProgress cancels the generation and is rethrown as is", async () => {
  const server = inProcessServer({ fake: { stepMs: 2 } });
  const mine = new Error("stop here");
  const thrown = await client(server).textToImage({ prompt: "x", numInferenceSteps: 500 }, {
    onProgress: (p) => {
      if (p.step === 2) throw mine;
    },
  }).catch((e) => e);
  assert.equal(thrown, mine);
  await server.queue.whenIdle();
  assert.equal(server.runner.calls.length, 1);
  assert.equal(server.runner.calls[0]!.outcome, "cancelled");
});

Deno.test("parameters failing the shared schema throw InvalidParameterError naming the camelCase field, and send nothing", async () => {
  const server = inProcessServer();
  const c = client(server);
  const cases: [() => Promise<unknown>, string | null, RegExp][] = [
    [
      () => c.textToImage({ prompt: "x", numInferenceSteps: 0 }),
      "numInferenceSteps",
      /numInferenceSteps: .*>=1.*\(got 0\)/,
    ],
    [() => c.textToImage({ prompt: "x", guidanceScale: 101 }), "guidanceScale", /got 101/],
    [() => c.textToImage({ prompt: "x", seed: 1.5 }), "seed", /got 1\.5/],
    [
      () => c.textToImage({ prompt: 3 as unknown as string }),
      "prompt",
      /expected a string or a list of strings \(got 3\)/,
    ],
    [() => c.textToImage({ prompt: ["a", "b"], negativePrompt: ["c"] }), "negativePrompt", /one entry per prompt/],
    [() => c.textToImage({ prompt: ["a", 2 as unknown as string] }), "prompt", /got \["a",2\]/],
    [() => c.textToImage({ prompt: "x", scheduler: "ddpm" as "ddim" }), "scheduler", /got "ddpm"/],
    [() => c.textToImage({ prompt: "x", foo: 1 } as never), "foo", /Unknown parameter 'foo'/],
    [
      () => c.textToImage({ prompt: "x", numInferenceSteps: 2, num_inference_steps: 3 } as never),
      "numInferenceSteps",
      /given twice/,
    ],
    [() => c.superResolve({ image: new Uint8Array(0) }), "image", /image is empty/],
    [
      () => c.superResolve({ image: "x.png" as unknown as Blob }),
      "image",
      /Uint8Array, ArrayBuffer, Blob or ReadableStream/,
    ],
    [() => c.superResolve({} as never), "image", /image is required/],
    [
      () => c.superResolve({ image: new Uint8Array(1), tileSize: 16 }),
      "tileSize",
      /0 \(never tile\) or at least 32 \(got 16\)/,
    ],
    [() => c.superResolve({ image: new Uint8Array(1), prompt: "x" } as never), "prompt", /Unknown parameter 'prompt'/],
    [() => c.textToImage(null as never), null, /params must be an object/],
  ];
  for (const [call, param, message] of cases) {
    const e = await rejects(call(), InvalidParameterError);
    assert.equal(e.param, param, e.message);
    assert.match(e.message, message);
  }
  assert.equal(server.requests.length, 0);
});

Deno.test("createClient() rejects invalid options, naming the option and the value", () => {
  const base = { baseUrl: "http://127.0.0.1:8000" };
  const cases: [ClientOptions, new (...args: never[]) => Error, RegExp][] = [
    [{ baseUrl: "127.0.0.1:8000" }, TypeError, /baseUrl must be an absolute http\(s\) URL.*got "127\.0\.0\.1:8000"/],
    [{ baseUrl: "ftp://example.com" }, TypeError, /baseUrl .*got "ftp:\/\/example\.com"/],
    [{ baseUrl: "http://x/?a=1" }, TypeError, /baseUrl must not have a query/],
    [{ ...base, apiKey: "" }, TypeError, /apiKey must be a non-empty string/],
    [{ ...base, apiKey: "a\nb" }, TypeError, /apiKey/],
    [{ ...base, timeoutMs: 0 }, RangeError, /timeoutMs must be .*got 0/],
    [{ ...base, timeoutMs: NaN }, RangeError, /timeoutMs .*got NaN/],
    [{ ...base, maxRetries: -1 }, RangeError, /maxRetries must be an integer in \[0, 100\]: got -1/],
    [{ ...base, maxRetries: 1.5 }, RangeError, /maxRetries .*got 1\.5/],
    [{ ...base, initialRetryDelayMs: -5 }, RangeError, /initialRetryDelayMs .*got -5/],
    [{ ...base, fetch: "fetch" as unknown as FetchLike }, TypeError, /fetch must be a function/],
    [{ ...base, headers: { "x-a": 1 as unknown as string } }, TypeError, /headers\.x-a must be a string: got 1/],
  ];
  for (const [options, type, message] of cases) {
    assert.throws(() => createClient(options), (e: unknown) => {
      assert.ok(e instanceof type, String(e));
      assert.match((e as Error).message, message);
      return true;
    });
  }
  assert.equal(createClient({ baseUrl: "https://example.com/ldm/" }).baseUrl, "https://example.com/ldm");
  assert.equal(createClient({ baseUrl: new URL("http://[::1]:8000") }).baseUrl, "http://[::1]:8000");
});

Deno.test("headers, the API key and the idempotency key go out on every attempt; a base path is kept", async () => {
  const server = inProcessServer();
  const seen: { url: string; headers: Headers }[] = [];
  let first = true;
  const fetch: FetchLike = (input, init) => {
    seen.push({ url: input, headers: new Headers(init.headers) });
    if (first) {
      first = false;
      return Promise.resolve(new Response("", { status: 503 }));
    }
    return server.fetch(input.replace("/prefix", ""), init);
  };
  const { clock } = fakeClock();
  const c = createClient({
    baseUrl: "http://ldm.test/prefix/",
    apiKey: API_KEY,
    fetch,
    clock,
    headers: { "x-team": "red" },
  });
  await c.textToImage({ prompt: "x", numInferenceSteps: 1 }, { idempotencyKey: "key-1", headers: { "x-call": "1" } });
  assert.equal(seen.length, 2);
  for (const { url, headers } of seen) {
    assert.equal(url, "http://ldm.test/prefix/v1/text-to-image");
    assert.equal(headers.get("authorization"), `Bearer ${API_KEY}`);
    assert.equal(headers.get("idempotency-key"), "key-1");
    assert.equal(headers.get("x-team"), "red");
    assert.equal(headers.get("x-call"), "1");
    assert.equal(headers.get("content-type"), "application/json");
    assert.equal(headers.get("accept"), "application/json");
  }
  await rejects(c.models({ maxRetries: 0, headers: { "x-bad": 2 as unknown as string } }), TypeError);
  await assert.rejects(c.textToImage({ prompt: "x" }, { idempotencyKey: "" }), /idempotencyKey must be 1-255 visible/);
  await assert.rejects(
    c.textToImage({ prompt: "x" }, { idempotencyKey: "a b" }),
    /idempotencyKey must be 1-255 visible/,
  );
  await assert.rejects(
    c.textToImage({ prompt: "x" }, { idempotencyKey: "k".repeat(256) }),
    /idempotencyKey must be 1-255 visible/,
  );
});

Deno.test("the fetch is called as a plain function, as a browser's window.fetch requires", async () => {
  const server = inProcessServer();
  const receivers: unknown[] = [];
  const fetch = function (this: unknown, input: string, init: RequestInit) {
    receivers.push(this);
    return server.fetch(input, init);
  };
  await client(server, { fetch }).models();
  assert.deepEqual(receivers, [undefined]);
});

Deno.test("with an idempotencyKey, a retry after a dropped connection joins the server's run instead of running again", async (t) => {
  for (const keyed of [true, false]) {
    await t.step(keyed ? "with a key: one generation" : "without a key: the work runs twice", async () => {
      // Room to queue, so that without a key the retry waits for the cancelled run instead of getting a 429.
      const server = inProcessServer({ fake: { stepMs: 2 }, config: { queue: { maxQueue: 4 } } });
      const { sleeps, clock } = fakeClock();
      const replayed: (string | null)[] = [];
      let attempts = 0;
      const fetch: FetchLike = async (input, init) => {
        if (++attempts > 1) {
          const res = await server.fetch(input, init);
          replayed.push(res.headers.get("idempotent-replayed"));
          return res;
        }
        // The first attempt's connection, as the server sees it: reset once the server has started the work.
        const connection = new AbortController();
        server.fetch(input, { ...init, signal: connection.signal }).catch(() => {});
        await until(() => (server.runner.calls[0]?.stepsRun ?? 0) >= 2);
        connection.abort();
        throw new TypeError("connection reset by peer");
      };
      const result = await client(server, { fetch, clock }).textToImage(
        { prompt: "a squirrel", numInferenceSteps: 40, seed: 9 },
        keyed ? { idempotencyKey: "3f1c2b9e-retry-once" } : {},
      );
      assert.equal(attempts, 2);
      assert.equal(sleeps.length, 1);
      assert.deepEqual(result.images.map((i) => i.seed), [9]);
      await server.queue.whenIdle();
      const runs = server.runner.calls.map((c) => [c.outcome, c.stepsRun]);
      if (keyed) {
        assert.deepEqual(runs, [["ok", 40]]);
        assert.deepEqual(replayed, ["true"]);
      } else {
        assert.equal(runs.length, 2);
        assert.equal(runs[0]![0], "cancelled");
        assert.deepEqual(runs[1], ["ok", 40]);
        assert.deepEqual(replayed, [null]);
      }
    });
  }
});

import assert from "node:assert/strict";
import { Image } from "imagescript";
import {
  errorResponseSchema,
  imageResponseSchema,
  modelListSchema,
  progressEventSchema,
  textToImageRequestSchema,
} from "@ldm/sdk/schemas";
import { type AppDeps, createApp, type ServerState } from "./app.ts";
import { loadConfig, type ServerConfig } from "./config.ts";
import { Metrics } from "./metrics.ts";
import { GenerationQueue } from "./queue.ts";
import { FakeRunner, type FakeRunnerOptions } from "./testing/fake_runner.ts";
import { observeRuns } from "./app.ts";

const KEY = "test-key-0123456789abcdef";

interface Harness {
  app: ReturnType<typeof createApp>;
  runner: FakeRunner;
  metrics: Metrics;
  state: ServerState;
  queue: GenerationQueue;
}

function harness(
  { fake = {}, config = {}, deps = {} }: {
    fake?: FakeRunnerOptions;
    config?: Partial<Omit<ServerConfig, "queue" | "limits">> & {
      queue?: Partial<ServerConfig["queue"]>;
      limits?: Partial<ServerConfig["limits"]>;
    };
    deps?: Partial<AppDeps>;
  } = {},
): Harness {
  const base = loadConfig({});
  const cfg: ServerConfig = {
    ...base,
    ...config,
    queue: { ...base.queue, ...config.queue },
    limits: { ...base.limits, ...config.limits },
  };
  const runner = new FakeRunner(fake);
  const metrics = new Metrics();
  const state: ServerState = { shuttingDown: false };
  const queue = new GenerationQueue(runner, { ...cfg.queue, observer: observeRuns(metrics) });
  let seed = 1000;
  const app = createApp({ runner, config: cfg, metrics, state, queue, randomSeed: () => seed++, ...deps });
  return { app, runner, metrics, state, queue };
}

function post(app: Harness["app"], path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function expectError(res: Response, status: number, code: string, param?: string | null) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = errorResponseSchema.parse(JSON.parse(text));
  assert.equal(body.error.code, code, text);
  if (param !== undefined) assert.equal(body.error.param, param, text);
  assert.equal(body.request_id, res.headers.get("x-request-id"));
  return body;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];
const JPEG_MAGIC = [0xff, 0xd8];
const WEBP_MAGIC = [0x52, 0x49, 0x46, 0x46];

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return magic.every((b, i) => bytes[i] === b);
}

async function pngOf(width: number, height: number): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await new Image(width, height).fill(0x336699ff).encode());
}

async function readSse(res: Response): Promise<{ event: string; data: unknown }[]> {
  const text = await res.text();
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

Deno.test("createApp() health, readiness, models, metrics and openapi routes", async (t) => {
  const h = harness();
  await t.step("GET /healthz answers ok with a generated X-Request-Id", async () => {
    const res = await h.app.request("/healthz");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "ok" });
    assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });
  await t.step("X-Request-Id is taken from the request when given", async () => {
    const res = await h.app.request("/healthz", { headers: { "x-request-id": "my-id-42" } });
    assert.equal(res.headers.get("x-request-id"), "my-id-42");
  });
  await t.step(
    "GET /readyz is 200 when ready, 503 with the reason while loading, failed or shutting down",
    async () => {
      assert.equal((await h.app.request("/readyz")).status, 200);
      h.runner.state = { state: "loading" };
      let res = await h.app.request("/readyz");
      assert.equal(res.status, 503);
      assert.equal((await res.json()).status, "loading");
      h.runner.state = { state: "failed", reason: "unet/model.onnx: no such file" };
      res = await h.app.request("/readyz");
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { status: "failed", reason: "unet/model.onnx: no such file" });
      h.runner.state = { state: "ready" };
      h.state.shuttingDown = true;
      res = await h.app.request("/readyz");
      assert.equal(res.status, 503);
      assert.equal((await res.json()).status, "shutting_down");
      h.state.shuttingDown = false;
    },
  );
  await t.step("GET /v1/models lists the models with their execution provider", async () => {
    const res = await h.app.request("/v1/models");
    const body = modelListSchema.parse(await res.json());
    assert.deepEqual(body.data.map((m) => [m.id, m.task, m.execution_provider, m.status]), [
      ["fake-text2im", "text-to-image", "cpu", "ready"],
      ["fake-super-resolution", "super-resolution", "cpu", "ready"],
    ]);
  });
  await t.step("GET /openapi.json documents both endpoints from the shared schemas", async () => {
    const res = await h.app.request("/openapi.json");
    const doc = await res.json();
    assert.equal(doc.openapi, "3.1.0");
    assert.ok(doc.paths["/v1/text-to-image"].post);
    assert.ok(doc.paths["/v1/super-resolution"].post.requestBody.content["multipart/form-data"]);
    const t2i = doc.components.schemas.TextToImageRequest;
    assert.equal(t2i.properties.num_inference_steps.default, 50);
    assert.deepEqual(t2i.required, ["prompt"]);
    assert.equal(doc.components.schemas.GeneratedImage.properties.content_type.enum.length, 3);
    assert.equal(
      doc.paths["/v1/text-to-image"].post.requestBody.content["application/json"].schema.$ref,
      "#/components/schemas/TextToImageRequest",
    );
  });
  await t.step("GET /metrics counts requests by route and status in Prometheus text", async () => {
    await h.app.request("/nope");
    const res = await h.app.request("/metrics");
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /ldm_http_requests_total\{method="GET",route="\/healthz",status="200"\} 2/);
    assert.match(text, /ldm_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
    assert.match(text, /# TYPE ldm_queue_depth gauge\nldm_queue_depth 0/);
    assert.match(text, /ldm_ready 1/);
  });
  await t.step("unknown routes get the error envelope", async () => {
    await expectError(await h.app.request("/v2/whatever"), 404, "not_found", null);
  });
});

Deno.test("POST /v1/text-to-image answers JSON, image bytes or events", async (t) => {
  const h = harness();
  await t.step("JSON with base64 PNGs, one seed per image, model defaults for size", async () => {
    const res = await post(h.app, "/v1/text-to-image", {
      prompt: ["a squirrel", "a burger"],
      num_inference_steps: 3,
      num_images_per_prompt: 2,
      seed: 7,
    });
    assert.equal(res.status, 200);
    const body = imageResponseSchema.parse(await res.json());
    assert.equal(body.images.length, 4);
    assert.deepEqual(body.images.map((i) => i.seed), [7, 8, 9, 10]);
    for (const img of body.images) {
      assert.equal(img.content_type, "image/png");
      assert.deepEqual([img.width, img.height], [32, 32]);
      assert.ok(startsWith(Uint8Array.fromBase64(img.data), PNG_MAGIC));
    }
    assert.equal(body.model, "fake-text2im");
    assert.equal(body.request_id, res.headers.get("x-request-id"));
    assert.equal(body.timings.batch_size, 1);
    const call = h.runner.calls.at(-1)!;
    assert.deepEqual([call.task, call.stepsRun, call.outcome], ["text-to-image", 3, "ok"]);
  });
  await t.step("a random seed is drawn and returned when none is given", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "x", num_inference_steps: 1 });
    const body = imageResponseSchema.parse(await res.json());
    assert.ok(body.images[0]!.seed >= 1000);
  });
  for (
    const [format, type, magic] of [["jpeg", "image/jpeg", JPEG_MAGIC], ["webp", "image/webp", WEBP_MAGIC]] as const
  ) {
    await t.step(`output_format ${format} returns ${type}`, async () => {
      const res = await post(h.app, "/v1/text-to-image", {
        prompt: "x",
        num_inference_steps: 1,
        output_format: format,
        width: 16,
        height: 24,
      });
      const body = imageResponseSchema.parse(await res.json());
      assert.equal(body.images[0]!.content_type, type);
      assert.deepEqual([body.images[0]!.width, body.images[0]!.height], [16, 24]);
      assert.ok(startsWith(Uint8Array.fromBase64(body.images[0]!.data), magic));
    });
  }
  await t.step("Accept: image/png with one image returns the bytes alone with seed headers", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "x", num_inference_steps: 1, seed: 3 }, {
      accept: "image/png",
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/png");
    assert.equal(res.headers.get("x-seed"), "3");
    assert.equal(res.headers.get("x-image-width"), "32");
    assert.match(res.headers.get("server-timing") ?? "", /^queue;dur=[\d.]+, inference;dur=[\d.]+, encode;dur=[\d.]+$/);
    assert.ok(res.headers.get("x-request-id"));
    assert.ok(startsWith(new Uint8Array(await res.arrayBuffer()), PNG_MAGIC));
  });
  await t.step("Accept: image/* without output_format picks PNG; image/webp picks WebP", async () => {
    let res = await post(h.app, "/v1/text-to-image", { prompt: "x", num_inference_steps: 1 }, { accept: "image/*" });
    assert.equal(res.headers.get("content-type"), "image/png");
    await res.body?.cancel();
    res = await post(h.app, "/v1/text-to-image", { prompt: "x", num_inference_steps: 1 }, { accept: "image/webp" });
    assert.equal(res.headers.get("content-type"), "image/webp");
    assert.ok(startsWith(new Uint8Array(await res.arrayBuffer()), WEBP_MAGIC));
  });
  await t.step("406 when only an image type is accepted but two images are asked for", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: ["a", "b"], num_inference_steps: 1 }, {
      accept: "image/png",
    });
    await expectError(res, 406, "not_acceptable");
  });
  await t.step("406 naming output_format when it contradicts Accept", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "a", output_format: "jpeg" }, { accept: "image/png" });
    await expectError(res, 406, "not_acceptable", "output_format");
  });
  await t.step("several images with an image type preferred but JSON acceptable fall back to JSON", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: ["a", "b"], num_inference_steps: 1 }, {
      accept: "image/png, application/json;q=0.5",
    });
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(imageResponseSchema.parse(await res.json()).images.length, 2);
  });
  await t.step("Accept: text/event-stream streams one progress event per step, then the result", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "x", num_inference_steps: 4, seed: 11 }, {
      accept: "text/event-stream",
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = await readSse(res);
    assert.deepEqual(events.map((e) => e.event), ["progress", "progress", "progress", "progress", "result"]);
    assert.deepEqual(events.slice(0, 4).map((e) => progressEventSchema.parse(e.data).step), [1, 2, 3, 4]);
    const result = imageResponseSchema.parse(events[4]!.data);
    assert.equal(result.images[0]!.seed, 11);
    assert.equal(result.request_id, res.headers.get("x-request-id"));
  });
  await t.step("a pipeline failure during a stream ends it with an error event", async () => {
    const failing = harness({ fake: { failRun: "CUDA out of memory" } });
    const res = await post(failing.app, "/v1/text-to-image", { prompt: "x", num_inference_steps: 2 }, {
      accept: "text/event-stream",
    });
    const events = await readSse(res);
    assert.deepEqual(events.map((e) => e.event), ["progress", "progress", "error"]);
    const err = errorResponseSchema.parse(events[2]!.data);
    assert.equal(err.error.code, "internal_error");
    assert.doesNotMatch(err.error.message, /CUDA/);
  });
  await t.step("a pipeline failure without streaming is a 500 envelope that hides internals", async () => {
    const failing = harness({ fake: { failRun: "CUDA out of memory" } });
    const res = await post(failing.app, "/v1/text-to-image", { prompt: "x", num_inference_steps: 1 });
    const body = await expectError(res, 500, "internal_error", null);
    assert.equal(body.error.type, "server_error");
  });
});

Deno.test("POST /v1/text-to-image refuses bad input with one error shape naming the field", async (t) => {
  const h = harness({
    config: {
      limits: { maxBodyBytes: 4096, maxSteps: 50, maxImagesPerRequest: 4, maxPromptLength: 20, maxDimension: 64 },
    },
  });
  const cases: [string, unknown, number, string, string | null][] = [
    ["malformed JSON", "{prompt:", 400, "invalid_json", null],
    ["missing prompt", {}, 400, "invalid_parameter", "prompt"],
    ["prompt of the wrong type", { prompt: 3 }, 400, "invalid_parameter", "prompt"],
    ["non-integer steps", { prompt: "a", num_inference_steps: 2.5 }, 400, "invalid_parameter", "num_inference_steps"],
    ["steps below 1", { prompt: "a", num_inference_steps: 0 }, 400, "invalid_parameter", "num_inference_steps"],
    ["unknown scheduler", { prompt: "a", scheduler: "heun" }, 400, "invalid_parameter", "scheduler"],
    ["unknown parameter", { prompt: "a", steps: 5 }, 400, "invalid_parameter", "steps"],
    ["negative seed", { prompt: "a", seed: -1 }, 400, "invalid_parameter", "seed"],
    ["unknown output format", { prompt: "a", output_format: "gif" }, 400, "invalid_parameter", "output_format"],
    [
      "negative prompts not matching the prompts",
      { prompt: ["a", "b"], negative_prompt: ["c"] },
      400,
      "invalid_parameter",
      "negative_prompt",
    ],
    [
      "steps above the server's limit",
      { prompt: "a", num_inference_steps: 51 },
      422,
      "limit_exceeded",
      "num_inference_steps",
    ],
    [
      "too many images",
      { prompt: ["a", "b", "c"], num_images_per_prompt: 2 },
      422,
      "limit_exceeded",
      "num_images_per_prompt",
    ],
    ["a prompt too long", { prompt: ["ok", "x".repeat(21)] }, 422, "limit_exceeded", "prompt[1]"],
    [
      "a negative prompt too long",
      { prompt: "a", negative_prompt: "y".repeat(21) },
      422,
      "limit_exceeded",
      "negative_prompt",
    ],
    ["width not a multiple of the latent scale", { prompt: "a", width: 30 }, 422, "invalid_parameter", "width"],
    ["height above the server's limit", { prompt: "a", height: 72 }, 422, "limit_exceeded", "height"],
    [
      "seed + images beyond the largest seed",
      { prompt: "a", seed: Number.MAX_SAFE_INTEGER, num_images_per_prompt: 2 },
      422,
      "invalid_parameter",
      "seed",
    ],
  ];
  for (const [name, body, status, code, param] of cases) {
    await t.step(`${status} ${code} for ${name}`, async () => {
      const res = await post(h.app, "/v1/text-to-image", body);
      const err = await expectError(res, status, code, param);
      if (param) assert.match(err.error.message, new RegExp(param.replace(/[[\]]/g, "\\$&")));
    });
  }
  await t.step("the 400 message names the value received", async () => {
    const err = await expectError(
      await post(h.app, "/v1/text-to-image", { prompt: "a", num_inference_steps: 0 }),
      400,
      "invalid_parameter",
    );
    assert.match(err.error.message, /num_inference_steps: .*got 0/);
  });
  await t.step("415 for a body that is not JSON", async () => {
    const res = await h.app.request("/v1/text-to-image", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "a squirrel",
    });
    await expectError(res, 415, "unsupported_media_type");
  });
  await t.step("413 for a body above the limit", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "x".repeat(5000) });
    await expectError(res, 413, "payload_too_large");
  });
  await t.step("nothing reached the runner", () => {
    assert.equal(h.runner.calls.length, 0);
  });
});

Deno.test("textToImageRequestSchema applies diffusers' defaults", () => {
  const p = textToImageRequestSchema.parse({ prompt: "a" });
  assert.deepEqual([p.num_inference_steps, p.guidance_scale, p.eta, p.num_images_per_prompt], [50, 1, 0, 1]);
});

Deno.test("createApp() answers 503 while loading or failed, 404 for a disabled function, 503 when shutting down", async () => {
  const h = harness({ config: { functions: ["text-to-image"] } });
  h.runner.state = { state: "loading" };
  const res = await post(h.app, "/v1/text-to-image", { prompt: "a" });
  assert.equal(res.headers.get("retry-after"), "5");
  await expectError(res, 503, "model_loading");
  h.runner.state = { state: "failed", reason: "bad graph" };
  const err = await expectError(await post(h.app, "/v1/text-to-image", { prompt: "a" }), 503, "model_failed");
  assert.match(err.error.message, /bad graph/);
  h.runner.state = { state: "ready" };
  await expectError(
    await h.app.request("/v1/super-resolution", {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: new Uint8Array(8),
    }),
    404,
    "function_not_enabled",
  );
  h.state.shuttingDown = true;
  await expectError(await post(h.app, "/v1/text-to-image", { prompt: "a" }), 503, "shutting_down");
});

Deno.test("createApp() requires a bearer key on /v1 and /metrics when keys are configured", async (t) => {
  const h = harness({ config: { apiKeys: [KEY] } });
  await t.step("401 without a key, with WWW-Authenticate", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "a", num_inference_steps: 1 });
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
    await expectError(res, 401, "missing_api_key");
    await expectError(await h.app.request("/metrics"), 401, "missing_api_key");
    await expectError(await h.app.request("/v1/models"), 401, "missing_api_key");
  });
  await t.step("401 with a wrong key", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "a" }, { authorization: `Bearer ${KEY}x` });
    await expectError(res, 401, "invalid_api_key");
  });
  await t.step("200 with the key; probes and openapi stay public", async () => {
    const res = await post(h.app, "/v1/text-to-image", { prompt: "a", num_inference_steps: 1 }, {
      authorization: `Bearer ${KEY}`,
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal((await h.app.request("/metrics", { headers: { authorization: `bearer ${KEY}` } })).status, 200);
    for (const path of ["/healthz", "/readyz", "/openapi.json"]) assert.equal((await h.app.request(path)).status, 200);
  });
});

Deno.test("createApp() queue: 429 when full, batching of compatible requests, timeout and disconnect cancel", async (t) => {
  await t.step("429 with Retry-After when every slot is busy and the queue is full", async () => {
    const h = harness({ fake: { stepMs: 5 }, config: { queue: { concurrency: 1, maxQueue: 1, maxBatchImages: 1 } } });
    const first = post(h.app, "/v1/text-to-image", { prompt: "a", num_inference_steps: 10 });
    const second = post(h.app, "/v1/text-to-image", { prompt: "b", num_inference_steps: 10 });
    const third = await post(h.app, "/v1/text-to-image", { prompt: "c", num_inference_steps: 10 });
    assert.match(third.headers.get("retry-after") ?? "", /^\d+$/);
    const err = await expectError(third, 429, "queue_full");
    assert.equal(err.error.type, "rate_limit_error");
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
  });
  await t.step("compatible waiting requests run as one batch; incompatible ones run alone", async () => {
    const h = harness({ fake: { stepMs: 5 }, config: { queue: { concurrency: 1, maxQueue: 10, maxBatchImages: 4 } } });
    const blocker = post(h.app, "/v1/text-to-image", { prompt: "first", num_inference_steps: 5 });
    await new Promise((r) => setTimeout(r, 1));
    const same = { num_inference_steps: 2, width: 16, height: 16, guidance_scale: 3 };
    const batched = [
      post(h.app, "/v1/text-to-image", { prompt: "a", ...same }),
      post(h.app, "/v1/text-to-image", { prompt: "b", ...same, num_images_per_prompt: 2, seed: 50 }),
      post(h.app, "/v1/text-to-image", { prompt: "c", ...same, width: 24 }),
      post(h.app, "/v1/text-to-image", { prompt: "d", ...same }),
    ];
    await blocker;
    const bodies = await Promise.all(batched.map(async (r) => imageResponseSchema.parse(await (await r).json())));
    assert.deepEqual(bodies.map((b) => b.timings.batch_size), [3, 3, 1, 3]);
    assert.deepEqual(bodies[1]!.images.map((i) => i.seed), [50, 51]);
    assert.deepEqual(h.runner.calls.map((c) => c.batchSize), [1, 3, 1]);
    const metrics = await (await h.app.request("/metrics")).text();
    assert.match(metrics, /ldm_batched_requests_total\{task="text-to-image"\} 3/);
    assert.match(metrics, /ldm_images_total\{task="text-to-image"\} 6/);
  });
  await t.step("504 after the request timeout, and the run stops at the next step", async () => {
    const h = harness({ fake: { stepMs: 10 }, config: { requestTimeoutMs: 60 } });
    const res = await post(h.app, "/v1/text-to-image", { prompt: "a", num_inference_steps: 100 });
    const err = await expectError(res, 504, "timeout");
    assert.equal(err.error.type, "timeout_error");
    await h.queue.whenIdle();
    const call = h.runner.calls[0]!;
    assert.equal(call.outcome, "cancelled");
    assert.ok(call.stepsRun < 100);
    assert.match(await (await h.app.request("/metrics")).text(), /ldm_cancelled_requests_total\{reason="timeout"\} 1/);
  });
  await t.step("a client disconnect cancels the run and frees the slot", async () => {
    const h = harness({ fake: { stepMs: 5 }, config: { queue: { concurrency: 1, maxQueue: 0, maxBatchImages: 1 } } });
    const ac = new AbortController();
    const req = new Request("http://localhost/v1/text-to-image", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ prompt: "a", num_inference_steps: 200 }),
      signal: ac.signal,
    });
    const res = await h.app.request(req);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /^event: progress/);
    ac.abort();
    await reader.cancel().catch(() => {});
    await h.queue.whenIdle();
    assert.equal(h.runner.calls[0]!.outcome, "cancelled");
    assert.ok(h.runner.calls[0]!.stepsRun < 200);
    const next = await post(h.app, "/v1/text-to-image", { prompt: "b", num_inference_steps: 1 });
    assert.equal(next.status, 200);
    await next.body?.cancel();
  });
});

Deno.test("POST /v1/super-resolution takes multipart, raw and JSON images", async (t) => {
  const h = harness({ config: { limits: { maxInputPixels: 96 * 96 } } });
  const png = await pngOf(64, 40);
  await t.step("multipart field 'image' with parameters as form fields", async () => {
    const form = new FormData();
    form.set("image", new Blob([png], { type: "image/png" }), "in.png");
    form.set("num_inference_steps", "3");
    form.set("seed", "5");
    form.set("output_format", "jpeg");
    const res = await h.app.request("/v1/super-resolution", { method: "POST", body: form });
    assert.equal(res.status, 200);
    const body = imageResponseSchema.parse(await res.json());
    assert.deepEqual(body.images.map((i) => [i.width, i.height, i.seed, i.content_type]), [[
      256,
      128,
      5,
      "image/jpeg",
    ]]);
    assert.equal(body.model, "fake-super-resolution");
    assert.equal(h.runner.calls.at(-1)!.stepsRun, 3);
  });
  await t.step("raw image body with parameters in the query, bytes back with Accept: image/png", async () => {
    const res = await h.app.request("/v1/super-resolution?num_inference_steps=2&seed=9", {
      method: "POST",
      headers: { "content-type": "image/png", accept: "image/png" },
      body: png,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/png");
    assert.equal(res.headers.get("x-seed"), "9");
    assert.equal(res.headers.get("x-image-width"), "256");
    assert.ok(startsWith(new Uint8Array(await res.arrayBuffer()), PNG_MAGIC));
  });
  await t.step("JSON with base64 and with a data URL", async () => {
    for (const image of [png.toBase64(), `data:image/png;base64,${png.toBase64()}`]) {
      const res = await post(h.app, "/v1/super-resolution", { image, num_inference_steps: 1, output_format: "webp" });
      assert.equal(res.status, 200);
      const body = imageResponseSchema.parse(await res.json());
      assert.equal(body.images[0]!.content_type, "image/webp");
    }
  });
  await t.step("events stream progress then the result", async () => {
    const res = await h.app.request("/v1/super-resolution?num_inference_steps=2", {
      method: "POST",
      headers: { "content-type": "image/png", accept: "text/event-stream" },
      body: png,
    });
    const events = await readSse(res);
    assert.deepEqual(events.map((e) => e.event), ["progress", "progress", "result"]);
  });
  await t.step("JPEG input is accepted", async () => {
    const jpeg = new Uint8Array(await new Image(32, 32).fill(0xff0000ff).encodeJPEG(90));
    const res = await h.app.request("/v1/super-resolution?num_inference_steps=1", {
      method: "POST",
      headers: { "content-type": "image/jpeg" },
      body: jpeg,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(imageResponseSchema.parse(await res.json()).images.map((i) => i.width), [128]);
  });
});

Deno.test("POST /v1/super-resolution refuses bad images and parameters", async (t) => {
  const h = harness({ config: { limits: { maxInputPixels: 96 * 96, maxBodyBytes: 64 * 1024, maxSteps: 20 } } });
  const png = await pngOf(64, 64);
  const raw = (body: BodyInit, type: string, query = "") =>
    h.app.request(`/v1/super-resolution${query}`, { method: "POST", headers: { "content-type": type }, body });
  await t.step("422 invalid_image for bytes that are not an image", async () => {
    await expectError(
      await raw(new TextEncoder().encode("definitely not a png"), "image/png"),
      422,
      "invalid_image",
      "image",
    );
  });
  await t.step("422 invalid_image for a PNG header with corrupt data (decoder fails in the runner)", async () => {
    const broken = png.slice(0, 40);
    await expectError(await raw(broken, "image/png", "?num_inference_steps=2"), 422, "invalid_image", "image");
  });
  await t.step("422 image_too_large above the pixel limit, image_too_small below the size multiple", async () => {
    await expectError(await raw(await pngOf(128, 96), "image/png"), 422, "image_too_large", "image");
    await expectError(await raw(await pngOf(16, 64), "image/png"), 422, "image_too_small", "image");
  });
  await t.step("422 for an empty body and for bad base64", async () => {
    await expectError(await raw(new Uint8Array(0), "image/png"), 422, "invalid_image", "image");
    await expectError(await post(h.app, "/v1/super-resolution", { image: "***" }), 422, "invalid_image", "image");
    await expectError(
      await post(h.app, "/v1/super-resolution", { image: "data:image/png,abc" }),
      422,
      "invalid_image",
      "image",
    );
  });
  await t.step("415 for unsupported content types, 422 for WebP content (the decoder takes PNG and JPEG)", async () => {
    const webp = new Uint8Array(await new Image(32, 32).fill(0xff0000ff).encodeWEBP(90));
    await expectError(await raw(webp, "image/webp"), 415, "unsupported_media_type");
    const err = await expectError(
      await post(h.app, "/v1/super-resolution", { image: webp.toBase64() }),
      422,
      "invalid_image",
      "image",
    );
    assert.match(err.error.message, /WebP/);
    await expectError(await raw(png, "image/gif"), 415, "unsupported_media_type");
    await expectError(await raw("hello", "text/plain"), 415, "unsupported_media_type");
  });
  await t.step("400 naming the field for bad parameters in each form", async () => {
    await expectError(
      await raw(png, "image/png", "?num_inference_steps=abc"),
      400,
      "invalid_parameter",
      "num_inference_steps",
    );
    await expectError(await raw(png, "image/png", "?tile_size=16"), 400, "invalid_parameter", "tile_size");
    await expectError(await raw(png, "image/png", "?scheduler=heun"), 400, "invalid_parameter", "scheduler");
    await expectError(await raw(png, "image/png", "?scale=4"), 400, "invalid_parameter", "scale");
    await expectError(
      await post(h.app, "/v1/super-resolution", { image: png.toBase64(), eta: 2 }),
      400,
      "invalid_parameter",
      "eta",
    );
    await expectError(
      await post(h.app, "/v1/super-resolution", { num_inference_steps: 2 }),
      400,
      "invalid_parameter",
      "image",
    );
    const form = new FormData();
    form.set("num_inference_steps", "2");
    await expectError(
      await h.app.request("/v1/super-resolution", { method: "POST", body: form }),
      400,
      "invalid_parameter",
      "image",
    );
  });
  await t.step("422 for steps above the server's limit, 413 for a body above the limit", async () => {
    await expectError(
      await raw(png, "image/png", "?num_inference_steps=21"),
      422,
      "limit_exceeded",
      "num_inference_steps",
    );
    await expectError(await raw(new Uint8Array(70 * 1024), "image/png"), 413, "payload_too_large");
  });
  await t.step("400 for malformed JSON", async () => {
    await expectError(await post(h.app, "/v1/super-resolution", "{"), 400, "invalid_json", null);
  });
});

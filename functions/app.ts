/**
 * `createApp(deps)`: the Hono app serving both pipelines. Everything it needs (runner, configuration, clock, logger,
 * metrics, queue) is injected, so tests drive it with `app.request()` and no network.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import {
  type ImageResponse,
  MAX_SEED,
  type ModelInfo,
  type ModelList,
  superResolutionParamsSchema,
  type Task,
  textToImageRequestSchema,
} from "@ldm/sdk/schemas";
import type { ServerConfig } from "./config.ts";
import { negotiate, NotAcceptableError, type ResponseMode } from "./accept.ts";
import { bearerAuth } from "./auth.ts";
import {
  AbortReason,
  ApiError,
  CLIENT_CLOSED_REQUEST,
  fromZodError,
  invalidParameter,
  toApiError,
  unprocessable,
} from "./errors.ts";
import { readJson, readSuperResolutionInput } from "./_inputs.ts";
import { type Attachment, SharedRun } from "./_shared_run.ts";
import {
  IDEMPOTENCY_KEY_HEADER,
  IdempotencyStore,
  IDEMPOTENT_REPLAYED_HEADER,
  parseIdempotencyKey,
  requestFingerprint,
  sha256Hex,
  type StoredResponse,
} from "./idempotency.ts";
import { probeImage } from "./_image_probe.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import { buildOpenApiDocument } from "./openapi.ts";
import {
  type Clock,
  GenerationQueue,
  type QueueObserver,
  type QueueOutcome,
  type QueueWork,
  systemClock,
} from "./queue.ts";
import type { ModelDescriptor, PipelineRunner, TextToImageJob } from "./runner.ts";

/** The part of {@linkcode ServerConfig} the app uses. */
export type AppConfig = Pick<
  ServerConfig,
  "functions" | "apiKeys" | "limits" | "queue" | "requestTimeoutMs" | "idempotency"
>;

/** Shared between the server and the app: set `shuttingDown` to refuse new work and fail readiness. */
export interface ServerState {
  /** True once shutdown began: readiness fails and new generation requests get 503. */
  shuttingDown: boolean;
}

/** What {@linkcode createApp} needs. */
export interface AppDeps {
  /** Runs the pipelines (a worker pool in production, a fake in tests). */
  runner: PipelineRunner;
  /** Validated configuration. */
  config: AppConfig;
  /** Timing source. @default systemClock */
  clock?: Clock;
  /** Where JSON-lines logs go. @default silentLogger */
  logger?: Logger;
  /** Metric families. @default a new Metrics */
  metrics?: Metrics;
  /** The queue in front of `runner`; the server passes its own to drain it on shutdown. @default one built from
   * `config.queue` */
  queue?: GenerationQueue;
  /** Shutdown flag shared with the server. @default `{ shuttingDown: false }` */
  state?: ServerState;
  /** Seed for requests without one. @default a random 32-bit integer */
  randomSeed?: () => number;
}

type Env = { Variables: { requestId: string } };

const ROUTES = new Set([
  "/healthz",
  "/readyz",
  "/metrics",
  "/openapi.json",
  "/v1/models",
  "/v1/text-to-image",
  "/v1/super-resolution",
]);

const SSE_KEEPALIVE_MS = 15_000;

const SSE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache",
  "X-Accel-Buffering": "no",
};

const TEXT = new TextEncoder();

/** A generation request that carries an `Idempotency-Key`, with its body read for the fingerprint. */
interface KeyedRequest {
  /** The key, unquoted. */
  key: string;
  /** The body's bytes. */
  body: Uint8Array<ArrayBuffer>;
  /** A copy of the request over those bytes, for the parsers (the original's body is consumed). */
  request: Request;
}

function toModelInfo(m: ModelDescriptor, state: ModelInfo["status"]): ModelInfo {
  return {
    id: m.id,
    task: m.task,
    status: state,
    execution_provider: m.executionProvider,
    default_width: m.defaultWidth,
    default_height: m.defaultHeight,
    size_multiple: m.sizeMultiple,
    upscale_factor: m.upscaleFactor,
    default_scheduler: m.defaultScheduler,
  };
}

/**
 * Builds the Hono app: `POST /v1/text-to-image`, `POST /v1/super-resolution`, `GET /v1/models`, `/healthz`,
 * `/readyz`, `/metrics` and `/openapi.json`, with request ids, auth, body limits, one error shape and JSON-lines
 * access logs.
 *
 * @param deps The injected runner, configuration and services.
 * @returns The app; serve it with `Deno.serve(app.fetch)` or call `app.request()`.
 *
 * @example Serving a fake runner in a test
 * ```ts ignore
 * const app = createApp({ runner, config: loadConfig({}) });
 * const res = await app.request("/v1/text-to-image", {
 *   method: "POST",
 *   headers: { "content-type": "application/json" },
 *   body: JSON.stringify({ prompt: "a squirrel", num_inference_steps: 2 }),
 * });
 * ```
 */
export function createApp(deps: AppDeps): Hono<Env> {
  const { runner, config } = deps;
  const clock = deps.clock ?? systemClock;
  const log = deps.logger ?? silentLogger;
  const metrics = deps.metrics ?? new Metrics();
  const state = deps.state ?? { shuttingDown: false };
  const randomSeed = deps.randomSeed ?? (() => crypto.getRandomValues(new Uint32Array(1))[0]!);
  const queue = deps.queue ?? new GenerationQueue(runner, {
    concurrency: config.queue.concurrency,
    maxQueue: config.queue.maxQueue,
    maxBatchImages: config.queue.maxBatchImages,
    clock,
    observer: observeRuns(metrics),
  });
  const limits = config.limits;
  const idempotency = new IdempotencyStore<SharedRun>({
    ttlMs: config.idempotency.ttlMs,
    maxBytes: config.idempotency.maxBytes,
    clock,
  });
  let openapi: Record<string, unknown> | null = null;

  metrics.gauge("ldm_queue_depth", "Requests waiting for a generation slot.", () => queue.depth);
  metrics.gauge("ldm_generations_in_flight", "Pipeline calls running now.", () => queue.running);
  metrics.gauge(
    "ldm_encodings_in_flight",
    "Finished pipeline calls whose images are being encoded (their slot already free).",
    () => queue.encoding,
  );
  metrics.gauge("ldm_generation_slots", "Pipeline calls that may run at once.", () => queue.concurrency);
  metrics.gauge(
    "ldm_ready",
    "1 when the models are loaded and the server accepts work.",
    () => runner.status().state === "ready" && !state.shuttingDown ? 1 : 0,
  );
  metrics.gauge(
    "ldm_idempotency_stored_responses",
    "Responses kept for Idempotency-Key replays.",
    () => idempotency.storedCount,
  );
  metrics.gauge(
    "ldm_idempotency_stored_bytes",
    "Bytes the responses kept for Idempotency-Key replays hold (LDM_IDEMPOTENCY_MAX_BYTES caps it).",
    () => idempotency.storedBytes,
  );

  const app = new Hono<Env>();

  app.use(requestId());
  app.use(async function accessLog(c, next) {
    const started = clock.now();
    await next();
    const route = ROUTES.has(c.req.path) ? c.req.path : "unmatched";
    const status = c.res.status;
    const seconds = (clock.now() - started) / 1000;
    metrics.requests.inc({ route, method: c.req.method, status: String(status) });
    metrics.requestSeconds.observe(seconds, { route });
    const fields = {
      request_id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status,
      duration_ms: Math.round(seconds * 1e4) / 10,
    };
    if (status >= 500) log.warn("request", fields);
    else log.info("request", fields);
  });

  app.onError((err, c) => {
    const e = toApiError(err);
    const rid = c.get("requestId") ?? "";
    if (e.status >= 500 && e.code === "internal_error") log.error("unhandled error", { request_id: rid, error: err });
    for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
    if (e.status === CLIENT_CLOSED_REQUEST) return new Response(null, { status: CLIENT_CLOSED_REQUEST });
    return c.json(e.body(rid), e.status as 400);
  });
  // Returned, not thrown: Hono calls notFound outside the handler's try, so a throw would skip the access log.
  app.notFound((c) =>
    c.json(
      new ApiError(404, "not_found_error", "not_found", `No route for ${c.req.method} ${c.req.path}`).body(
        c.get("requestId") ?? "",
      ),
      404,
    )
  );

  const auth = bearerAuth(config.apiKeys);
  app.use("/v1/*", auth);
  app.use("/metrics", auth);
  const limitBody = bodyLimit({
    maxSize: limits.maxBodyBytes,
    onError: () => {
      throw new ApiError(
        413,
        "invalid_request_error",
        "payload_too_large",
        `The request body is larger than ${limits.maxBodyBytes} bytes`,
      );
    },
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", (c) => {
    if (state.shuttingDown) return c.json({ status: "shutting_down", reason: "The server is shutting down" }, 503);
    const s = runner.status();
    if (s.state === "loading") return c.json({ status: "loading", reason: "Models are loading" }, 503);
    if (s.state === "failed") return c.json({ status: "failed", reason: s.reason }, 503);
    const missing = config.functions.filter((f) => !runner.models().some((m) => m.task === f));
    if (missing.length > 0) return c.json({ status: "failed", reason: `No model for ${missing.join(", ")}` }, 503);
    return c.json({ status: "ready" });
  });

  app.get("/v1/models", (c) => {
    const s = runner.status().state;
    const body: ModelList = { object: "list", data: runner.models().map((m) => toModelInfo(m, s)) };
    return c.json(body);
  });

  app.get("/metrics", (c) => {
    c.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return c.body(metrics.render());
  });

  app.get("/openapi.json", (c) => c.json(openapi ??= buildOpenApiDocument(config.functions)));

  /** The model serving `task`, or 404/503 explaining why there is none. */
  function requireModel(task: Task): ModelDescriptor {
    if (!config.functions.includes(task)) {
      throw new ApiError(404, "not_found_error", "function_not_enabled", `This server does not serve ${task}`);
    }
    if (state.shuttingDown) {
      throw new ApiError(503, "unavailable_error", "shutting_down", "The server is shutting down", {
        headers: { Connection: "close" },
      });
    }
    const s = runner.status();
    if (s.state === "loading") {
      throw new ApiError(503, "unavailable_error", "model_loading", "Models are still loading; retry shortly", {
        headers: { "Retry-After": "5" },
      });
    }
    if (s.state === "failed") {
      throw new ApiError(503, "unavailable_error", "model_failed", `The model failed to load: ${s.reason}`);
    }
    const model = runner.models().find((m) => m.task === task);
    if (!model) throw new ApiError(503, "unavailable_error", "model_failed", `No ${task} model is loaded`);
    return model;
  }

  function chooseMode(c: Context<Env>, outputFormat: Parameters<typeof negotiate>[1]["outputFormat"], n: number) {
    try {
      return negotiate(c.req.header("accept"), { outputFormat, imageCount: n });
    } catch (e) {
      if (e instanceof NotAcceptableError) {
        throw new ApiError(406, "invalid_request_error", "not_acceptable", e.message, { param: e.param });
      }
      throw e;
    }
  }

  function checkSeed(seed: number | undefined, count: number): number {
    const s = seed ?? randomSeed();
    if (s > MAX_SEED - (count - 1)) {
      throw unprocessable("seed", `seed + images - 1 must be <= ${MAX_SEED}: got seed ${s} for ${count} images`);
    }
    return s;
  }

  function checkSteps(steps: number): void {
    if (steps > limits.maxSteps) {
      throw unprocessable(
        "num_inference_steps",
        `num_inference_steps must be <= ${limits.maxSteps} on this server: got ${steps}`,
        "limit_exceeded",
      );
    }
  }

  /**
   * Starts a run of `work` on behalf of the request in `c`: its deadline counts from `arrivedAt`, its response is
   * rendered once (with this request's id in the body) for every client of the run, and its failure is logged and
   * counted once. `graceMs` is how long it outlives its last client (0 without an `Idempotency-Key`).
   */
  function startRun(
    c: Context<Env>,
    work: QueueWork,
    mode: ResponseMode,
    model: ModelDescriptor,
    arrivedAt: number,
    graceMs: number,
  ): SharedRun {
    const rid = c.get("requestId");
    const run = new SharedRun({
      queue,
      work,
      deadlineMs: config.requestTimeoutMs - (clock.now() - arrivedAt),
      timeoutMs: config.requestTimeoutMs,
      graceMs,
      render: (o) => render(o, mode, model, arrivedAt, rid),
    });
    run.result.catch((e) => {
      if (e instanceof AbortReason) {
        metrics.cancelled.inc({ reason: e.kind });
        log.info("request cancelled", { request_id: rid, reason: e.kind });
      }
      if (toApiError(e).status === 500) log.error("generation failed", { request_id: rid, error: e });
    });
    return run;
  }

  /** The body of a successful generation in the negotiated form: JSON, the image bytes, or the final SSE event. */
  function render(
    o: QueueOutcome,
    mode: ResponseMode,
    model: ModelDescriptor,
    arrivedAt: number,
    rid: string,
  ): StoredResponse {
    const timings = {
      queue_ms: round(o.queueMs),
      inference_ms: round(o.result.inferenceMs),
      encode_ms: round(o.result.encodeMs),
      total_ms: round(clock.now() - arrivedAt),
      batch_size: o.batchSize,
    };
    if (mode.kind === "image") {
      const img = o.result.images[0]!;
      return {
        status: 200,
        headers: {
          "Content-Type": img.contentType,
          "X-Seed": String(img.seed),
          "X-Image-Width": String(img.width),
          "X-Image-Height": String(img.height),
          "X-Model": model.id,
          "X-Batch-Size": String(o.batchSize),
          "Server-Timing":
            `queue;dur=${timings.queue_ms}, inference;dur=${timings.inference_ms}, encode;dur=${timings.encode_ms}`,
        },
        body: img.data,
      };
    }
    const body: ImageResponse = {
      images: o.result.images.map((img) => ({
        data: img.data.toBase64(),
        content_type: img.contentType,
        seed: img.seed,
        width: img.width,
        height: img.height,
      })),
      timings,
      model: model.id,
      request_id: rid,
    };
    const json = JSON.stringify(body);
    if (mode.kind === "sse") {
      return { status: 200, headers: SSE_HEADERS, body: TEXT.encode(`event: result\ndata: ${json}\n\n`) };
    }
    return { status: 200, headers: { "Content-Type": "application/json" }, body: TEXT.encode(json) };
  }

  /** A response from rendered bytes, with this request's id (and the replay mark when it did not run them). */
  function toResponse(stored: StoredResponse, rid: string, replayed: boolean): Response {
    const headers = new Headers(stored.headers);
    headers.set("X-Request-Id", rid);
    if (replayed) headers.set(IDEMPOTENT_REPLAYED_HEADER, "true");
    return new Response(stored.body, { status: stored.status, headers });
  }

  /**
   * Answers one request from `run` in its negotiated form: JSON or image bytes once the run ends, or an event stream
   * at once (`progress` from now on, then `result` or `error`). A client that leaves lets go of the run; the last one
   * to leave cancels it (after the run's grace period).
   */
  function answer(
    c: Context<Env>,
    run: SharedRun,
    mode: ResponseMode,
    arrivedAt: number,
    replayed: boolean,
  ): Response | Promise<Response> {
    const rid = c.get("requestId");
    const clientSignal = c.req.raw.signal;
    if (mode.kind !== "sse") return run.wait(clientSignal).then((stored) => toResponse(stored, rid, replayed));

    let closed = false;
    let keepalive: ReturnType<typeof setInterval> | undefined;
    let attachment: Attachment | undefined;
    const release = (reason: AbortReason) => {
      closed = true;
      clearInterval(keepalive);
      clientSignal.removeEventListener("abort", onGone);
      attachment?.detach(reason);
    };
    let closeStream = () => {};
    // The connection going away ends this stream; the run itself goes on while others wait for it.
    const onGone = () => closeStream();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const send = (bytes: Uint8Array) => {
          if (closed) return;
          try {
            controller.enqueue(bytes);
          } catch {
            closed = true;
          }
        };
        const event = (name: string, data: unknown) =>
          send(TEXT.encode(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`));
        closeStream = () => {
          const wasClosed = closed;
          release(new AbortReason("client_disconnect", "The client disconnected"));
          if (wasClosed) return;
          try {
            controller.close();
          } catch {
            // already closed by the client
          }
        };
        keepalive = setInterval(() => send(TEXT.encode(": keep-alive\n\n")), SSE_KEEPALIVE_MS);
        clientSignal.addEventListener("abort", onGone, { once: true });
        attachment = run.attach(
          clientSignal,
          (step, total) => event("progress", { step, total, elapsed_ms: round(clock.now() - arrivedAt) }),
        );
        run.result.then(
          (stored) => {
            send(stored.body);
            closeStream();
          },
          (e) => {
            const err = toApiError(e);
            // `status` spares clients guessing the HTTP status of an error that arrives after the 200 went out.
            if (err.status !== CLIENT_CLOSED_REQUEST) event("error", { ...err.body(rid), status: err.status });
            closeStream();
          },
        );
        if (clientSignal.aborted) closeStream();
      },
      cancel() {
        release(new AbortReason("client_disconnect", "The client closed the event stream"));
      },
    });
    const headers = new Headers(SSE_HEADERS);
    headers.set("X-Request-Id", rid);
    if (replayed) headers.set(IDEMPOTENT_REPLAYED_HEADER, "true");
    return new Response(stream, { headers });
  }

  /**
   * Runs `work` and answers, or, for a request with an `Idempotency-Key`, replays the stored response of the same
   * request, joins its run in progress, or refuses a key reused for a different request (422).
   */
  async function respond(
    c: Context<Env>,
    work: QueueWork,
    mode: ResponseMode,
    model: ModelDescriptor,
    arrivedAt: number,
    keyed: KeyedRequest | null,
  ): Promise<Response> {
    if (keyed === null) return await answer(c, startRun(c, work, mode, model, arrivedAt, 0), mode, arrivedAt, false);
    const { key, request, body } = keyed;
    const [scope, fingerprint] = await Promise.all([idempotencyScope(c), requestFingerprint(request, body)]);
    // From here to `begin`, nothing awaits: two duplicates cannot both find the key absent.
    const found = idempotency.lookup(scope, key, fingerprint);
    switch (found.kind) {
      case "mismatch":
        throw unprocessable(
          IDEMPOTENCY_KEY_HEADER,
          `${IDEMPOTENCY_KEY_HEADER} ${JSON.stringify(key)} was already used for a different request ` +
            `(${found.state === "running" ? "still running" : "completed"}); send a new key for a new request`,
          "idempotency_key_mismatch",
        );
      case "done":
        metrics.replays.inc({ task: work.task, source: "stored" });
        return toResponse(found.response, c.get("requestId"), true);
      case "running":
        metrics.replays.inc({ task: work.task, source: "in_flight" });
        return await answer(c, found.run, mode, arrivedAt, true);
      case "absent": {
        const run = startRun(c, work, mode, model, arrivedAt, config.idempotency.graceMs);
        idempotency.begin(scope, key, fingerprint, run);
        run.result.then(
          (stored) => idempotency.finish(scope, key, run, stored),
          () => idempotency.finish(scope, key, run, null),
        );
        return await answer(c, run, mode, arrivedAt, false);
      }
    }
  }

  /**
   * Whose keys these are: a digest of the bearer key (the store holds no API key in clear), or, without keys, the
   * client's address as the server saw it (best effort: behind a proxy every client shares one scope).
   */
  async function idempotencyScope(c: Context<Env>): Promise<string> {
    if (config.apiKeys.length > 0) {
      const token = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
      return `key:${await sha256Hex(token)}`;
    }
    const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
    return `anonymous:${info?.remoteAddr?.hostname ?? ""}`;
  }

  /**
   * The `Idempotency-Key` of a generation request, and for a keyed one its body read into memory (the fingerprint
   * needs the bytes) with a copy of the request to parse.
   */
  async function readKeyed(c: Context<Env>): Promise<KeyedRequest | null> {
    const key = parseIdempotencyKey(c.req.header(IDEMPOTENCY_KEY_HEADER));
    if (key === null) return null;
    const raw = c.req.raw;
    const body = new Uint8Array(await raw.arrayBuffer());
    return { key, body, request: new Request(raw.url, { method: raw.method, headers: raw.headers, body }) };
  }

  const postLimits = [limitBody] as const;

  app.post("/v1/text-to-image", ...postLimits, async (c) => {
    const arrivedAt = clock.now();
    const model = requireModel("text-to-image");
    const keyed = await readKeyed(c);
    const raw = await readJson(keyed?.request ?? c.req.raw);
    const parsed = textToImageRequestSchema.safeParse(raw);
    if (!parsed.success) throw fromZodError(parsed.error, raw);
    const p = parsed.data;

    const prompts = Array.isArray(p.prompt) ? p.prompt : [p.prompt];
    const negatives = p.negative_prompt === undefined
      ? null
      : Array.isArray(p.negative_prompt)
      ? p.negative_prompt
      : prompts.map(() => p.negative_prompt as string);
    const promptParam = (name: string, i: number) =>
      Array.isArray((p as Record<string, unknown>)[name]) ? `${name}[${i}]` : name;
    prompts.forEach((s, i) => {
      if (s.length > limits.maxPromptLength) {
        throw unprocessable(
          promptParam("prompt", i),
          `${promptParam("prompt", i)} must be at most ${limits.maxPromptLength} characters: got ${s.length}`,
          "limit_exceeded",
        );
      }
    });
    negatives?.forEach((s, i) => {
      if (s.length > limits.maxPromptLength) {
        const name = promptParam("negative_prompt", i);
        throw unprocessable(
          name,
          `${name} must be at most ${limits.maxPromptLength} characters: got ${s.length}`,
          "limit_exceeded",
        );
      }
    });
    checkSteps(p.num_inference_steps);
    const count = prompts.length * p.num_images_per_prompt;
    if (count > limits.maxImagesPerRequest) {
      throw unprocessable(
        "num_images_per_prompt",
        `prompts × num_images_per_prompt must be <= ${limits.maxImagesPerRequest} on this server: got ` +
          `${prompts.length} × ${p.num_images_per_prompt} = ${count}`,
        "limit_exceeded",
      );
    }
    const size = (name: "width" | "height", value: number | undefined, fallback: number | null): number => {
      const v = value ?? fallback;
      if (v === null) throw invalidParameter(name, `${name} is required: the model has no default`);
      if (v % model.sizeMultiple !== 0) {
        throw unprocessable(name, `${name} must be a multiple of ${model.sizeMultiple} (the latent scale): got ${v}`);
      }
      if (v > limits.maxDimension) {
        throw unprocessable(
          name,
          `${name} must be <= ${limits.maxDimension} on this server: got ${v}`,
          "limit_exceeded",
        );
      }
      return v;
    };
    const width = size("width", p.width, model.defaultWidth);
    const height = size("height", p.height, model.defaultHeight);
    const seed = checkSeed(p.seed, count);
    const mode = chooseMode(c, p.output_format, count);
    const job: TextToImageJob = {
      prompts,
      negativePrompts: negatives,
      numImagesPerPrompt: p.num_images_per_prompt,
      seeds: Array.from({ length: count }, (_, i) => seed + i),
      numInferenceSteps: p.num_inference_steps,
      guidanceScale: p.guidance_scale,
      eta: p.eta,
      width,
      height,
      scheduler: p.scheduler ?? null,
      outputFormat: mode.kind === "image" ? mode.format : p.output_format ?? "png",
    };
    return await respond(c, { task: "text-to-image", job }, mode, model, arrivedAt, keyed);
  });

  app.post("/v1/super-resolution", ...postLimits, async (c) => {
    const arrivedAt = clock.now();
    const model = requireModel("super-resolution");
    const keyed = await readKeyed(c);
    const input = await readSuperResolutionInput(keyed?.request ?? c.req.raw, c.req.query());
    const parsed = superResolutionParamsSchema.safeParse(input.params);
    if (!parsed.success) throw fromZodError(parsed.error, input.params);
    const p = parsed.data;
    if (input.image.length === 0) throw unprocessable("image", "image is empty", "invalid_image");
    const probe = probeImage(input.image);
    if (!probe || probe.format === "webp") {
      throw unprocessable(
        "image",
        `image must be a PNG or JPEG image: got ${probe ? "WebP (not accepted as input)" : "something else"}`,
        "invalid_image",
      );
    }
    if (probe.width * probe.height > limits.maxInputPixels) {
      throw unprocessable(
        "image",
        `image must have at most ${limits.maxInputPixels} pixels on this server: got ${probe.width}×${probe.height}`,
        "image_too_large",
      );
    }
    if (probe.width < model.sizeMultiple || probe.height < model.sizeMultiple) {
      throw unprocessable(
        "image",
        `image must be at least ${model.sizeMultiple}×${model.sizeMultiple} pixels: got ${probe.width}×${probe.height}`,
        "image_too_small",
      );
    }
    checkSteps(p.num_inference_steps);
    const seed = checkSeed(p.seed, 1);
    const mode = chooseMode(c, p.output_format, 1);
    const work: QueueWork = {
      task: "super-resolution",
      job: {
        image: input.image,
        numInferenceSteps: p.num_inference_steps,
        eta: p.eta,
        seed,
        tileSize: p.tile_size ?? null,
        scheduler: p.scheduler ?? null,
        outputFormat: mode.kind === "image" ? mode.format : p.output_format ?? "png",
      },
    };
    return await respond(c, work, mode, model, arrivedAt, keyed);
  });

  return app;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Queue observer that feeds the inference metrics. */
export function observeRuns(metrics: Metrics): QueueObserver {
  return {
    onRunEnd(info): void {
      const task = info.task;
      metrics.batches.inc({ task, outcome: info.outcome });
      metrics.steps.inc({ task }, info.stepsDone);
      if (info.batchSize > 1) metrics.batchedRequests.inc({ task }, info.batchSize);
      if (info.outcome !== "ok") return;
      metrics.inferenceSeconds.observe(info.durationMs / 1000, { task });
      metrics.images.inc({ task }, info.images);
      if (info.durationMs > 0 && info.stepsDone > 0) {
        metrics.stepsPerSecond.set(info.stepsDone / (info.durationMs / 1000), { task });
      }
    },
  };
}

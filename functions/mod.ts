/**
 * `@ldm/functions`: the Hono HTTP functions serving Latent Diffusion text-to-image and 4× super-resolution from a
 * GPU container.
 *
 * - {@linkcode createApp}: the app (`POST /v1/text-to-image`, `POST /v1/super-resolution`, `GET /v1/models`,
 *   `/healthz`, `/readyz`, `/metrics`, `/openapi.json`) over an injected {@linkcode PipelineRunner}, configuration,
 *   clock, logger and metrics. Tests drive it with `app.request()`.
 * - {@linkcode startServer} / {@linkcode runFromEnv}: `Deno.serve` with the pipelines in a pool of workers
 *   ({@linkcode WorkerPoolRunner}, so inference never blocks the event loop; its encoder workers,
 *   {@linkcode CodecPool}, encode the images while the pipeline worker takes the next call), a bounded batching
 *   {@linkcode GenerationQueue}, and graceful shutdown on SIGTERM/SIGINT. Entry points: `main.ts` (both functions),
 *   `text_to_image/main.ts`, `super_resolution/main.ts`.
 * - {@linkcode loadConfig} / {@linkcode CONFIG_VARIABLES}: every environment variable, validated once.
 * - `Idempotency-Key` on both POST endpoints ({@linkcode IdempotencyStore}, {@linkcode parseIdempotencyKey},
 *   {@linkcode requestFingerprint}): retries of one request run one generation; a finished response is replayed
 *   with `Idempotent-Replayed: true` for `LDM_IDEMPOTENCY_TTL_MS`.
 * - The ONNX runner itself (which imports onnxruntime-node through `@ldm/core`) is the separate subpath
 *   `@ldm/functions/onnx_runner`, loaded only inside workers.
 *
 * Request and response schemas live in `@ldm/sdk/schemas`, shared with the SDK. `README.md` in this folder lists the
 * variables, shows a curl per endpoint and walks through a request's lifecycle.
 *
 * @example Serving a fake runner in a test
 * ```ts
 * import { createApp, loadConfig } from "@ldm/functions";
 * import { FakeRunner } from "@ldm/functions/testing";
 *
 * const app = createApp({ runner: new FakeRunner(), config: loadConfig({}) });
 * const res = await app.request("/healthz");
 * console.log(res.status); // 200
 * ```
 *
 * @module
 */
export { createApp, observeRuns } from "./app.ts";
export type { AppConfig, AppDeps, ServerState } from "./app.ts";
export { CONFIG_VARIABLES, ConfigError, isLoopbackHost, loadConfig, LOG_LEVELS } from "./config.ts";
export type {
  ConfigVariable,
  IdempotencyLimits,
  LoadConfigOptions,
  LogLevel,
  QueueLimits,
  RequestLimits,
  ServerConfig,
  TextCacheLimits,
} from "./config.ts";
export { onnxRunnerOptions, runFromEnv, startServer } from "./server.ts";
export type { RunFromEnvOptions, RunningServer, StartServerOptions } from "./server.ts";
export { WorkerPoolRunner } from "./worker/pool.ts";
export type { WorkerPoolOptions } from "./worker/pool.ts";
export { CodecPool } from "./worker/codec_pool.ts";
export type { CodecPoolOptions } from "./worker/codec_pool.ts";
export { decodeUpload, encodeGenerated } from "./codec.ts";
export type { ImageCodec } from "./codec.ts";
export { batchKey, GenerationQueue, QueueClosedError, QueueFullError, systemClock } from "./queue.ts";
export type { Clock, GenerationQueueOptions, QueueObserver, QueueOutcome, QueueWork, SubmitOptions } from "./queue.ts";
export { readyRunner, RunnerError, toRunnerError } from "./runner.ts";
export type {
  DecodedImage,
  EncodedImage,
  GeneratedImage,
  GeneratedResult,
  LoadedRunner,
  ModelDescriptor,
  PipelineRunner,
  RunnerErrorCode,
  RunnerStatus,
  RunOptions,
  RunResult,
  SerializedRunnerError,
  SuperResolutionJob,
  TextToImageJob,
} from "./runner.ts";
export {
  IDEMPOTENCY_KEY_HEADER,
  IdempotencyStore,
  IDEMPOTENT_REPLAYED_HEADER,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  parseIdempotencyKey,
  requestFingerprint,
} from "./idempotency.ts";
export type { IdempotencyLookup, IdempotencyStoreOptions, StoredResponse } from "./idempotency.ts";
export { AbortReason, ApiError, toApiError } from "./errors.ts";
export type { ErrorType } from "./errors.ts";
export { negotiate, NotAcceptableError } from "./accept.ts";
export type { ResponseMode } from "./accept.ts";
export { bearerAuth, KeyChecker } from "./auth.ts";
export { Counter, Gauge, Histogram, Metrics } from "./metrics.ts";
export { jsonLogger, silentLogger } from "./logger.ts";
export type { JsonLoggerOptions, LogFields, Logger } from "./logger.ts";
export { buildOpenApiDocument } from "./openapi.ts";

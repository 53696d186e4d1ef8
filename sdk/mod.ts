/**
 * `@ldm/sdk`: a typed client of the Latent Diffusion functions (text-to-image with `CompVis/ldm-text2im-large-256`,
 * 4× super-resolution with `CompVis/ldm-super-resolution-4x-openimages`).
 *
 * It uses web APIs only, so the same code runs in Deno, Node.js 18+, Bun, browsers and edge workers; its one
 * dependency is zod, through the request/response schemas it shares with the server (`@ldm/sdk/schemas`).
 *
 * - {@linkcode createClient} → {@linkcode LdmClient}: `textToImage()`, `superResolve()`, `health()`, `models()`.
 * - Parameters are diffusers' in camelCase ({@linkcode TextToImageInput}, {@linkcode SuperResolutionInput}) and
 *   are checked against the server's schemas before sending; results carry each image's bytes, content type, seed
 *   and size, plus timings and the request id ({@linkcode ImageResult}).
 * - Per call: `signal` cancels the request and the server's work, `onProgress` follows the denoising steps through
 *   the server's event stream, `timeoutMs`, `maxRetries`, `idempotencyKey`.
 * - Failures are classes ({@linkcode ApiError} and its subclasses per status, {@linkcode TimeoutError},
 *   {@linkcode AbortError}, {@linkcode ConnectionError}, ...). 408, 429, 5xx and network failures are retried with
 *   jittered exponential backoff, honouring `Retry-After`; validation errors never are.
 *
 * @example Text to image, then 4× upscaling
 * ```ts
 * import { createClient } from "@ldm/sdk";
 *
 * const client = createClient({ baseUrl: "http://127.0.0.1:8000", apiKey: "my-key" });
 * const small = await client.textToImage({ prompt: "a painting of a squirrel eating a burger", seed: 42 });
 * const large = await client.superResolve({ image: small.images[0]!.data, numInferenceSteps: 50 });
 * console.log(large.images[0]!.width, large.images[0]!.height, large.requestId);
 * ```
 *
 * @module
 */
export { createClient, LdmClient, SDK_VERSION } from "./client.ts";
export type { ClientOptions, FetchLike, GenerationOptions, RequestOptions } from "./client.ts";
export type { ClientClock } from "./_retry.ts";
export {
  AbortError,
  ApiError,
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
export type { ApiErrorInit, ApiErrorType } from "./errors.ts";
export type {
  GenerationProgress,
  HealthStatus,
  ImageInput,
  ImageResult,
  ModelDescription,
  OutputImage,
  ResultTimings,
  SuperResolutionInput,
  TextToImageInput,
} from "./types.ts";
export { OUTPUT_FORMATS, SCHEDULER_NAMES, TASKS } from "./schemas.ts";
export type { OutputFormat, SchedulerName, Task } from "./schemas.ts";

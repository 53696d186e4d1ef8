/**
 * Request and response schemas of the HTTP functions (text-to-image and super-resolution), defined once with zod and
 * shared by the server (`functions/`) and the SDK. Parameter names are diffusers' (`num_inference_steps`,
 * `guidance_scale`, ...) so a diffusers user can send the same call over HTTP.
 *
 * This module depends on zod only: it runs wherever `fetch` runs and never imports server code. Every schema is
 * registered in {@linkcode schemaRegistry} under its OpenAPI component name, which is how the server generates
 * `GET /openapi.json`.
 *
 * Static bounds here are the widest any deployment accepts; a server applies its configured limits (maximum steps,
 * dimensions, images per request, prompt length, input pixels) on top and answers 422 naming the field.
 *
 * @example Validating a text-to-image request before sending it
 * ```ts
 * import { textToImageRequestSchema } from "@ldm/sdk/schemas";
 *
 * const body = textToImageRequestSchema.parse({ prompt: "a painting of a squirrel eating a burger", seed: 7 });
 * console.log(body.num_inference_steps); // 50, diffusers' default
 * ```
 *
 * @module
 */
import { z } from "zod";

/** Metadata each registered schema carries: its OpenAPI component name and a description. */
export interface SchemaMeta {
  /** Component name under `#/components/schemas/`. */
  id: string;
  /** What the schema describes. */
  description?: string;
}

/** Registry of every named schema in this module, keyed by OpenAPI component name. */
export const schemaRegistry: z.core.$ZodRegistry<SchemaMeta> = z.registry<SchemaMeta>();

/**
 * Scheduler names accepted by `scheduler` (the project's short names, shared with the CLI): DDIMScheduler,
 * PNDMScheduler, LMSDiscreteScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
 * DPMSolverMultistepScheduler.
 */
export const SCHEDULER_NAMES = ["ddim", "pndm", "lms", "euler", "euler-ancestral", "dpm-multistep"] as const;

/** One of {@linkcode SCHEDULER_NAMES}. */
export type SchedulerName = typeof SCHEDULER_NAMES[number];

/** Encodings an image can be returned in. */
export const OUTPUT_FORMATS = ["png", "jpeg", "webp"] as const;

/** One of {@linkcode OUTPUT_FORMATS}. */
export type OutputFormat = typeof OUTPUT_FORMATS[number];

/** The media type of each output format. */
export const OUTPUT_CONTENT_TYPES: Readonly<Record<OutputFormat, string>> = {
  png: "image/png",
  jpeg: "image/jpeg",
  webp: "image/webp",
};

/** Largest seed accepted: seeds must survive a JSON round trip as exact integers. */
export const MAX_SEED: number = Number.MAX_SAFE_INTEGER;

/** The two functions a server can host. */
export const TASKS = ["text-to-image", "super-resolution"] as const;

/** One of {@linkcode TASKS}. */
export type Task = typeof TASKS[number];

// The helpers below carry explicit types too: JSR's fast type check requires them wherever an exported schema's type
// could be inferred from them.
const seed: z.ZodInt = z.int().min(0).max(MAX_SEED).describe(
  "Seed of the torch-compatible CPU generator (torch.manual_seed). Image i of a request uses seed + i. A random " +
    "seed is drawn and returned when omitted.",
);
const outputFormat: z.ZodEnum<z.util.ToEnum<OutputFormat>> = z.enum(OUTPUT_FORMATS).describe(
  "Encoding of the returned images. Default png; with an image Accept header and no output_format, the " +
    "accepted image type decides.",
);
const eta: z.ZodDefault<z.ZodNumber> = z.number().min(0).max(1).default(0).describe(
  "DDIM's η (0 = deterministic DDIM, 1 = DDPM-like noise). Only the ddim scheduler uses it.",
);

/** Fields of {@linkcode textToImageRequestSchema}: the zod schema of each request field. */
export type TextToImageRequestShape = {
  /** The prompt, or one prompt per batch entry. */
  prompt: z.ZodUnion<readonly [z.ZodString, z.ZodArray<z.ZodString>]>;
  /** Replaces the empty unconditional prompt of classifier-free guidance. */
  negative_prompt: z.ZodOptional<z.ZodUnion<readonly [z.ZodString, z.ZodArray<z.ZodString>]>>;
  /** Denoising steps, default 50. */
  num_inference_steps: z.ZodDefault<z.ZodInt>;
  /** Classifier-free guidance weight, default 1 (no guidance). */
  guidance_scale: z.ZodDefault<z.ZodNumber>;
  /** DDIM's η, default 0. */
  eta: z.ZodDefault<z.ZodNumber>;
  /** Seed of the torch-compatible CPU generator. */
  seed: z.ZodOptional<z.ZodInt>;
  /** Image width in pixels. */
  width: z.ZodOptional<z.ZodInt>;
  /** Image height in pixels. */
  height: z.ZodOptional<z.ZodInt>;
  /** Images generated for each prompt, default 1. */
  num_images_per_prompt: z.ZodDefault<z.ZodInt>;
  /** Sampler name. */
  scheduler: z.ZodOptional<z.ZodEnum<z.util.ToEnum<SchedulerName>>>;
  /** Encoding of the returned images. */
  output_format: z.ZodOptional<z.ZodEnum<z.util.ToEnum<OutputFormat>>>;
};

/** Body of `POST /v1/text-to-image` (diffusers' `LDMTextToImagePipeline.__call__` parameters). */
export const textToImageRequestSchema: z.ZodObject<TextToImageRequestShape, z.core.$strict> = z.strictObject({
  prompt: z.union([z.string(), z.array(z.string()).min(1).max(64)]).describe(
    "The prompt, or one prompt per batch entry.",
  ),
  negative_prompt: z.union([z.string(), z.array(z.string()).min(1).max(64)]).optional().describe(
    "Replaces the empty unconditional prompt of classifier-free guidance; used only when guidance_scale > 1. A " +
      "list must be as long as the prompt list.",
  ),
  num_inference_steps: z.int().min(1).max(1000).default(50).describe("Denoising steps."),
  guidance_scale: z.number().min(0).max(100).default(1).describe(
    "Classifier-free guidance weight; 1 disables guidance (diffusers' default for this pipeline).",
  ),
  eta,
  seed: seed.optional(),
  width: z.int().min(1).max(8192).optional().describe(
    "Image width in pixels, a multiple of the model's latent scale. Defaults to the model's native size.",
  ),
  height: z.int().min(1).max(8192).optional().describe(
    "Image height in pixels, a multiple of the model's latent scale. Defaults to the model's native size.",
  ),
  num_images_per_prompt: z.int().min(1).max(64).default(1).describe("Images generated for each prompt."),
  scheduler: z.enum(SCHEDULER_NAMES).optional().describe(
    "Sampler, built from the model's scheduler_config.json. Defaults to the model's own scheduler.",
  ),
  output_format: outputFormat.optional(),
}).superRefine((body, ctx) => {
  const np = body.negative_prompt;
  if (Array.isArray(np)) {
    const prompts = Array.isArray(body.prompt) ? body.prompt.length : 1;
    if (np.length !== prompts) {
      ctx.addIssue({
        code: "custom",
        path: ["negative_prompt"],
        message: `negative_prompt must have one entry per prompt (${prompts}): got ${np.length}`,
      });
    }
  }
}).register(schemaRegistry, {
  id: "TextToImageRequest",
  description: "Parameters of LDMTextToImagePipeline, with diffusers' names.",
});

/** A text-to-image request as sent (defaults not yet applied). */
export type TextToImageRequest = z.input<typeof textToImageRequestSchema>;
/** A text-to-image request after validation, defaults applied. */
export type TextToImageParams = z.output<typeof textToImageRequestSchema>;

/** Fields of {@linkcode superResolutionParamsSchema}: the zod schema of each parameter. */
export type SuperResolutionParamsShape = {
  /** Denoising steps, default 100. */
  num_inference_steps: z.ZodDefault<z.ZodInt>;
  /** DDIM's η, default 0. */
  eta: z.ZodDefault<z.ZodNumber>;
  /** Seed of the torch-compatible CPU generator. */
  seed: z.ZodOptional<z.ZodInt>;
  /** Tile size in input pixels; 0 never tiles. */
  tile_size: z.ZodOptional<z.ZodInt>;
  /** Sampler name. */
  scheduler: z.ZodOptional<z.ZodEnum<z.util.ToEnum<SchedulerName>>>;
  /** Encoding of the returned images. */
  output_format: z.ZodOptional<z.ZodEnum<z.util.ToEnum<OutputFormat>>>;
};

/**
 * Parameters of `POST /v1/super-resolution` besides the image (diffusers' `LDMSuperResolutionPipeline.__call__`).
 * Multipart requests send them as form fields, raw-image requests as query parameters.
 */
export const superResolutionParamsSchema: z.ZodObject<SuperResolutionParamsShape, z.core.$strict> = z.strictObject({
  num_inference_steps: z.int().min(1).max(1000).default(100).describe("Denoising steps."),
  eta,
  seed: seed.optional(),
  tile_size: z.int().min(0).max(8192).refine((v) => v === 0 || v >= 32, {
    message: "tile_size must be 0 (never tile) or at least 32",
  }).optional().describe(
    "Denoise and decode in overlapping tiles of this many input pixels per side (rounded down to the UNet's " +
      "multiple) to bound memory; 0 never tiles; omitted tiles automatically only where a whole-image pass would " +
      "need more than about 1 GiB for attention.",
  ),
  scheduler: z.enum(SCHEDULER_NAMES).optional().describe(
    "Sampler, built from the model's scheduler_config.json. Defaults to the model's own scheduler.",
  ),
  output_format: outputFormat.optional(),
}).register(schemaRegistry, {
  id: "SuperResolutionParams",
  description: "Parameters of LDMSuperResolutionPipeline besides the image.",
});

/** Super-resolution parameters as sent. */
export type SuperResolutionParamsInput = z.input<typeof superResolutionParamsSchema>;
/** Super-resolution parameters after validation, defaults applied. */
export type SuperResolutionParams = z.output<typeof superResolutionParamsSchema>;

/** Fields of {@linkcode superResolutionJsonRequestSchema}: `image` plus {@linkcode SuperResolutionParamsShape}. */
export type SuperResolutionJsonRequestShape = z.util.Flatten<{ image: z.ZodString } & SuperResolutionParamsShape>;

/** JSON body of `POST /v1/super-resolution`: the parameters plus the image as base64 or a `data:` URL. */
export const superResolutionJsonRequestSchema: z.ZodObject<SuperResolutionJsonRequestShape, z.core.$strict> = z
  .strictObject({
    image: z.string().min(1).describe("The low-resolution image (PNG or JPEG) as base64 or a data: URL."),
    ...superResolutionParamsSchema.shape,
  }).register(schemaRegistry, {
    id: "SuperResolutionJsonRequest",
    description: "Super-resolution request with the image inlined as base64 or a data: URL.",
  });

/** A JSON super-resolution request as sent. */
export type SuperResolutionJsonRequest = z.input<typeof superResolutionJsonRequestSchema>;

/** One generated image in a JSON response. */
export const generatedImageSchema: z.ZodObject<{
  data: z.ZodString;
  content_type: z.ZodEnum<z.util.ToEnum<"image/png" | "image/jpeg" | "image/webp">>;
  seed: z.ZodInt;
  width: z.ZodInt;
  height: z.ZodInt;
}> = z.object({
  data: z.string().describe("The encoded image, base64."),
  content_type: z.enum(["image/png", "image/jpeg", "image/webp"]),
  seed: z.int().min(0).max(MAX_SEED).describe("Seed that reproduces this image alone (num_images_per_prompt 1)."),
  width: z.int().min(1),
  height: z.int().min(1),
}).register(schemaRegistry, { id: "GeneratedImage", description: "One image, base64-encoded." });

/** One generated image in a JSON response. */
export type GeneratedImage = z.infer<typeof generatedImageSchema>;

/** Where a request's time went, in milliseconds. */
export const timingsSchema: z.ZodObject<{
  queue_ms: z.ZodNumber;
  inference_ms: z.ZodNumber;
  encode_ms: z.ZodNumber;
  total_ms: z.ZodNumber;
  batch_size: z.ZodInt;
}> = z.object({
  queue_ms: z.number().min(0).describe("Waiting for a free generation slot."),
  inference_ms: z.number().min(0).describe("Running the pipeline (shared by every request of a batch)."),
  encode_ms: z.number().min(0).describe("Encoding the output images."),
  total_ms: z.number().min(0).describe("From the request's arrival to the response."),
  batch_size: z.int().min(1).describe("Requests that ran together in one pipeline call."),
}).register(schemaRegistry, { id: "Timings", description: "Server-side timings in milliseconds." });

/** Server-side timings. */
export type Timings = z.infer<typeof timingsSchema>;

/** Successful response of both generation endpoints (JSON form). */
export const imageResponseSchema: z.ZodObject<{
  images: z.ZodArray<typeof generatedImageSchema>;
  timings: typeof timingsSchema;
  model: z.ZodString;
  request_id: z.ZodString;
}> = z.object({
  images: z.array(generatedImageSchema),
  timings: timingsSchema,
  model: z.string().describe("Identifier of the model that produced the images."),
  request_id: z.string(),
}).register(schemaRegistry, { id: "ImageResponse", description: "Generated images and timings." });

/** Successful response of both generation endpoints. */
export type ImageResponse = z.infer<typeof imageResponseSchema>;

/** Values of `error.type`, one per family of failure (the `type` field openai-style clients read). */
export const ERROR_TYPES = [
  "invalid_request_error",
  "authentication_error",
  "not_found_error",
  "rate_limit_error",
  "timeout_error",
  "unavailable_error",
  "server_error",
] as const;

/** The one error shape of every failed request. */
export const errorResponseSchema: z.ZodObject<{
  error: z.ZodObject<{
    type: z.ZodEnum<z.util.ToEnum<typeof ERROR_TYPES[number]>>;
    code: z.ZodString;
    message: z.ZodString;
    param: z.ZodNullable<z.ZodString>;
  }>;
  request_id: z.ZodString;
  status: z.ZodOptional<z.ZodInt>;
}> = z.object({
  error: z.object({
    type: z.enum(ERROR_TYPES),
    code: z.string().describe("Machine-readable reason, e.g. invalid_parameter, queue_full, timeout."),
    message: z.string(),
    param: z.string().nullable().describe("The request field at fault, e.g. num_inference_steps or prompt[1]."),
  }),
  request_id: z.string(),
  status: z.int().optional().describe(
    "In an SSE `error` event only: the HTTP status the same error has as a response (the stream itself is 200).",
  ),
}).register(schemaRegistry, { id: "ErrorResponse", description: "Every failure has this shape." });

/** The one error shape of every failed request. */
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

/** Data of a `progress` server-sent event. */
export const progressEventSchema: z.ZodObject<{ step: z.ZodInt; total: z.ZodInt; elapsed_ms: z.ZodNumber }> = z
  .object({
    step: z.int().min(0).describe("Denoising steps done."),
    total: z.int().min(1).describe("Denoising steps in all."),
    elapsed_ms: z.number().min(0).describe("Since the request arrived."),
  }).register(schemaRegistry, { id: "ProgressEvent", description: "Data of an SSE `progress` event." });

/** Data of a `progress` server-sent event. */
export type ProgressEvent = z.infer<typeof progressEventSchema>;

/**
 * Events of a `text/event-stream` response, in order: any number of `progress`, then exactly one `result` (data:
 * {@linkcode ImageResponse}) or one `error` (data: {@linkcode ErrorResponse}).
 */
export const SSE_EVENTS = ["progress", "result", "error"] as const;

/** One loaded model. */
export const modelInfoSchema: z.ZodObject<{
  id: z.ZodString;
  task: z.ZodEnum<z.util.ToEnum<Task>>;
  status: z.ZodEnum<z.util.ToEnum<"loading" | "ready" | "failed">>;
  execution_provider: z.ZodNullable<z.ZodString>;
  default_width: z.ZodNullable<z.ZodInt>;
  default_height: z.ZodNullable<z.ZodInt>;
  size_multiple: z.ZodInt;
  upscale_factor: z.ZodNullable<z.ZodInt>;
  default_scheduler: z.ZodNullable<z.ZodEnum<z.util.ToEnum<SchedulerName>>>;
}> = z.object({
  id: z.string(),
  task: z.enum(TASKS),
  status: z.enum(["loading", "ready", "failed"]),
  execution_provider: z.string().nullable().describe("The onnxruntime execution provider the sessions run on."),
  default_width: z.int().nullable(),
  default_height: z.int().nullable(),
  size_multiple: z.int().describe(
    "Width and height (text-to-image) or input sizes (super-resolution) must be " +
      "multiples of this.",
  ),
  upscale_factor: z.int().nullable().describe("Output size ÷ input size (super-resolution)."),
  default_scheduler: z.enum(SCHEDULER_NAMES).nullable(),
}).register(schemaRegistry, { id: "ModelInfo", description: "A model this server hosts." });

/** One loaded model. */
export type ModelInfo = z.infer<typeof modelInfoSchema>;

/** Response of `GET /v1/models`. */
export const modelListSchema: z.ZodObject<{ object: z.ZodLiteral<"list">; data: z.ZodArray<typeof modelInfoSchema> }> =
  z
    .object({
      object: z.literal("list"),
      data: z.array(modelInfoSchema),
    }).register(schemaRegistry, { id: "ModelList", description: "What this server hosts." });

/** Response of `GET /v1/models`. */
export type ModelList = z.infer<typeof modelListSchema>;

/** Response of `GET /healthz` and `GET /readyz`. */
export const healthResponseSchema: z.ZodObject<{
  status: z.ZodEnum<z.util.ToEnum<"ok" | "ready" | "loading" | "failed" | "shutting_down">>;
  reason: z.ZodOptional<z.ZodString>;
}> = z.object({
  status: z.enum(["ok", "ready", "loading", "failed", "shutting_down"]),
  reason: z.string().optional().describe("Why the server is not ready."),
}).register(schemaRegistry, { id: "HealthResponse", description: "Liveness or readiness." });

/** Response of `GET /healthz` and `GET /readyz`. */
export type HealthResponse = z.infer<typeof healthResponseSchema>;

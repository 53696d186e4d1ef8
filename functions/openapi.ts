/**
 * `GET /openapi.json`: an OpenAPI 3.1 document generated from the shared zod schemas (`@ldm/sdk/schemas`), so the
 * document, the server's validation and the SDK's types cannot drift apart.
 *
 * @module
 */
import { z } from "zod";
import { schemaRegistry, superResolutionParamsSchema, type Task } from "@ldm/sdk/schemas";

type Json = Record<string, unknown>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

function errorResponses(statuses: Record<number, string>): Json {
  const out: Json = {};
  for (const [status, description] of Object.entries(statuses)) {
    out[status] = { description, content: { "application/json": { schema: ref("ErrorResponse") } } };
  }
  return out;
}

const IMAGE_BINARY = { type: "string", contentMediaType: "application/octet-stream" };

/** The optional `Idempotency-Key` request header of both generation endpoints. */
const IDEMPOTENCY_KEY_PARAMETER: Json = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  schema: { type: "string", minLength: 1, maxLength: 255 },
  description: "1–255 visible ASCII characters (a UUID, say), bare or as a quoted string. Retries of the same " +
    "request (method, path, query, Content-Type, Accept and body) with the same key, under the same API key, run " +
    "one generation: while it runs they wait for it, afterwards they get its response again (Idempotent-Replayed: " +
    "true) for LDM_IDEMPOTENCY_TTL_MS. Failures are not kept. The same key for a different request is 422.",
};

const GENERATION_RESPONSES = (summary: string): Json => ({
  "200": {
    description: `${summary}. JSON by default; the image bytes alone when Accept names an image type and one image ` +
      "is asked for (headers X-Seed, X-Image-Width, X-Image-Height, X-Model, Server-Timing); server-sent events " +
      "(progress*, then result or error) with Accept: text/event-stream.",
    headers: {
      "Idempotent-Replayed": {
        description: "`true` when the response is that of an earlier request with the same Idempotency-Key (a " +
          "replay, or the run this request joined), not of a generation of its own.",
        schema: { type: "string", enum: ["true"] },
      },
    },
    content: {
      "application/json": { schema: ref("ImageResponse") },
      "image/png": { schema: IMAGE_BINARY },
      "image/jpeg": { schema: IMAGE_BINARY },
      "image/webp": { schema: IMAGE_BINARY },
      "text/event-stream": {
        schema: { type: "string" },
        description: "`event: progress` (data: ProgressEvent), then one `event: result` (data: ImageResponse) or " +
          "`event: error` (data: ErrorResponse).",
      },
    },
  },
  ...errorResponses({
    400: "Malformed JSON, a parameter failing the schema (error.param names it), or an invalid Idempotency-Key.",
    401: "Missing or invalid API key.",
    406: "No acceptable response form (e.g. only image/png accepted for several images).",
    413: "Body larger than the configured limit.",
    415: "Unsupported Content-Type.",
    422: "A parameter beyond this server's limits, an undecodable image, or an Idempotency-Key already used for " +
      "a different request (idempotency_key_mismatch).",
    429: "Queue full; see Retry-After.",
    503: "Models loading, failed to load, or the server is shutting down.",
    504: "The request did not finish within the configured timeout; the work was cancelled.",
  }),
});

/**
 * Builds the OpenAPI 3.1 document for the functions this server hosts.
 *
 * @param functions The enabled functions; only their paths are listed.
 * @returns The document as plain JSON.
 */
export function buildOpenApiDocument(functions: readonly Task[]): Json {
  const generated = z.toJSONSchema(schemaRegistry, {
    io: "input",
    uri: (id) => `#/components/schemas/${id}`,
    unrepresentable: "any",
  }) as { schemas: Record<string, Json> };
  const schemas: Record<string, Json> = {};
  for (const [id, schema] of Object.entries(generated.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = schema;
    schemas[id] = rest;
  }
  // The multipart form: the image file plus the parameters as form fields.
  const params = z.toJSONSchema(superResolutionParamsSchema, { io: "input" }) as Json & { properties?: Json };
  schemas.SuperResolutionMultipartRequest = {
    type: "object",
    required: ["image"],
    properties: { image: { type: "string", contentMediaType: "application/octet-stream" }, ...params.properties },
    description: "The image as the `image` file field; parameters as text fields.",
  };

  const paths: Json = {
    "/healthz": {
      get: {
        summary: "Liveness: answers while the process runs, even during inference.",
        security: [],
        responses: {
          "200": { description: "Alive.", content: { "application/json": { schema: ref("HealthResponse") } } },
        },
      },
    },
    "/readyz": {
      get: {
        summary:
          "Readiness: 503 while models load, after a model failed to load (with the reason), or during shutdown.",
        security: [],
        responses: {
          "200": { description: "Ready.", content: { "application/json": { schema: ref("HealthResponse") } } },
          "503": { description: "Not ready.", content: { "application/json": { schema: ref("HealthResponse") } } },
        },
      },
    },
    "/v1/models": {
      get: {
        summary: "The hosted models and the execution provider each runs on.",
        responses: {
          "200": { description: "Models.", content: { "application/json": { schema: ref("ModelList") } } },
          ...errorResponses({ 401: "Missing or invalid API key." }),
        },
      },
    },
    "/metrics": {
      get: {
        summary: "Prometheus metrics (text exposition format 0.0.4).",
        responses: {
          "200": { description: "Metrics.", content: { "text/plain": { schema: { type: "string" } } } },
          ...errorResponses({ 401: "Missing or invalid API key." }),
        },
      },
    },
    "/openapi.json": {
      get: {
        summary: "This document.",
        security: [],
        responses: { "200": { description: "OpenAPI 3.1.", content: { "application/json": { schema: {} } } } },
      },
    },
  };
  if (functions.includes("text-to-image")) {
    paths["/v1/text-to-image"] = {
      post: {
        summary: "Generate images from text (LDMTextToImagePipeline).",
        parameters: [IDEMPOTENCY_KEY_PARAMETER],
        requestBody: { required: true, content: { "application/json": { schema: ref("TextToImageRequest") } } },
        responses: GENERATION_RESPONSES("Generated images"),
      },
    };
  }
  if (functions.includes("super-resolution")) {
    const query = Object.entries((params.properties ?? {}) as Record<string, Json>).map(([name, schema]) => ({
      name,
      in: "query",
      required: false,
      schema,
      description: "With a raw image body only.",
    }));
    paths["/v1/super-resolution"] = {
      post: {
        summary: "Upscale an image 4× (LDMSuperResolutionPipeline).",
        parameters: [...query, IDEMPOTENCY_KEY_PARAMETER],
        requestBody: {
          required: true,
          content: {
            "multipart/form-data": { schema: ref("SuperResolutionMultipartRequest") },
            "image/png": { schema: IMAGE_BINARY },
            "image/jpeg": { schema: IMAGE_BINARY },
            "application/json": { schema: ref("SuperResolutionJsonRequest") },
          },
        },
        responses: GENERATION_RESPONSES("The upscaled image"),
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Latent Diffusion functions",
      version: "0.1.0",
      description: "LDM text-to-image and 4× super-resolution (diffusers' pipelines) on ONNX Runtime.",
    },
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "One of the configured API keys." } },
    },
  };
}

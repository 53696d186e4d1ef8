import assert from "node:assert/strict";
import type { z } from "zod";
import {
  errorResponseSchema,
  type ImageResponse,
  imageResponseSchema,
  MAX_SEED,
  OUTPUT_CONTENT_TYPES,
  OUTPUT_FORMATS,
  schemaRegistry,
  superResolutionJsonRequestSchema,
  superResolutionParamsSchema,
  type TextToImageParams,
  type TextToImageRequest,
  textToImageRequestSchema,
} from "./schemas.ts";

type IsExact<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
const exact = <T extends true>(_: T) => {};

Deno.test("schemas.ts types are the schemas' inferred types", () => {
  exact<IsExact<TextToImageRequest, z.input<typeof textToImageRequestSchema>>>(true);
  exact<IsExact<TextToImageParams, z.output<typeof textToImageRequestSchema>>>(true);
  exact<IsExact<ImageResponse, z.infer<typeof imageResponseSchema>>>(true);
  exact<IsExact<TextToImageParams["num_inference_steps"], number>>(true);
  exact<IsExact<TextToImageRequest["num_inference_steps"], number | undefined>>(true);
});

Deno.test("textToImageRequestSchema applies diffusers' defaults and refuses unknown keys", () => {
  const p = textToImageRequestSchema.parse({ prompt: ["a", "b"], negative_prompt: ["c", "d"] });
  assert.deepEqual(p, {
    prompt: ["a", "b"],
    negative_prompt: ["c", "d"],
    num_inference_steps: 50,
    guidance_scale: 1,
    eta: 0,
    num_images_per_prompt: 1,
  });
  assert.equal(textToImageRequestSchema.safeParse({ prompt: "a", steps: 3 }).success, false);
  const mismatch = textToImageRequestSchema.safeParse({ prompt: ["a", "b"], negative_prompt: ["c"] });
  assert.ok(!mismatch.success);
  assert.deepEqual(mismatch.error.issues[0]!.path, ["negative_prompt"]);
  assert.equal(textToImageRequestSchema.safeParse({ prompt: "a", seed: MAX_SEED }).success, true);
  assert.equal(textToImageRequestSchema.safeParse({ prompt: "a", seed: MAX_SEED + 2 }).success, false);
  assert.equal(textToImageRequestSchema.safeParse({ prompt: "a", scheduler: "euler-ancestral" }).success, true);
  assert.equal(textToImageRequestSchema.safeParse({ prompt: "a", scheduler: "EulerAncestral" }).success, false);
});

Deno.test("superResolution schemas: defaults, tile_size 0 or >= 32, image required in JSON", () => {
  assert.deepEqual(superResolutionParamsSchema.parse({}), { num_inference_steps: 100, eta: 0 });
  assert.equal(superResolutionParamsSchema.safeParse({ tile_size: 0 }).success, true);
  assert.equal(superResolutionParamsSchema.safeParse({ tile_size: 16 }).success, false);
  assert.equal(superResolutionParamsSchema.safeParse({ tile_size: 96 }).success, true);
  assert.equal(superResolutionJsonRequestSchema.safeParse({ num_inference_steps: 3 }).success, false);
  assert.equal(superResolutionJsonRequestSchema.safeParse({ image: "aGk=", seed: 1 }).success, true);
});

Deno.test("response schemas accept what the server sends and refuse other shapes", () => {
  const ok = {
    images: [{ data: "aGk=", content_type: "image/png", seed: 1, width: 8, height: 8 }],
    timings: { queue_ms: 0, inference_ms: 1, encode_ms: 0.5, total_ms: 2, batch_size: 1 },
    model: "m",
    request_id: "r",
  };
  assert.deepEqual(imageResponseSchema.parse(ok), ok);
  assert.equal(
    imageResponseSchema.safeParse({ ...ok, images: [{ ...ok.images[0], content_type: "image/gif" }] }).success,
    false,
  );
  const err = {
    error: { type: "rate_limit_error", code: "queue_full", message: "full", param: null },
    request_id: "r",
  };
  assert.deepEqual(errorResponseSchema.parse(err), err);
  assert.equal(
    errorResponseSchema.safeParse({ error: { ...err.error, type: "oops" }, request_id: "r" }).success,
    false,
  );
});

Deno.test("every output format has a content type; every named schema is registered once", () => {
  assert.deepEqual(OUTPUT_FORMATS.map((f) => OUTPUT_CONTENT_TYPES[f]), ["image/png", "image/jpeg", "image/webp"]);
  const ids: string[] = [];
  for (
    const schema of [textToImageRequestSchema, superResolutionParamsSchema, imageResponseSchema, errorResponseSchema]
  ) {
    const meta = schemaRegistry.get(schema);
    assert.ok(meta, "registered");
    ids.push(meta.id);
  }
  assert.equal(new Set(ids).size, ids.length);
});

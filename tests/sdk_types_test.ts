/**
 * Compile-time contract between the SDK's types and the schemas the server validates with: renamed to the wire's
 * snake_case (or the wire's renamed to camelCase), each SDK type must be exactly the schema's type. A field added,
 * removed, renamed, made optional or retyped on either side fails `deno check` (and so `deno test`) here.
 */
import assert from "node:assert/strict";
import type { z } from "zod";
import type {
  ErrorResponse,
  generatedImageSchema,
  healthResponseSchema,
  modelInfoSchema,
  progressEventSchema,
  superResolutionParamsSchema,
  textToImageRequestSchema,
  timingsSchema,
} from "@ldm/sdk/schemas";
import type {
  ApiErrorType,
  GenerationProgress,
  HealthStatus,
  ImageResult,
  ModelDescription,
  OutputImage,
  ResultTimings,
  SuperResolutionInput,
  TextToImageInput,
} from "@ldm/sdk";

/**
 * `true` when `A` and `B` are the same type (the identity check TypeScript itself uses for overloads: two generic
 * functions are assignable only when their conditional types are identical), `false` otherwise.
 */
type IsExact<A, B> = (<T>() => T extends Simplify<A> ? 1 : 2) extends (<T>() => T extends Simplify<B> ? 1 : 2) ? true
  : false;

/** Flattens intersections and mapped types into one object type, so equal shapes compare equal. */
type Simplify<T> = T extends object ? { [K in keyof T]: T[K] } : T;

/** `numInferenceSteps` → `num_inference_steps`, at the type level. */
type SnakeCase<S extends string> = S extends `${infer Head}${infer Tail}`
  ? `${Head extends Uppercase<Head> ? (Head extends Lowercase<Head> ? Head : `_${Lowercase<Head>}`) : Head}${SnakeCase<
    Tail
  >}`
  : S;

/** `num_inference_steps` → `numInferenceSteps`, at the type level. */
type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

/** The object with its keys in snake_case (modifiers kept). */
type SnakeKeys<T> = { [K in keyof T as K extends string ? SnakeCase<K> : K]: T[K] };

/** The object with its keys in camelCase (modifiers kept). */
type CamelKeys<T> = { [K in keyof T as K extends string ? CamelCase<K> : K]: T[K] };

/** Records a compile-time fact; the call only type-checks when `value` is the type's literal. */
function assertType<T extends boolean>(value: T): T {
  return value;
}

Deno.test("type helpers: IsExact and the key renamings tell equal from unequal types", () => {
  assert.equal(assertType<IsExact<{ a?: number }, { a?: number }>>(true), true);
  assertType<IsExact<{ a?: number }, { a: number }>>(false);
  assertType<IsExact<{ a: number }, { a: number; b: string }>>(false);
  assertType<IsExact<{ a: string | string[] }, { a: string }>>(false);
  assertType<IsExact<{ a: number } & { b: number }, { a: number; b: number }>>(true);
  assertType<IsExact<SnakeKeys<{ numInferenceSteps?: number }>, { num_inference_steps?: number }>>(true);
  assertType<IsExact<CamelKeys<{ elapsed_ms: number }>, { elapsedMs: number }>>(true);
  // The SDK's own types are not interchangeable either: this is what the checks below would catch.
  assertType<IsExact<SnakeKeys<Omit<TextToImageInput, "seed">>, z.input<typeof textToImageRequestSchema>>>(false);
});

Deno.test("TextToImageInput is the text-to-image request schema's input, in camelCase", () => {
  assertType<IsExact<SnakeKeys<TextToImageInput>, z.input<typeof textToImageRequestSchema>>>(true);
});

Deno.test("SuperResolutionInput is the super-resolution parameters' input plus the image, in camelCase", () => {
  assertType<IsExact<SnakeKeys<Omit<SuperResolutionInput, "image">>, z.input<typeof superResolutionParamsSchema>>>(
    true,
  );
  assertType<IsExact<SuperResolutionInput["image"], Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>>>(
    true,
  );
});

Deno.test("results match the response schemas, with image bytes instead of base64", () => {
  type WireImage = z.output<typeof generatedImageSchema>;
  assertType<IsExact<Omit<OutputImage, "data">, CamelKeys<Omit<WireImage, "data">>>>(true);
  assertType<IsExact<WireImage["data"], string>>(true);
  assertType<IsExact<OutputImage["data"], Uint8Array<ArrayBuffer>>>(true);
  assertType<IsExact<ResultTimings, CamelKeys<z.output<typeof timingsSchema>>>>(true);
  assertType<IsExact<ImageResult["images"], OutputImage[]>>(true);
  assertType<IsExact<keyof ImageResult, "images" | "timings" | "model" | "requestId">>(true);
  assertType<IsExact<GenerationProgress, CamelKeys<z.output<typeof progressEventSchema>>>>(true);
  assertType<IsExact<ModelDescription, CamelKeys<z.output<typeof modelInfoSchema>>>>(true);
  assertType<IsExact<HealthStatus, z.output<typeof healthResponseSchema> & { ready: boolean }>>(true);
});

Deno.test("ApiErrorType is the error envelope's type", () => {
  assertType<IsExact<ApiErrorType, ErrorResponse["error"]["type"]>>(true);
});

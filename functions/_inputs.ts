/**
 * Reading request bodies: JSON for both endpoints, and the three forms of a super-resolution image, PNG or JPEG (multipart
 * field `image`, raw image body with parameters in the query string, base64 / data URL in JSON).
 *
 * @module
 */
import { superResolutionJsonRequestSchema } from "@ldm/sdk/schemas";
import { ApiError, fromZodError, invalidParameter, unprocessable } from "./errors.ts";

/** The media type of a `Content-Type` header, lowercased, without parameters. */
export function mediaType(header: string | null | undefined): string {
  return (header ?? "").split(";")[0]!.trim().toLowerCase();
}

function unsupported(got: string, expected: string): ApiError {
  return new ApiError(
    415,
    "invalid_request_error",
    "unsupported_media_type",
    `Content-Type ${got === "" ? "(none)" : got} is not supported here: send ${expected}`,
  );
}

/** Parses a JSON body; 415 when the Content-Type is not JSON, 400 when the text is not JSON. */
export async function readJson(req: Request): Promise<unknown> {
  const type = mediaType(req.headers.get("content-type"));
  if (type !== "application/json" && !type.endsWith("+json")) throw unsupported(type, "application/json");
  const text = await req.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(
      400,
      "invalid_request_error",
      "invalid_json",
      `The body is not valid JSON: ${e instanceof Error ? e.message : e}`,
    );
  }
}

/** Raw image types accepted as a request body. */
export const RAW_IMAGE_TYPES: readonly string[] = ["image/png", "image/jpeg"];

const NUMERIC_PARAMS = new Set(["num_inference_steps", "eta", "seed", "tile_size"]);

/** Form fields and query parameters arrive as text: numbers are converted so the schema checks their values. */
function coerce(fields: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    const t = v.trim();
    out[k] = NUMERIC_PARAMS.has(k) && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t) ? Number(t) : v;
  }
  return out;
}

/** Decodes base64 (standard or URL alphabet) or a base64 `data:` URL; 422 naming `image` otherwise. */
export function decodeImageString(text: string): Uint8Array<ArrayBuffer> {
  let payload = text.trim();
  if (payload.startsWith("data:")) {
    const comma = payload.indexOf(",");
    const header = comma < 0 ? payload : payload.slice(5, comma);
    if (comma < 0 || !/;base64$/i.test(header)) {
      throw unprocessable("image", "image must be a base64 data: URL (data:image/png;base64,...)", "invalid_image");
    }
    payload = payload.slice(comma + 1);
  }
  payload = payload.replace(/\s+/g, "");
  for (const alphabet of ["base64", "base64url"] as const) {
    try {
      return Uint8Array.fromBase64(payload, { alphabet });
    } catch {
      // try the other alphabet
    }
  }
  throw unprocessable("image", "image is not valid base64", "invalid_image");
}

/** A super-resolution request's image and its not-yet-validated parameters. */
export interface SuperResolutionInput {
  image: Uint8Array<ArrayBuffer>;
  params: Record<string, unknown>;
  /** How the image arrived. */
  source: "multipart" | "raw" | "json";
}

/**
 * Reads a super-resolution request in any of its three forms.
 * @throws {ApiError} 415 for other Content-Types, 400 for unparsable bodies or a missing image, 422 for undecodable
 * base64.
 */
export async function readSuperResolutionInput(req: Request, query: Record<string, string>): Promise<
  SuperResolutionInput
> {
  const type = mediaType(req.headers.get("content-type"));
  if (type === "multipart/form-data") {
    let form: FormData;
    try {
      form = await req.formData();
    } catch (e) {
      throw new ApiError(
        400,
        "invalid_request_error",
        "invalid_body",
        `The multipart body could not be parsed: ${e instanceof Error ? e.message : e}`,
      );
    }
    const file = form.get("image");
    if (file === null) throw invalidParameter("image", "image is required: send the image as the form field 'image'");
    const image = typeof file === "string" ? decodeImageString(file) : new Uint8Array(await file.arrayBuffer());
    const fields: Record<string, string> = {};
    for (const [k, v] of form.entries()) {
      if (k === "image") continue;
      if (typeof v !== "string") throw invalidParameter(k, `${k} must be a text field, not a file`);
      fields[k] = v;
    }
    return { image, params: coerce(fields), source: "multipart" };
  }
  if (type.startsWith("image/")) {
    if (!RAW_IMAGE_TYPES.includes(type)) throw unsupported(type, RAW_IMAGE_TYPES.join(", "));
    const image = new Uint8Array(await req.arrayBuffer());
    return { image, params: coerce(query), source: "raw" };
  }
  if (type === "application/json" || type.endsWith("+json")) {
    const body = await readJson(req);
    const parsed = superResolutionJsonRequestSchema.safeParse(body);
    if (!parsed.success) throw fromZodError(parsed.error, body);
    const { image, ...params } = body as Record<string, unknown>;
    return { image: decodeImageString(image as string), params, source: "json" };
  }
  throw unsupported(type, `multipart/form-data, ${RAW_IMAGE_TYPES.join(", ")} or application/json`);
}

/**
 * Content negotiation for the generation endpoints: JSON, server-sent events, or the image bytes alone.
 *
 * @module
 */
import { OUTPUT_CONTENT_TYPES, type OutputFormat } from "@ldm/sdk/schemas";

/** One media range of an `Accept` header. */
interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

function parseAccept(header: string | null | undefined): MediaRange[] {
  if (!header || header.trim() === "") return [{ type: "*", subtype: "*", q: 1 }];
  const out: MediaRange[] = [];
  for (const part of header.split(",")) {
    const [range, ...params] = part.trim().split(";");
    const [type, subtype] = (range ?? "").trim().toLowerCase().split("/");
    if (!type || !subtype) continue;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split("=");
      if (k?.trim().toLowerCase() === "q") {
        const n = Number(v);
        q = Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 1;
      }
    }
    out.push({ type, subtype, q });
  }
  return out.length > 0 ? out : [{ type: "*", subtype: "*", q: 1 }];
}

/** The quality the header gives `mediaType`: the most specific matching range wins (RFC 9110 §12.5.1). */
function quality(ranges: readonly MediaRange[], mediaType: string): number {
  const [type, subtype] = mediaType.split("/");
  let best = -1;
  let q = 0;
  for (const r of ranges) {
    const specificity = r.type === type && r.subtype === subtype
      ? 2
      : r.type === type && r.subtype === "*"
      ? 1
      : r.type === "*" && r.subtype === "*"
      ? 0
      : -1;
    if (specificity > best) {
      best = specificity;
      q = r.q;
    }
  }
  return best < 0 ? 0 : q;
}

/** How to answer a generation request. */
export type ResponseMode =
  | { kind: "json" }
  | { kind: "sse" }
  | { kind: "image"; format: OutputFormat };

/** Why no response form fits. */
export class NotAcceptableError extends Error {
  /** The request field at fault, if any. */
  readonly param: string | null;
  /** Builds the error. */
  constructor(message: string, param: string | null = null) {
    super(message);
    this.name = "NotAcceptableError";
    this.param = param;
  }
}

const IMAGE_FORMATS = Object.keys(OUTPUT_CONTENT_TYPES) as OutputFormat[];

/**
 * Chooses the response form from `Accept`, the requested `output_format` and the number of images.
 *
 * - `text/event-stream` accepted (and preferred over JSON) → progress events then the result.
 * - An image type preferred over JSON and exactly one image → the bytes alone, in `output_format` if given (it must
 *   be acceptable) or else the most preferred accepted image type.
 * - Otherwise JSON (also the answer to no `Accept`, or `*` / `*`).
 *
 * @throws {NotAcceptableError} when nothing acceptable can be produced (e.g. only `image/png` accepted but two
 * images asked for).
 */
export function negotiate(
  acceptHeader: string | null | undefined,
  { outputFormat, imageCount }: { outputFormat: OutputFormat | undefined; imageCount: number },
): ResponseMode {
  const ranges = parseAccept(acceptHeader);
  const qJson = quality(ranges, "application/json");
  const qSse = quality(ranges, "text/event-stream");
  const imageQs = IMAGE_FORMATS.map((f) => ({ format: f, q: quality(ranges, OUTPUT_CONTENT_TYPES[f]) }));
  // An image is chosen only when an image type is named: `*/*` alone means JSON.
  const namesImage = ranges.some((r) => r.type === "image" && r.q > 0);
  const explicitSse = ranges.some((r) => r.type === "text" && r.subtype === "event-stream" && r.q > 0);

  if (explicitSse && qSse >= qJson) return { kind: "sse" };

  let bestImage: { format: OutputFormat; q: number } | null = null;
  if (namesImage) {
    const candidates = outputFormat ? imageQs.filter((c) => c.format === outputFormat) : imageQs;
    for (const c of candidates) if (c.q > 0 && (!bestImage || c.q > bestImage.q)) bestImage = c;
  }
  if (bestImage && bestImage.q > qJson) {
    if (imageCount === 1) return { kind: "image", format: bestImage.format };
    if (qJson <= 0) {
      throw new NotAcceptableError(
        `Accept names only image types, but the request asks for ${imageCount} images: ask for one image or ` +
          "accept application/json",
      );
    }
  }
  if (qJson > 0) return { kind: "json" };
  if (namesImage && outputFormat && !bestImage) {
    throw new NotAcceptableError(
      `output_format ${outputFormat} (${OUTPUT_CONTENT_TYPES[outputFormat]}) is not acceptable to this Accept header`,
      "output_format",
    );
  }
  throw new NotAcceptableError(
    "Acceptable responses are application/json, text/event-stream and image/png, image/jpeg or image/webp",
  );
}

/**
 * Bearer-key authentication, compared in constant time.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/**
 * Checks a presented key against the configured ones. Both sides are hashed to 32 bytes first, so the comparison
 * takes the same time whatever the lengths, and every configured key is compared (no early exit), so timing says
 * nothing about which key nearly matched.
 */
export class KeyChecker {
  readonly #digests: Promise<Uint8Array[]>;
  /** Prepares the digests of the accepted keys. */
  constructor(keys: readonly string[]) {
    this.#digests = Promise.all(keys.map(sha256));
  }
  /** Whether `presented` is one of the accepted keys. */
  async matches(presented: string): Promise<boolean> {
    const [digests, candidate] = await Promise.all([this.#digests, sha256(presented)]);
    let found = 0;
    for (const d of digests) {
      let diff = 0;
      for (let i = 0; i < d.length; i++) diff |= d[i]! ^ candidate[i]!;
      found |= diff === 0 ? 1 : 0;
    }
    return found === 1;
  }
}

/**
 * Middleware requiring `Authorization: Bearer <key>` with one of `keys`; 401 (`WWW-Authenticate: Bearer`)
 * otherwise. With no keys it lets everything through (anonymous access, which the config only allows on loopback
 * or when asked for explicitly).
 */
export function bearerAuth(keys: readonly string[]): MiddlewareHandler {
  const checker = new KeyChecker(keys);
  return async function bearerAuth(c, next) {
    if (keys.length === 0) return await next();
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const challenge = { "WWW-Authenticate": 'Bearer realm="ldm"' };
    if (!match) {
      throw new ApiError(
        401,
        "authentication_error",
        "missing_api_key",
        "Send an API key as `Authorization: Bearer <key>`",
        {
          headers: challenge,
        },
      );
    }
    if (!(await checker.matches(match[1]!))) {
      throw new ApiError(401, "authentication_error", "invalid_api_key", "The API key is not valid", {
        headers: { "WWW-Authenticate": 'Bearer realm="ldm", error="invalid_token"' },
      });
    }
    await next();
  };
}

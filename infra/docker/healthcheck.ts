/**
 * The image's `HEALTHCHECK`: `GET /healthz` on this container's own port, exit 0 on HTTP 200 and 1 otherwise.
 * The images carry no curl or wget; Deno is already there. Run with `--no-config` so it reads no workspace:
 *
 * ```sh
 * deno run --no-config --allow-net --allow-env=HOST,PORT infra/docker/healthcheck.ts
 * ```
 *
 * The port comes from `PORT` (default 8000, as the server's); the address is `HOST` unless that is a wildcard
 * (0.0.0.0, ::) or empty, in which case the loopback address is used.
 *
 * @module
 */

/** The URL of `/healthz` for the given environment. */
export function healthzUrl(env: { HOST?: string | undefined; PORT?: string | undefined }): URL {
  const portText = env.PORT?.trim() || "8000";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new RangeError(`PORT must be an integer in [1, 65535] for the health check: got ${JSON.stringify(portText)}`);
  }
  const host = env.HOST?.trim() ?? "";
  const target = host === "" || host === "0.0.0.0" || host === "::" || host === "[::]"
    ? "127.0.0.1"
    : host.includes(":") && !host.startsWith("[")
    ? `[${host}]`
    : host;
  return new URL(`http://${target}:${port}/healthz`);
}

/**
 * Requests `/healthz` once.
 *
 * @returns the process exit code: 0 when the server answered 200, 1 otherwise.
 */
export async function check(
  url: URL,
  timeoutMs = 4000,
  log: (line: string) => void = () => {},
): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (res.status === 200) return 0;
    log(`healthcheck: ${url} answered ${res.status}`);
    return 1;
  } catch (e) {
    log(`healthcheck: ${url} failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (import.meta.main) {
  const write = (line: string) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
  let code = 1;
  try {
    code = await check(healthzUrl({ HOST: Deno.env.get("HOST"), PORT: Deno.env.get("PORT") }), 4000, write);
  } catch (e) {
    write(`healthcheck: ${e instanceof Error ? e.message : String(e)}`);
  }
  Deno.exit(code);
}

/**
 * The server side of the SDK suites: the real Hono app of `functions/` in front of the fake pipeline runner, either
 * in process (the SDK's injected `fetch` calls `app.request`) or listening on loopback (`startServer`).
 *
 * @module
 */
import { Image } from "imagescript";
import { createApp, GenerationQueue, loadConfig, silentLogger, startServer } from "@ldm/functions";
import type { RunningServer, ServerConfig } from "@ldm/functions";
import { FakeRunner, type FakeRunnerOptions } from "@ldm/functions/testing";
import type { FetchLike } from "@ldm/sdk";

/** The one API key the test servers accept. */
export const API_KEY = "sdk-test-key-0123456789abcdef";

/** Configuration overrides; `queue` and `limits` are merged into the defaults field by field. */
export type ConfigOverrides = Partial<Omit<ServerConfig, "queue" | "limits">> & {
  queue?: Partial<ServerConfig["queue"]>;
  limits?: Partial<ServerConfig["limits"]>;
};

/** A server configuration: the defaults with {@linkcode API_KEY}, one generation slot, no waiting room, no batching
 * and up to 1000 steps (so a generation can be kept running long enough to abort it). */
export function testConfig(overrides: ConfigOverrides = {}): ServerConfig {
  const base = loadConfig({ LDM_API_KEYS: API_KEY, HOST: "127.0.0.1", PORT: "0" });
  return {
    ...base,
    ...overrides,
    queue: { ...base.queue, concurrency: 1, maxQueue: 0, maxBatchImages: 1, ...overrides.queue },
    limits: { ...base.limits, maxSteps: 1000, ...overrides.limits },
  };
}

/** The app in process. */
export interface InProcessServer {
  /** The fake pipelines; `calls` records every run, `state` sets readiness. */
  runner: FakeRunner;
  /** The queue in front of them (`whenIdle()` waits for cancelled work to be gone). */
  queue: GenerationQueue;
  /** A `fetch` that hands the request to the app, as the SDK's `fetch` option. */
  fetch: FetchLike;
  /** Every request the app received: method, URL, headers. */
  requests: Request[];
}

/** Builds the real app around a fake runner, reachable through {@linkcode InProcessServer.fetch}. */
export function inProcessServer(
  { fake = {}, config = {} }: { fake?: FakeRunnerOptions; config?: ConfigOverrides } = {},
): InProcessServer {
  const cfg = testConfig(config);
  const runner = new FakeRunner(fake);
  const queue = new GenerationQueue(runner, cfg.queue);
  let seed = 1000;
  const app = createApp({ runner, config: cfg, queue, randomSeed: () => seed++ });
  const requests: Request[] = [];
  const fetch: FetchLike = (input, init) => {
    requests.push(new Request(input, { method: init.method ?? "GET", headers: init.headers ?? {} }));
    return Promise.resolve(app.request(input, init));
  };
  return { runner, queue, fetch, requests };
}

/** A server listening on 127.0.0.1 with a fake runner. */
export interface LoopbackServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The fake pipelines. */
  runner: FakeRunner;
  /** The running server (its queue, its shutdown). */
  server: RunningServer;
  /** Shuts the server down and waits for it. */
  close(): Promise<void>;
}

/** Starts the real server (`startServer`: `Deno.serve` + the app) on a free loopback port, hosting a fake runner. */
export function loopbackServer(
  { fake = {}, config = {} }: { fake?: FakeRunnerOptions; config?: ConfigOverrides } = {},
): LoopbackServer {
  const runner = new FakeRunner(fake);
  const server = startServer({
    config: testConfig({ shutdownGraceMs: 0, ...config }),
    logger: silentLogger,
    runner,
    handleSignals: false,
  });
  return { url: server.url, runner, server, close: () => server.shutdown("test over") };
}

/** A PNG of `width`×`height`; `noisy` fills it with pseudo-random pixels so it does not compress. */
export async function pngOf(width: number, height: number, noisy = false): Promise<Uint8Array<ArrayBuffer>> {
  const image = new Image(width, height).fill(0x336699ff);
  if (noisy) {
    let x = 12345;
    for (let i = 0; i < image.bitmap.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      if (i % 4 !== 3) image.bitmap[i] = x >>> 24;
    }
  }
  return new Uint8Array(await image.encode());
}

/** Waits until `predicate` holds, polling every 5 ms, for at most `ms`. */
export async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

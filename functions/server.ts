/**
 * Starting and stopping a server process: {@linkcode startServer} wires the configuration, the worker pool, the
 * queue and the app to `Deno.serve`, and shuts down gracefully on SIGTERM/SIGINT; {@linkcode runFromEnv} is what
 * the entry points call.
 *
 * @module
 */
import type { Task } from "@ldm/sdk/schemas";
import { createApp, observeRuns, type ServerState } from "./app.ts";
import { ConfigError, loadConfig, type ServerConfig } from "./config.ts";
import { AbortReason } from "./errors.ts";
import { jsonLogger, type Logger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import type { OnnxRunnerOptions } from "./onnx_runner.ts";
import { type Clock, GenerationQueue, systemClock } from "./queue.ts";
import type { PipelineRunner } from "./runner.ts";
import { WorkerPoolRunner } from "./worker/pool.ts";

/** Options of {@linkcode startServer}. */
export interface StartServerOptions {
  /** Validated configuration. */
  config: ServerConfig;
  /** Where JSON-lines logs go. */
  logger: Logger;
  /**
   * The runner. @default a {@linkcode WorkerPoolRunner} of `config.queue.concurrency` workers hosting
   * `runnerModule` (the ONNX pipelines unless told otherwise), with its encoder workers
   */
  runner?: PipelineRunner;
  /** Runner module for the default worker pool. @default `./onnx_runner.ts` */
  runnerModule?: string | URL;
  /** Options for `runnerModule`'s `createRunner`. @default built from `config` */
  runnerOptions?: unknown;
  /** Install SIGTERM/SIGINT handlers that call `shutdown()`. @default true */
  handleSignals?: boolean;
  /** Timing source of the queue and the app. @default systemClock */
  clock?: Clock;
}

/** A listening server. */
export interface RunningServer {
  /** `http://host:port`. */
  url: string;
  /** The bound port (useful with `PORT=0`). */
  port: number;
  /** Shared shutdown flag. */
  state: ServerState;
  /** The queue in front of the pipelines. */
  queue: GenerationQueue;
  /** The runner. */
  runner: PipelineRunner;
  /** The metrics the app exports. */
  metrics: Metrics;
  /**
   * Graceful shutdown: stop accepting connections, fail readiness, let queued and running work finish for
   * `shutdownGraceMs`, cancel what is left (503), release the sessions. Idempotent.
   */
  shutdown(reason?: string): Promise<void>;
  /** Resolves once shutdown has completed. */
  finished: Promise<void>;
}

/** The runner options the ONNX worker needs, from the configuration. */
export function onnxRunnerOptions(config: ServerConfig): OnnxRunnerOptions {
  return {
    functions: config.functions,
    textToImageModelDir: config.textToImageModelDir,
    superResolutionModelDir: config.superResolutionModelDir,
    executionProviders: config.executionProviders,
    intraOpThreads: config.intraOpThreads,
    maxInputPixels: config.limits.maxInputPixels,
    textEmbeddingCache: config.textEmbeddingCache,
  };
}

/**
 * Starts serving: models load in the background (readiness is 503 until they are loaded), requests are accepted
 * at once.
 *
 * @example Serving the built-in models on a free port
 * ```ts ignore
 * const server = startServer({ config: loadConfig({ PORT: "0" }), logger });
 * await fetch(`${server.url}/healthz`);
 * await server.shutdown();
 * ```
 */
export function startServer(options: StartServerOptions): RunningServer {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  const runner = options.runner ?? new WorkerPoolRunner({
    size: config.queue.concurrency,
    module: options.runnerModule ?? new URL("./onnx_runner.ts", import.meta.url),
    options: options.runnerOptions ?? onnxRunnerOptions(config),
    logger,
    maxInputPixels: config.limits.maxInputPixels,
  });
  const metrics = new Metrics();
  const queue = new GenerationQueue(runner, { ...config.queue, clock, observer: observeRuns(metrics) });
  const state: ServerState = { shuttingDown: false };
  const app = createApp({ runner, config, clock, logger, metrics, queue, state });

  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: () => {},
  }, app.fetch);
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  logger.info("listening", {
    url,
    port: addr.port,
    functions: config.functions,
    concurrency: config.queue.concurrency,
    queue_size: config.queue.maxQueue,
    max_batch_size: config.queue.maxBatchImages,
    execution_providers: config.executionProviders,
    auth: config.apiKeys.length > 0 ? `${config.apiKeys.length} key(s)` : "anonymous",
  });

  const { promise: finished, resolve: done } = Promise.withResolvers<void>();
  let shutdownPromise: Promise<void> | null = null;
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  const onSignal = (signal: Deno.Signal) => () => void shutdown(signal);
  const handlers = new Map(signals.map((s) => [s, onSignal(s)]));
  if (options.handleSignals ?? true) {
    for (const [s, h] of handlers) {
      try {
        Deno.addSignalListener(s, h);
      } catch {
        // SIGTERM cannot be listened to on Windows
      }
    }
  }

  function shutdown(reason = "shutdown requested"): Promise<void> {
    shutdownPromise ??= (async () => {
      const t0 = clock.now();
      logger.info("shutting down", { reason, queued: queue.depth, running: queue.running });
      state.shuttingDown = true;
      queue.close();
      const serverDone = server.shutdown();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<"grace">((
        resolve,
      ) => (timer = setTimeout(() => resolve("grace"), config.shutdownGraceMs)));
      const outcome = await Promise.race([queue.whenIdle().then(() => "idle" as const), grace]);
      clearTimeout(timer);
      if (outcome === "grace") {
        logger.warn("grace period over: cancelling remaining work", { queued: queue.depth, running: queue.running });
        queue.cancelAll(new AbortReason("shutdown", "The server is shutting down"));
      }
      // Responses of cancelled work go out at once; don't wait forever on a client that stopped reading.
      let flushTimer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([serverDone, new Promise((r) => (flushTimer = setTimeout(r, 2000)))]);
      clearTimeout(flushTimer);
      await runner.close();
      for (const [s, h] of handlers) {
        try {
          Deno.removeSignalListener(s, h);
        } catch {
          // not installed
        }
      }
      logger.info("shut down", { duration_ms: Math.round(clock.now() - t0) });
      done();
    })();
    return shutdownPromise;
  }

  return { url, port: addr.port, state, queue, runner, metrics, shutdown, finished };
}

/** Options of {@linkcode runFromEnv}. */
export interface RunFromEnvOptions {
  /** Serve exactly these functions (per-function entry points). */
  functions?: readonly Task[];
  /** Runner module for the worker pool (tests use the fake). */
  runnerModule?: string | URL;
  /** Options for that module. */
  runnerOptions?: unknown;
}

function writeLine(stream: { writeSync(p: Uint8Array): number }, line: string): void {
  const bytes = new TextEncoder().encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += stream.writeSync(bytes.subarray(off));
}

/**
 * The entry points' body: validate the environment once (exit 1 with every problem on stderr if it is invalid),
 * serve, and exit 0 after a graceful shutdown on SIGTERM/SIGINT.
 */
export async function runFromEnv(options: RunFromEnvOptions = {}): Promise<never> {
  let config: ServerConfig;
  try {
    config = loadConfig(Deno.env.toObject(), options.functions ? { functions: options.functions } : {});
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    writeLine(Deno.stderr, e.message);
    Deno.exit(1);
  }
  const logger = jsonLogger({ level: config.logLevel, write: (line) => writeLine(Deno.stdout, line) });
  const server = startServer({
    config,
    logger,
    ...(options.runnerModule ? { runnerModule: options.runnerModule } : {}),
    ...(options.runnerOptions ? { runnerOptions: options.runnerOptions } : {}),
  });
  await server.finished;
  Deno.exit(0);
}

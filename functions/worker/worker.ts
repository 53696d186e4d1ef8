/**
 * The pipeline worker: hosts one runner module (the ONNX pipelines in production) off the server's event loop,
 * because onnxruntime-node's `session.run` blocks the thread it runs on. Progress goes out and cancellation comes in
 * as messages; cancellation takes effect at the runner's next step. When the pool has encoder workers, the worker
 * sends the images back unencoded and is free for the next call at once.
 *
 * @module
 */
import { pixelBuffers } from "../codec.ts";
import type { LoadedRunner, RunOptions, RunResult } from "../runner.ts";
import { toRunnerError } from "../runner.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(message, transfer);
}

function plain(fields: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = v instanceof Error ? v.message : typeof v === "function" || typeof v === "symbol" ? String(v) : v;
  }
  return out;
}

const logger = {
  debug: (msg: string, fields?: Record<string, unknown>) =>
    post({ type: "log", level: "debug", msg, fields: plain(fields) }),
  info: (msg: string, fields?: Record<string, unknown>) =>
    post({ type: "log", level: "info", msg, fields: plain(fields) }),
  warn: (msg: string, fields?: Record<string, unknown>) =>
    post({ type: "log", level: "warn", msg, fields: plain(fields) }),
};

let runner: LoadedRunner | null = null;
const calls = new Map<number, { call: AbortController; jobs: AbortController[] }>();

function transferables(results: (RunResult | null)[]): Transferable[] {
  return results.flatMap((r) => r?.images.map((i) => i.data.buffer) ?? []);
}

async function run(msg: Extract<ToWorker, { type: "run" }>): Promise<void> {
  const call = new AbortController();
  const jobs = msg.task === "text-to-image" ? msg.jobs.map(() => new AbortController()) : [];
  calls.set(msg.id, { call, jobs });
  const options: RunOptions = {
    signal: call.signal,
    onProgress: (step, total) => post({ type: "progress", id: msg.id, step, total }),
    ...(jobs.length > 0 ? { jobSignals: jobs.map((j) => j.signal) } : {}),
  };
  try {
    if (!runner) throw new Error("The worker received a run before its runner loaded");
    if (msg.raw && msg.task === "text-to-image" && runner.generateTextToImage) {
      const results = await runner.generateTextToImage(msg.jobs, options);
      post({ type: "generated", id: msg.id, results }, pixelBuffers(results));
    } else if (msg.raw && msg.task === "super-resolution" && runner.generateSuperResolution) {
      const results = [await runner.generateSuperResolution(msg.job, options)];
      post({ type: "generated", id: msg.id, results }, pixelBuffers(results));
    } else {
      const results = msg.task === "text-to-image"
        ? await runner.textToImage(msg.jobs, options)
        : [await runner.superResolution(msg.job, options)];
      post({ type: "result", id: msg.id, results }, transferables(results));
    }
  } catch (e) {
    const err = toRunnerError(e, call.signal);
    post({ type: "error", id: msg.id, error: { code: err.code, message: err.message, param: err.param } });
  } finally {
    calls.delete(msg.id);
  }
}

scope.onmessage = async (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  switch (msg.type) {
    case "init":
      try {
        const mod = await import(msg.module) as {
          createRunner?: (options: unknown, hooks: { logger: typeof logger }) => Promise<LoadedRunner>;
        };
        if (typeof mod.createRunner !== "function") {
          throw new TypeError(`${msg.module} does not export createRunner(options)`);
        }
        runner = await mod.createRunner(msg.options, { logger });
        post({ type: "ready", models: runner.models() });
      } catch (err) {
        post({ type: "init_error", message: err instanceof Error ? err.message : String(err) });
      }
      break;
    case "run":
      await run(msg);
      break;
    case "cancel": {
      const c = calls.get(msg.id);
      if (!c) break;
      if (msg.job === undefined) c.call.abort(new DOMException(msg.reason, "AbortError"));
      else c.jobs[msg.job]?.abort(new DOMException(msg.reason, "AbortError"));
      break;
    }
    case "close":
      try {
        await runner?.close();
      } finally {
        runner = null;
        post({ type: "closed" });
        scope.close();
      }
      break;
  }
};

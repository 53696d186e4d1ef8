/**
 * `deno task loadtest`: a bounded load test on loopback. Starts the combined server on the built-in models (or
 * targets `--url`, which must be a loopback address), runs `--clients` concurrent clients until `--requests`
 * requests are done, and reports throughput, p50/p95 latency, errors by status, and resident memory over the run.
 * It checks that every request was answered exactly once (by its `X-Request-Id`, on the client and, in-process, in
 * the server's access log) and exits 1 when one was lost, answered twice or failed.
 *
 * Usage: `deno task loadtest [--clients 4] [--requests 40] [--steps 4] [--task mixed|text-to-image|super-resolution]
 * [--url http://127.0.0.1:8000] [--api-key KEY]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Image } from "imagescript";
import { loadConfig } from "./config.ts";
import { jsonLogger } from "./logger.ts";
import { type RunningServer, startServer } from "./server.ts";
import { isLoopbackHost } from "./config.ts";

/** Options of {@linkcode runLoadTest}. */
export interface LoadTestOptions {
  /** Concurrent clients. */
  clients: number;
  /** Requests in all. */
  requests: number;
  /** Denoising steps per request. */
  steps: number;
  /** Which endpoint(s) to call. */
  task: "mixed" | "text-to-image" | "super-resolution";
  /** Base URL of a running server (loopback only); an in-process server on the built-in models when absent. */
  url?: string;
  /** Bearer key for `url`. */
  apiKey?: string;
}

/** What {@linkcode runLoadTest} measured. */
export interface LoadTestReport {
  requests: number;
  ok: number;
  /** Responses by HTTP status (transport failures under `"network"`). */
  statuses: Record<string, number>;
  /** Request ids never answered, answered twice, or answered with another id. */
  lost: string[];
  duplicated: string[];
  mismatched: string[];
  wallSeconds: number;
  throughput: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Resident set size (MiB) after warm-up, at its peak and at the end (in-process server only). */
  rss: { startMiB: number; peakMiB: number; endMiB: number } | null;
  /** Requests that shared a pipeline call with others (in-process server only). */
  batchedRequests: number | null;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** RSS growth from after warm-up to the end that still counts as flat. */
const MEMORY_GROWTH_BUDGET_MIB = 32;

const mib = () => Deno.memoryUsage().rss / (1024 * 1024);

/** Runs the load test and returns its report (see the module doc). */
export async function runLoadTest(options: LoadTestOptions): Promise<LoadTestReport> {
  let server: RunningServer | null = null;
  const serverAnswers = new Map<string, number>();
  let base = options.url;
  if (base) {
    const host = new URL(base).hostname.replace(/^\[|\]$/g, "");
    if (!isLoopbackHost(host)) throw new RangeError(`--url must be a loopback address: got ${base}`);
  } else {
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", LDM_LOG_LEVEL: "info", ...Deno.env.toObject() });
    const logger = jsonLogger({
      level: "info",
      write: (line) => {
        const entry = JSON.parse(line);
        if (entry.msg === "request" && typeof entry.request_id === "string" && entry.request_id.startsWith("lt-")) {
          serverAnswers.set(entry.request_id, (serverAnswers.get(entry.request_id) ?? 0) + 1);
        }
      },
    });
    server = startServer({ config: { ...config, port: 0, host: "127.0.0.1" }, logger, handleSignals: false });
    while (server.runner.status().state === "loading") await new Promise((r) => setTimeout(r, 20));
    const status = server.runner.status();
    if (status.state !== "ready") {
      throw new Error(`The models did not load: ${status.state === "failed" ? status.reason : ""}`);
    }
    base = server.url;
  }

  const input = new Uint8Array(await new Image(64, 64).fill(0x3366ccff).encode());
  const auth: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  const prompts = [
    "a big red circle on a blue background",
    "a small green square at the top left on a white background",
  ];
  const request = (n: number, id: string): Promise<Response> => {
    const sr = options.task === "super-resolution" || (options.task === "mixed" && n % 4 === 3);
    if (sr) {
      return fetch(`${base}/v1/super-resolution?num_inference_steps=${options.steps}&seed=${n}`, {
        method: "POST",
        headers: { "content-type": "image/png", "x-request-id": id, ...auth },
        body: input,
      });
    }
    return fetch(`${base}/v1/text-to-image`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": id, ...auth },
      body: JSON.stringify({ prompt: prompts[n % prompts.length], num_inference_steps: options.steps, seed: n }),
    });
  };

  // Warm-up with the same concurrency (sessions, onnxruntime's arenas for every batch size), not measured.
  let warm = 0;
  const warmups = options.clients * 3;
  await Promise.all(Array.from({ length: options.clients }, async () => {
    while (warm < warmups) {
      const n = warm++;
      await (await request(n, `warmup-${n}`)).arrayBuffer();
    }
  }));

  const answers = new Map<string, number>();
  const statuses: Record<string, number> = {};
  const mismatched: string[] = [];
  const latencies: number[] = [];
  let next = 0;
  const rssStart = server ? mib() : 0;
  let rssPeak = rssStart;
  const sampler = server ? setInterval(() => (rssPeak = Math.max(rssPeak, mib())), 100) : undefined;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: options.clients }, async () => {
    while (next < options.requests) {
      const n = next++;
      const id = `lt-${n}`;
      const start = performance.now();
      try {
        const res = await request(n, id);
        await res.arrayBuffer();
        latencies.push(performance.now() - start);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.headers.get("x-request-id") !== id) mismatched.push(id);
        answers.set(id, (answers.get(id) ?? 0) + 1);
      } catch {
        statuses.network = (statuses.network ?? 0) + 1;
      }
    }
  }));
  const wallSeconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const rssEnd = server ? mib() : 0;

  const ids = Array.from({ length: options.requests }, (_, n) => `lt-${n}`);
  const lost = ids.filter((id) => !answers.has(id) || (server !== null && !serverAnswers.has(id)));
  const duplicated = ids.filter((id) => (answers.get(id) ?? 0) > 1 || (serverAnswers.get(id) ?? 0) > 1);
  const batched = server?.metrics.batchedRequests.get({ task: "text-to-image" }) ?? null;
  await server?.shutdown("load test done");

  latencies.sort((a, b) => a - b);
  return {
    requests: options.requests,
    ok: statuses["200"] ?? 0,
    statuses,
    lost,
    duplicated,
    mismatched,
    wallSeconds,
    throughput: latencies.length / wallSeconds,
    p50Ms: quantile(latencies, 0.5),
    p95Ms: quantile(latencies, 0.95),
    maxMs: latencies.at(-1) ?? NaN,
    rss: server ? { startMiB: rssStart, peakMiB: rssPeak, endMiB: rssEnd } : null,
    batchedRequests: batched,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      clients: { type: "string", default: "4" },
      requests: { type: "string", default: "40" },
      steps: { type: "string", default: "4" },
      task: { type: "string", default: "mixed" },
      url: { type: "string" },
      "api-key": { type: "string" },
    },
  });
  const int = (name: string, v: string, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      console.error(`--${name} must be an integer in [1, ${max}]: got ${v}`);
      Deno.exit(2);
    }
    return n;
  };
  const task = values.task;
  if (task !== "mixed" && task !== "text-to-image" && task !== "super-resolution") {
    console.error(`--task must be mixed, text-to-image or super-resolution: got ${task}`);
    Deno.exit(2);
  }
  const report = await runLoadTest({
    clients: int("clients", values.clients, 256),
    requests: int("requests", values.requests, 100_000),
    steps: int("steps", values.steps, 1000),
    task,
    ...(values.url ? { url: values.url } : {}),
    ...(values["api-key"] ? { apiKey: values["api-key"] } : {}),
  });
  const f = (n: number) => n.toFixed(1);
  console.log(`requests     ${report.requests} (${report.ok} ok) by status ${JSON.stringify(report.statuses)}`);
  console.log(`throughput   ${report.throughput.toFixed(2)} req/s over ${f(report.wallSeconds)} s`);
  console.log(`latency      p50 ${f(report.p50Ms)} ms, p95 ${f(report.p95Ms)} ms, max ${f(report.maxMs)} ms`);
  if (report.rss) {
    console.log(
      `memory (RSS) ${f(report.rss.startMiB)} MiB after warm-up, peak ${f(report.rss.peakMiB)}, end ${
        f(report.rss.endMiB)
      } ` +
        `(${report.rss.endMiB - report.rss.startMiB >= 0 ? "+" : ""}${f(report.rss.endMiB - report.rss.startMiB)} MiB)`,
    );
  }
  if (report.batchedRequests !== null) {
    console.log(`batched      ${report.batchedRequests} text-to-image requests shared a call`);
  }
  console.log(
    `integrity    lost ${report.lost.length}, answered twice ${report.duplicated.length}, wrong id ${report.mismatched.length}`,
  );
  const growth = report.rss ? report.rss.endMiB - report.rss.startMiB : 0;
  const flat = growth <= MEMORY_GROWTH_BUDGET_MIB;
  if (report.rss) console.log(`memory flat  ${flat ? "yes" : "NO"} (budget +${MEMORY_GROWTH_BUDGET_MIB} MiB)`);
  const failed = report.lost.length + report.duplicated.length + report.mismatched.length > 0 ||
    report.ok !== report.requests || !flat;
  Deno.exit(failed ? 1 : 0);
}

/**
 * The functions against a real server on 127.0.0.1: worker-hosted (fake) pipelines whose steps block their thread
 * like onnxruntime-node does, real sockets, real disconnects, real signals.
 */
import assert from "node:assert/strict";
import { errorResponseSchema, imageResponseSchema } from "@ldm/sdk/schemas";
import { loadConfig, type ServerConfig } from "../functions/config.ts";
import { silentLogger } from "../functions/logger.ts";
import { type RunningServer, startServer } from "../functions/server.ts";
import type { FakeRunnerOptions } from "../functions/testing/fake_runner.ts";

const FAKE = new URL("../functions/testing/fake_runner.ts", import.meta.url);

async function start(fake: FakeRunnerOptions, env: Record<string, string> = {}): Promise<RunningServer> {
  const config: ServerConfig = loadConfig({ PORT: "0", HOST: "127.0.0.1", ...env });
  const server = startServer({
    config,
    logger: silentLogger,
    runnerModule: FAKE,
    runnerOptions: fake,
    handleSignals: false,
  });
  while (server.runner.status().state === "loading") await new Promise((r) => setTimeout(r, 5));
  return server;
}

function t2i(server: RunningServer, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  return fetch(`${server.url}/v1/text-to-image`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

/** Reads server-sent events as they arrive. */
async function* events(res: Response): AsyncGenerator<{ event: string; data: unknown }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = block.split("\n").filter((l) => l && !l.startsWith(":"));
        if (lines.length === 0) continue;
        const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message";
        const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        yield { event, data: JSON.parse(data) };
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

async function metric(server: RunningServer, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = pattern.exec(text);
  return m ? Number(m[1]) : 0;
}

Deno.test("server streams progress events over a real socket, then the result", async () => {
  const server = await start({ blockMs: 5 });
  try {
    const res = await t2i(server, { prompt: "a", num_inference_steps: 4, seed: 5 }, { accept: "text/event-stream" });
    assert.equal(res.status, 200);
    const seen: string[] = [];
    let result: unknown;
    for await (const e of events(res)) {
      seen.push(e.event);
      if (e.event === "result") result = e.data;
    }
    assert.deepEqual(seen, ["progress", "progress", "progress", "progress", "result"]);
    assert.equal(imageResponseSchema.parse(result).images[0]!.seed, 5);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server answers /healthz and /readyz while a worker's steps block its thread", async () => {
  const server = await start({ blockMs: 150 });
  try {
    let settled = false;
    const generation = t2i(server, { prompt: "a", num_inference_steps: 6 }).then(async (r) => {
      await r.body?.cancel();
      settled = true;
      return r.status;
    });
    // Wait until the generation is running, then probe.
    while ((await metric(server, /^ldm_generations_in_flight (\d+)$/m)) === 0) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const health = await fetch(`${server.url}/healthz`);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(health.status, 200);
    assert.equal(ready.status, 200);
    await health.body?.cancel();
    await ready.body?.cancel();
    assert.equal(settled, false, "the probes were answered before the generation finished");
    assert.equal(await generation, 200);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server answers 429 with Retry-After when the queue is full, and batches compatible waiting requests", async () => {
  const server = await start({ blockMs: 20 }, {
    LDM_CONCURRENCY: "1",
    LDM_QUEUE_SIZE: "3",
    LDM_MAX_BATCH_SIZE: "4",
  });
  try {
    const blocker = t2i(server, { prompt: "blocker", num_inference_steps: 10 });
    while ((await metric(server, /^ldm_generations_in_flight (\d+)$/m)) === 0) {
      await new Promise((r) => setTimeout(r, 2));
    }
    const same = { num_inference_steps: 2, width: 16, height: 16 };
    const queued = [0, 1, 2].map((i) => t2i(server, { prompt: `p${i}`, seed: i, ...same }));
    while ((await metric(server, /^ldm_queue_depth (\d+)$/m)) < 3) await new Promise((r) => setTimeout(r, 2));
    const rejected = await t2i(server, { prompt: "one too many", ...same });
    assert.equal(rejected.status, 429);
    assert.match(rejected.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
    assert.equal(errorResponseSchema.parse(await rejected.json()).error.code, "queue_full");
    assert.equal((await (await blocker).json()).images.length, 1);
    const bodies = await Promise.all(queued.map(async (r) => imageResponseSchema.parse(await (await r).json())));
    assert.deepEqual(bodies.map((b) => b.timings.batch_size), [3, 3, 3]);
    assert.deepEqual(bodies.map((b) => b.images[0]!.seed), [0, 1, 2]);
    assert.equal(await metric(server, /^ldm_batched_requests_total\{task="text-to-image"\} (\d+)$/m), 3);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server cancels the work when the client disconnects, and frees the slot", async () => {
  const server = await start({ blockMs: 20 }, { LDM_CONCURRENCY: "1", LDM_QUEUE_SIZE: "0" });
  try {
    const ac = new AbortController();
    const res = await t2i(
      server,
      { prompt: "a", num_inference_steps: 200 },
      { accept: "text/event-stream" },
      ac.signal,
    );
    for await (const e of events(res)) {
      if (e.event === "progress") break;
    }
    ac.abort();
    await server.queue.whenIdle();
    assert.equal(await metric(server, /^ldm_cancelled_requests_total\{reason="client_disconnect"\} (\d+)$/m), 1);
    assert.equal(
      await metric(server, /^ldm_pipeline_calls_total\{outcome="cancelled",task="text-to-image"\} (\d+)$/m),
      1,
    );
    const steps = await metric(server, /^ldm_denoising_steps_total\{task="text-to-image"\} (\d+)$/m);
    assert.ok(steps >= 1 && steps < 200, `ran ${steps} of 200 steps`);
    // The only slot is free again: with no queue, a busy slot would answer 429.
    const next = await t2i(server, { prompt: "b", num_inference_steps: 1 });
    assert.equal(next.status, 200);
    await next.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("server answers 504 after the request timeout and stops the work", async () => {
  const server = await start({ blockMs: 20 }, { LDM_REQUEST_TIMEOUT_MS: "150", LDM_QUEUE_SIZE: "0" });
  try {
    const res = await t2i(server, { prompt: "a", num_inference_steps: 200 });
    assert.equal(res.status, 504);
    assert.equal(errorResponseSchema.parse(await res.json()).error.code, "timeout");
    await server.queue.whenIdle();
    assert.equal(await metric(server, /^ldm_cancelled_requests_total\{reason="timeout"\} (\d+)$/m), 1);
    const steps = await metric(server, /^ldm_denoising_steps_total\{task="text-to-image"\} (\d+)$/m);
    assert.ok(steps < 200, `ran ${steps} of 200 steps`);
    const next = await t2i(server, { prompt: "b", num_inference_steps: 1 });
    assert.equal(next.status, 200);
    await next.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("server shutdown() lets in-flight work finish, then refuses connections", async () => {
  const server = await start({ blockMs: 20 });
  const inflight = t2i(server, { prompt: "a", num_inference_steps: 10 });
  while ((await metric(server, /^ldm_generations_in_flight (\d+)$/m)) === 0) await new Promise((r) => setTimeout(r, 2));
  const stopping = server.shutdown("test");
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.equal(imageResponseSchema.parse(await res.json()).images.length, 1);
  await stopping;
  await assert.rejects(() => fetch(`${server.url}/healthz`));
  assert.deepEqual(server.runner.status(), { state: "loading" }, "the workers were released");
});

interface Child {
  process: Deno.ChildProcess;
  port: number;
  lines: string[];
  exited: Promise<Deno.CommandStatus>;
}

/** Starts `functions/testing/fake_server_main.ts` (the real entry path with signal handling) and waits for it. */
async function spawnServer(env: Record<string, string>): Promise<Child> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../functions/testing/fake_server_main.ts", import.meta.url).pathname],
    env: { PORT: "0", HOST: "127.0.0.1", ...env },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: string[] = [];
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let port = 0;
  let ready = false;
  const pump = (async () => {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += value;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        const entry = JSON.parse(line);
        if (entry.msg === "listening") port = entry.port;
        if (entry.msg === "pipeline worker ready") ready = true;
      }
    }
  })();
  let exitedEarly = false;
  process.status.then(() => exitedEarly = true);
  while (!(port && ready)) {
    if (exitedEarly) throw new Error(`The server exited before it was ready:\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const exited = (async () => {
    const status = await process.status;
    await pump;
    return status;
  })();
  return { process, port, lines, exited };
}

Deno.test("SIGTERM: the process finishes in-flight work, logs its shutdown and exits 0", async () => {
  const child = await spawnServer({ FAKE_RUNNER_OPTIONS: JSON.stringify({ blockMs: 20 }) });
  const url = `http://127.0.0.1:${child.port}`;
  const inflight = fetch(`${url}/v1/text-to-image`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "a", num_inference_steps: 15 }),
  });
  while (!(await isRunning(url))) await new Promise((r) => setTimeout(r, 5));
  child.process.kill("SIGTERM");
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.equal(imageResponseSchema.parse(await res.json()).images.length, 1);
  const status = await child.exited;
  assert.equal(status.code, 0);
  const msgs = child.lines.map((l) => JSON.parse(l).msg);
  assert.ok(msgs.includes("shutting down") && msgs.includes("shut down"), msgs.join(", "));
});

Deno.test("SIGTERM: work still running after the grace period is cancelled with 503, then the process exits 0", async () => {
  const child = await spawnServer({
    FAKE_RUNNER_OPTIONS: JSON.stringify({ blockMs: 20 }),
    LDM_SHUTDOWN_GRACE_MS: "100",
  });
  const url = `http://127.0.0.1:${child.port}`;
  const inflight = fetch(`${url}/v1/text-to-image`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "a", num_inference_steps: 200 }),
  });
  while (!(await isRunning(url))) await new Promise((r) => setTimeout(r, 5));
  child.process.kill("SIGTERM");
  const res = await inflight;
  assert.equal(res.status, 503);
  assert.equal(errorResponseSchema.parse(await res.json()).error.code, "shutting_down");
  assert.equal((await child.exited).code, 0);
  assert.ok(child.lines.some((l) => JSON.parse(l).msg === "grace period over: cancelling remaining work"));
});

/** Whether the server at `url` has a generation running (false once it stops answering). */
async function isRunning(url: string): Promise<boolean> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    return /^ldm_generations_in_flight [1-9]/m.test(text);
  } catch {
    return false;
  }
}

Deno.test("the entry point refuses to start on a non-loopback HOST without keys: exit 1, every problem on stderr", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../functions/main.ts", import.meta.url).pathname],
    env: {
      HOST: "0.0.0.0",
      PORT: "0",
      LDM_API_KEYS: "",
      LDM_API_KEYS_FILE: "",
      LDM_ALLOW_ANONYMOUS: "false",
      LDM_QUEUE_SIZE: "-1",
    },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.match(stderr, /HOST=0\.0\.0\.0 is not a loopback address and no API keys are configured/);
  assert.match(stderr, /LDM_QUEUE_SIZE must be an integer in \[0, 100000\]: got "-1"/);
});

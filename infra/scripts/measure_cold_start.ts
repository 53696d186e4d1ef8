/**
 * Measures the model-load part of a cold start on this machine: onnxruntime session creation for every graph of a
 * converted repository (default: the two built-in models), and a whole server process from spawn to `/healthz` 200
 * (listening) and to `/readyz` 200 (every session created, in the worker). infra/README.md reports its numbers.
 *
 * ```sh
 * deno run -A infra/scripts/measure_cold_start.ts [--runs 3] [--providers cpu] [MODEL_DIR ...]
 * ```
 *
 * Prints a Markdown table per repository and one for the server. Timings only: nothing is asserted.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadOnnxModel } from "@ldm/core/onnx";
import { builtinModelDir } from "@ldm/models/builtin";
import { readManifest } from "@ldm/models/convert";

/** One graph's load timings. */
export interface GraphTiming {
  file: string;
  bytes: number;
  /** Session creation, milliseconds, one per run. */
  ms: number[];
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Creates (and disposes) a session for every graph of the repository `dir`, `runs` times. */
export async function measureRepository(dir: string, runs: number, providers: string[]): Promise<GraphTiming[]> {
  const manifest = await readManifest(dir);
  const graphs = Object.values(manifest.components).flatMap((c) => Object.values(c.graphs ?? {}));
  const out: GraphTiming[] = [];
  for (const g of graphs) {
    const bytes = Object.entries(manifest.files)
      .filter(([f]) => f === g.file || f === g.externalData)
      .reduce((n, [, f]) => n + f.bytes, 0);
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const model = await loadOnnxModel(`${dir}/${g.file}`, { executionProviders: providers, name: g.file });
      ms.push(performance.now() - t0);
      await model.dispose();
    }
    out.push({ file: g.file, bytes, ms });
  }
  return out;
}

/** Spawns `deno task serve` and returns milliseconds to `/healthz` 200 and to `/readyz` 200. */
export async function measureServer(env: Record<string, string>): Promise<{ healthz: number; readyz: number }> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const key = "cold-start-measurement-key-0123";
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "serve"],
    env: { ...env, PORT: String(port), HOST: "127.0.0.1", LDM_API_KEYS: key, LDM_LOG_LEVEL: "warn" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const until = async (path: string) => {
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        await res.body?.cancel();
        if (res.status === 200) return performance.now() - t0;
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > 600_000) throw new Error(`${path} not 200 after 10 minutes`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    const healthz = await until("/healthz");
    const readyz = await until("/readyz");
    return { healthz, readyz };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { runs: { type: "string", default: "3" }, providers: { type: "string", default: "cpu" } },
  });
  const runs = Number(values.runs);
  const providers = values.providers.split(",");
  const dirs = positionals.length > 0
    ? positionals
    : [builtinModelDir("ldm-text2im-tiny"), builtinModelDir("ldm-super-resolution-tiny")];
  const lines: string[] = [];
  for (const dir of dirs) {
    const timings = await measureRepository(dir, runs, providers);
    lines.push(
      `\n${dir} (${providers.join(",")}, median of ${runs})\n`,
      "| graph | MB | session creation (ms) |",
      "| --- | ---: | ---: |",
    );
    for (const t of timings) lines.push(`| ${t.file} | ${(t.bytes / 1e6).toFixed(1)} | ${median(t.ms).toFixed(0)} |`);
    const total = timings.reduce((n, t) => n + median(t.ms), 0);
    lines.push(`| total | ${(timings.reduce((n, t) => n + t.bytes, 0) / 1e6).toFixed(1)} | ${total.toFixed(0)} |`);
  }
  if (positionals.length === 0) {
    const server: { healthz: number; readyz: number }[] = [];
    for (let i = 0; i < runs; i++) server.push(await measureServer({ LDM_EXECUTION_PROVIDERS: providers.join(",") }));
    lines.push(
      `\ndeno task serve, built-in models (median of ${runs})\n`,
      "| milestone | ms after spawn |",
      "| --- | ---: |",
      `| /healthz 200 (listening) | ${median(server.map((s) => s.healthz)).toFixed(0)} |`,
      `| /readyz 200 (sessions created) | ${median(server.map((s) => s.readyz)).toFixed(0)} |`,
    );
  }
  Deno.stdout.writeSync(new TextEncoder().encode(lines.join("\n") + "\n"));
}

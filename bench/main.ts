/**
 * `deno task bench`: runs every suite, prints a table per suite and writes `bench/results.json`.
 *
 * Usage: `deno task bench [suite ...]` (suite names as listed in `SUITES`; all when none given).
 *
 * @module
 */
import type { BenchSuite } from "./_harness.ts";

/** Suite name → module path (each exports `run(): Promise<BenchSuite>`). */
const SUITES: Record<string, string> = {
  schedulers: "./schedulers.ts",
  functions: "./functions.ts",
  convert: "./convert.ts",
  pipelines: "./pipelines.ts",
  graphs: "./graphs.ts",
};

function formatTable(suite: BenchSuite): string {
  const header = ["measure", "value", "unit", "ratio", "notes"];
  const rows = suite.rows.map((r) => [
    r.name,
    r.value < 10 ? r.value.toPrecision(3) : r.value.toFixed(1),
    r.unit,
    r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}× ${r.baseline ?? ""}`.trim(),
    r.notes ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  return [
    `## ${suite.name}`,
    line(header),
    "| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |",
    ...rows.map(line),
  ].join("\n");
}

const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(SUITES);
const unknown = wanted.filter((w) => !(w in SUITES));
if (unknown.length > 0) {
  console.error(`Unknown suite(s): ${unknown.join(", ")}. Available: ${Object.keys(SUITES).join(", ")}`);
  Deno.exit(2);
}
const results: BenchSuite[] = [];
for (const name of wanted) {
  const mod = await import(new URL(SUITES[name]!, import.meta.url).href) as { run: () => Promise<BenchSuite> };
  const suite = await mod.run();
  results.push(suite);
  console.log(formatTable(suite) + "\n");
}
const machine = {
  os: Deno.build.os,
  arch: Deno.build.arch,
  cpus: navigator.hardwareConcurrency,
  deno: Deno.version.deno,
};
await Deno.writeTextFile(
  new URL("./results.json", import.meta.url),
  JSON.stringify({ date: new Date().toISOString(), machine, suites: results }, null, 2) + "\n",
);
console.log("Wrote bench/results.json");

/**
 * `deno task convert <diffusers-dir> <out-dir> [options]`: converts a diffusers Latent Diffusion pipeline folder into
 * this project's ONNX repository (see models/README.md). Progress goes to stderr, the summary to stdout.
 *
 * Options: `--dtype fp32|fp16` (default fp32), `--components bert,unet,vqvae` (default all), `--variant fp16` (read
 * `*.fp16.safetensors` source weights), `--overwrite`, `--external-data-threshold <bytes>`, `--no-source-hash`,
 * `--quiet`. Speed variants (bench/PERFORMANCE.md; default: the plain, portable graphs): `--optimize-for
 * cpu|webgpu|cuda` (onnxruntime contrib operators of that provider), with `--attention`, `--layer-norm`, `--geglu`,
 * `--group-norm` `fused|plain` and `--upsample subpixel|resize` to override single choices, and `--fixed-size HxW` or
 * `BxHxW` (the UNet's latent size, B = UNet batch = 2 × images with guidance). Ctrl-C stops the conversion and removes the partial output. Exit codes: 0 done, 1 conversion failed,
 * 2 usage error, 130 interrupted.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { convertPipeline, type ConvertResult } from "./convert.ts";
import { type OptimizeOptions, parseFixedSize, resolveOptimizations } from "../onnx/optimize.ts";
import { formatBytes, formatCount, progressRenderer } from "./_progress.ts";

const USAGE = `usage: deno task convert <diffusers-dir> <out-dir> [--dtype fp32|fp16] [--components bert,unet,vqvae]
                         [--variant fp16] [--overwrite] [--external-data-threshold BYTES] [--no-source-hash] [--quiet]
                         [--optimize-for cpu|webgpu|cuda] [--attention fused|plain] [--layer-norm fused|plain]
                         [--geglu fused|plain] [--group-norm fused|plain] [--upsample subpixel|resize]
                         [--fixed-size HxW|BxHxW]`;

/** Fusion flags and the `OptimizeOptions` field each sets. */
const FUSION_FLAGS = {
  attention: "attention",
  "layer-norm": "layerNorm",
  geglu: "geglu",
  "group-norm": "groupNorm",
  upsample: "upsample",
} as const;

/** The summary table printed after a conversion. */
export function summary(result: ConvertResult): string {
  const rows: string[][] = [["component", "class", "graphs", "parameters", "bytes"]];
  for (const [name, c] of Object.entries(result.manifest.components)) {
    const graphs = Object.values(c.graphs ?? {});
    const bytes = Object.entries(result.manifest.files)
      .filter(([f]) => f.startsWith(`${name}/`))
      .reduce((n, [, f]) => n + f.bytes, 0);
    rows.push([
      name,
      c.className,
      c.kind === "converted" ? graphs.map((g) => g.file.split("/").at(-1)!).join(" ") : c.kind,
      c.kind === "converted" ? formatCount(graphs.reduce((n, g) => n + g.parameters, 0)) : "",
      formatBytes(bytes),
    ]);
  }
  rows.push(["total", "", "", formatCount(result.parameters), formatBytes(result.bytes)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  return [
    `${result.outDir} (${result.manifest.pipeline}, ${result.manifest.dtype})`,
    ...lines,
    `done in ${result.seconds.toFixed(1)} s`,
  ].join("\n");
}

/** Where the CLI prints: the summary to `out`, messages to `err` (progress always goes to stderr). */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

/** Runs the CLI with `args`; returns the exit code. */
export async function main(
  args: readonly string[],
  io: CliIO = { out: (t) => console.log(t), err: (t) => console.error(t) },
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        dtype: { type: "string", default: "fp32" },
        components: { type: "string" },
        variant: { type: "string" },
        overwrite: { type: "boolean", default: false },
        "external-data-threshold": { type: "string" },
        "no-source-hash": { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        "optimize-for": { type: "string" },
        attention: { type: "string" },
        "layer-norm": { type: "string" },
        geglu: { type: "string" },
        "group-norm": { type: "string" },
        upsample: { type: "string" },
        "fixed-size": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    io.err(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (positionals.length !== 2) {
    io.err(`expected <diffusers-dir> <out-dir>, got ${positionals.length} arguments\n${USAGE}`);
    return 2;
  }
  const dtype = values.dtype;
  if (dtype !== "fp32" && dtype !== "fp16") {
    io.err(`--dtype must be fp32 or fp16: got ${dtype}\n${USAGE}`);
    return 2;
  }
  let threshold: number | undefined;
  if (values["external-data-threshold"] !== undefined) {
    threshold = Number(values["external-data-threshold"]);
    if (!Number.isSafeInteger(threshold) || threshold <= 0) {
      io.err(`--external-data-threshold must be a positive integer: got ${values["external-data-threshold"]}`);
      return 2;
    }
  }
  let optimize: OptimizeOptions | undefined;
  const fusions = Object.entries(FUSION_FLAGS).filter(([flag]) =>
    values[flag as keyof typeof FUSION_FLAGS] !== undefined
  );
  if (values["optimize-for"] === undefined && fusions.length > 0) {
    io.err(`--${fusions[0]![0]} needs --optimize-for cpu|webgpu|cuda\n${USAGE}`);
    return 2;
  }
  if (values["optimize-for"] !== undefined) {
    const o: Record<string, string> = { target: values["optimize-for"] };
    for (const [flag, field] of fusions) o[field] = values[flag as keyof typeof FUSION_FLAGS] as string;
    try {
      // Validated here so that a bad value is a usage error naming the flag, not a failed conversion.
      resolveOptimizations(o as unknown as OptimizeOptions);
    } catch (e) {
      const flagOf = (field: string) =>
        field === "target" ? "optimize-for" : Object.entries(FUSION_FLAGS).find(([, f]) => f === field)?.[0] ?? field;
      const msg = (e as Error).message.replace(/optimize\.(\w+)/g, (_, f: string) => `--${flagOf(f)}`);
      io.err(`${msg}\n${USAGE}`);
      return 2;
    }
    optimize = o as unknown as OptimizeOptions;
  }
  let fixedSize: { batch?: number; height: number; width: number } | undefined;
  if (values["fixed-size"] !== undefined) {
    try {
      const d = parseFixedSize(values["fixed-size"], "--fixed-size");
      fixedSize = { ...(d.batch !== undefined ? { batch: d.batch } : {}), height: d.height!, width: d.width! };
    } catch (e) {
      io.err(`${(e as Error).message}\n${USAGE}`);
      return 2;
    }
  }
  const components = values.components?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const [src, out] = positionals as [string, string];

  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) Deno.exit(130);
    io.err("\ninterrupted: stopping and removing the partial output (Ctrl-C again to quit at once)");
    controller.abort(new Error("interrupted"));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const enc = new TextEncoder();
  const render = values.quiet ? undefined : progressRenderer((t) => Deno.stderr.writeSync(enc.encode(t)), {
    tty: Deno.stderr.isTerminal(),
  });
  try {
    const result = await convertPipeline(src, out, {
      dtype,
      ...(components ? { components } : {}),
      ...(values.variant ? { variant: values.variant } : {}),
      overwrite: values.overwrite,
      ...(threshold ? { externalDataThreshold: threshold } : {}),
      hashSources: !values["no-source-hash"],
      ...(optimize ? { optimize } : {}),
      ...(fixedSize ? { fixedSize } : {}),
      ...(render ? { onProgress: render } : {}),
      signal: controller.signal,
      logger: {
        info: (msg) => values.quiet || io.err(msg),
        warn: (msg) => io.err(`warning: ${msg}`),
      },
    });
    io.out(summary(result));
    return 0;
  } catch (e) {
    if (controller.signal.aborted) {
      io.err("conversion interrupted; nothing was written to " + out);
      return 130;
    }
    io.err(`\nconversion failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

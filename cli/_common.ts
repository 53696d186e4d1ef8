/**
 * What `generate` and `upscale` share: where the built-in models are, how outputs are named and written, the progress
 * bar, the stderr logger, Ctrl-C, and turning errors into exit codes.
 *
 * @module
 */
import { dirname, extname } from "node:path";
import type { Logger } from "@ldm/core/onnx";
import { parseExecutionProviders } from "@ldm/core/onnx";
import { encodeImage, encodeNpy, imageFormatFromPath, toRgbImages } from "@ldm/core/image";
import { SCHEDULER_NAME_LIST, type SchedulerName, type StepProgress } from "@ldm/core/pipelines";
import type { Tensor } from "@ldm/core/tensor";
import { builtinModelDir } from "@ldm/models/builtin";
import { type FlagSpec, UsageError } from "./_args.ts";

/** The built-in text-to-image model (`models/builtin/ldm-text2im-tiny`). */
export const BUILTIN_TEXT2IM: string = builtinModelDir("ldm-text2im-tiny");
/** The built-in super-resolution model (`models/builtin/ldm-super-resolution-tiny`). */
export const BUILTIN_SUPER_RESOLUTION: string = builtinModelDir("ldm-super-resolution-tiny");

/** Where the CLI writes; injectable so tests capture it. */
export interface CliIo {
  /** Results (written paths). */
  stdout: (text: string) => void;
  /** Progress, warnings, errors. */
  stderr: (text: string) => void;
  /** Whether stderr is a terminal (progress bar redrawn in place when it is). */
  isTerminal: boolean;
}

/** The real process streams. */
export function processIo(): CliIo {
  const enc = new TextEncoder();
  return {
    stdout: (t) => void Deno.stdout.writeSync(enc.encode(t)),
    stderr: (t) => void Deno.stderr.writeSync(enc.encode(t)),
    isTerminal: Deno.stderr.isTerminal(),
  };
}

/** Logs to stderr: warnings always, info/debug with `--verbose`. */
export function stderrLogger(io: CliIo, verbose: boolean): Logger {
  return {
    debug: (msg) => verbose && io.stderr(`debug: ${msg}\n`),
    info: (msg) => verbose && io.stderr(`info: ${msg}\n`),
    warn: (msg) => io.stderr(`warning: ${msg}\n`),
  };
}

/**
 * The flags both commands end their list with: `--model`, `--provider`, `--out`, `--quality`, `--quiet`, `--verbose`,
 * `--help`.
 * @param builtinModel the built-in model's name, for `--model`'s default.
 * @param npyShape the shape of a `.npy` output, e.g. `"[N, H, W, 3]"`, for `--out`.
 */
export function sharedFlags(builtinModel: string, npyShape: string): FlagSpec[] {
  return [
    {
      name: "model",
      type: "string",
      value: "DIR",
      help: `converted model repository (default: built-in ${builtinModel})`,
    },
    {
      name: "provider",
      type: "string",
      value: "LIST",
      help: "execution providers in order, e.g. webgpu,cpu (default cpu)",
    },
    {
      name: "out",
      type: "string",
      value: "FILE",
      required: true,
      help: `output .png, .jpg, .webp, or .npy (float32 ${npyShape} in [0, 1])`,
    },
    { name: "quality", type: "integer", value: "Q", help: "JPEG/WebP quality 1-100 (default 90)" },
    { name: "quiet", type: "boolean", help: "no progress bar" },
    { name: "verbose", type: "boolean", help: "log which execution provider each model got, and timings" },
    { name: "help", type: "boolean", help: "show this help" },
  ];
}

/** `--scheduler`: one of {@linkcode SCHEDULER_NAME_LIST}, or `undefined` for the model's own. */
export function schedulerFlag(value: string | undefined): SchedulerName | undefined {
  if (value !== undefined && !(SCHEDULER_NAME_LIST as readonly string[]).includes(value)) {
    throw new UsageError(`--scheduler must be one of ${SCHEDULER_NAME_LIST.join(", ")}: got ${JSON.stringify(value)}`);
  }
  return value as SchedulerName | undefined;
}

/** `--quality`: an integer in [1, 100], 90 when absent. */
export function qualityFlag(value: number | undefined): number {
  const quality = value ?? 90;
  if (quality < 1 || quality > 100) throw new UsageError(`--quality must be in [1, 100]: got ${quality}`);
  return quality;
}

/** `--provider webgpu,cpu` → `["webgpu", "cpu"]`; `undefined` leaves the default (LDM_EXECUTION_PROVIDERS or cpu). */
export function providersFlag(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  try {
    return parseExecutionProviders(value, "--provider");
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Output kinds by extension. */
export type OutputKind = "png" | "jpeg" | "webp" | "npy";

/** Checks `--out`'s extension and that its folder exists, before any model runs. */
export async function checkOutPath(out: string): Promise<OutputKind> {
  const kind = extname(out).toLowerCase() === ".npy" ? "npy" : imageFormatFromPath(out);
  if (kind === undefined) {
    throw new UsageError(`--out must end in .png, .jpg, .jpeg, .webp or .npy: got ${JSON.stringify(out)}`);
  }
  const dir = dirname(out);
  try {
    if (!(await Deno.stat(dir)).isDirectory) throw new UsageError(`--out folder ${dir} is not a directory`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`--out folder ${dir} does not exist`);
    throw e;
  }
  return kind;
}

/** `out.png` for one image; `out-0.png`, `out-1.png`, … for several. */
export function outputPaths(out: string, count: number): string[] {
  if (count === 1) return [out];
  const ext = extname(out);
  const stem = out.slice(0, out.length - ext.length);
  return Array.from({ length: count }, (_, i) => `${stem}-${i}${ext}`);
}

/**
 * Writes `[N, H, W, 3]` images: one `.npy` with all of them (float32 in [0, 1]), or one encoded file per image.
 * @returns the paths written.
 */
export async function writeOutputs(images: Tensor, out: string, kind: OutputKind, quality: number): Promise<string[]> {
  if (kind === "npy") {
    await Deno.writeFile(out, encodeNpy(images));
    return [out];
  }
  const rgb = toRgbImages(images);
  const paths = outputPaths(out, rgb.length);
  for (const [i, image] of rgb.entries()) {
    await Deno.writeFile(paths[i]!, await encodeImage(image, kind, { quality }));
  }
  return paths;
}

/** A progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise. */
export function progressBar(io: CliIo, label: string, quiet: boolean): (p: StepProgress) => void {
  let lastDecile = -1;
  return (p) => {
    if (quiet) return;
    const frac = p.step / p.totalSteps;
    const width = 30;
    const filled = Math.round(frac * width);
    const line = `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${p.step}/${p.totalSteps} steps, ${
      (p.elapsedMs / 1000).toFixed(1)
    } s`;
    if (io.isTerminal) {
      io.stderr(`\r${line}${p.step === p.totalSteps ? "\n" : ""}`);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        io.stderr(`${line}\n`);
      }
    }
  };
}

/** Aborts `controller` on Ctrl-C while `fn` runs. */
export async function withInterrupt<T>(controller: AbortController, fn: () => Promise<T>): Promise<T> {
  const onSignal = () => controller.abort(new DOMException("interrupted (Ctrl-C)", "AbortError"));
  let listening = false;
  try {
    Deno.addSignalListener("SIGINT", onSignal);
    listening = true;
  } catch {
    // Signals are unavailable (e.g. on some platforms or without permission): run without.
  }
  try {
    return await fn();
  } finally {
    if (listening) Deno.removeSignalListener("SIGINT", onSignal);
  }
}

/**
 * Runs a CLI body and maps failures to exit codes: 0 ok, 2 usage error (bad flags or option values), 130 interrupted,
 * 1 anything else; the message goes to stderr.
 */
export async function runCli(io: CliIo, helpHint: string, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`error: ${e.message}\n${helpHint}\n`);
      return 2;
    }
    if (e instanceof DOMException && e.name === "AbortError") {
      io.stderr(`\nerror: ${e.message}\n`);
      return 130;
    }
    if (e instanceof RangeError || e instanceof TypeError) {
      io.stderr(`error: ${e.message}\n`);
      return 2;
    }
    io.stderr(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

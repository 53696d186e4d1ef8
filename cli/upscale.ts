/**
 * `deno task upscale`: super-resolution with the built-in model (or any converted LDMSuperResolutionPipeline
 * repository).
 *
 * ```sh
 * deno task upscale --image small.png --seed 0 --out big.png
 * ```
 *
 * @module
 */
import { decodeImage } from "@ldm/core/image";
import { LDMSuperResolutionPipeline, SCHEDULER_NAME_LIST } from "@ldm/core/pipelines";
import { type FlagSpec, formatHelp, parseFlags, UsageError } from "./_args.ts";
import {
  BUILTIN_SUPER_RESOLUTION,
  checkOutPath,
  type CliIo,
  processIo,
  progressBar,
  providersFlag,
  qualityFlag,
  runCli,
  schedulerFlag,
  sharedFlags,
  stderrLogger,
  withInterrupt,
  writeOutputs,
} from "./_common.ts";

/** Largest input the CLI accepts, in pixels (the output has 16× as many with a 4× model). */
export const MAX_INPUT_PIXELS = 1024 * 1024;

const FLAGS: FlagSpec[] = [
  { name: "image", type: "string", value: "FILE", required: true, help: "low-resolution PNG or JPEG" },
  { name: "steps", type: "integer", value: "N", help: "denoising steps (default 100)" },
  { name: "eta", type: "number", value: "X", help: "DDIM eta in [0, 1] (default 0)" },
  { name: "seed", type: "integer", value: "N", help: "random seed (default: random, printed)" },
  {
    name: "scheduler",
    type: "string",
    value: "NAME",
    help: `${SCHEDULER_NAME_LIST.join("|")} (default: the model's, DDIM)`,
  },
  {
    name: "tile-size",
    type: "string",
    value: "PX|auto",
    help: "tile edge in input pixels for large images; 0 = never tile (default auto: tiles above 128 px)",
  },
  {
    name: "tile-overlap",
    type: "integer",
    value: "PX",
    help: "overlap between tiles in input pixels (default tile/4)",
  },
  ...sharedFlags("ldm-super-resolution-tiny", "[1, H, W, 3]"),
];

const HELP = formatHelp(
  "deno task upscale --image in.png --out out.png [options]",
  "Upscales an image with Latent Diffusion super-resolution (diffusers' LDMSuperResolutionPipeline on ONNX Runtime):\n" +
    "4× for the CompVis checkpoint, 4× for the built-in model. As in diffusers, each side is first floored to a\n" +
    "multiple of 32 (Lanczos resize), so inputs must be at least 32×32. Large inputs are denoised in blended tiles.",
  FLAGS,
  `Inputs up to ${MAX_INPUT_PIXELS} pixels. Same seed, same flags → same image.`,
);

/**
 * Runs the command with `args` (without the program name).
 * @returns the exit status: 0 done, 2 bad flags, values or input image, 130 interrupted, 1 other failures.
 */
export async function main(args: readonly string[], io: CliIo = processIo()): Promise<number> {
  return await runCli(io, "Run with --help for usage.", async () => {
    const f = parseFlags(args, FLAGS);
    if (f["help"]) {
      io.stdout(HELP);
      return;
    }
    const out = f["out"] as string;
    const kind = await checkOutPath(out);
    const scheduler = schedulerFlag(f["scheduler"] as string | undefined);
    const quality = qualityFlag(f["quality"] as number | undefined);
    const tileRaw = f["tile-size"] as string | undefined;
    let tileSize: number | "auto" = "auto";
    if (tileRaw !== undefined && tileRaw !== "auto") {
      tileSize = Number(tileRaw);
      if (tileRaw.trim() === "" || !Number.isInteger(tileSize)) {
        throw new UsageError(`--tile-size must be an integer or "auto": got ${JSON.stringify(tileRaw)}`);
      }
    }
    const providers = providersFlag(f["provider"] as string | undefined);
    const imagePath = f["image"] as string;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(imagePath);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new UsageError(`--image file ${imagePath} does not exist`);
      throw e;
    }
    let image;
    try {
      image = await decodeImage(bytes, { maxPixels: MAX_INPUT_PIXELS });
    } catch (e) {
      throw new UsageError(`--image ${imagePath}: ${(e as Error).message}`);
    }
    const logger = stderrLogger(io, f["verbose"] === true);
    const model = (f["model"] as string | undefined) ?? BUILTIN_SUPER_RESOLUTION;
    const started = performance.now();
    const pipe = await LDMSuperResolutionPipeline.load(model, {
      ...(providers ? { executionProviders: providers } : {}),
      logger,
    });
    try {
      const controller = new AbortController();
      const result = await withInterrupt(controller, () =>
        pipe.upscale({
          image,
          numInferenceSteps: (f["steps"] as number | undefined) ?? 100,
          eta: (f["eta"] as number | undefined) ?? 0,
          ...(f["seed"] !== undefined ? { seed: f["seed"] as number } : {}),
          ...(scheduler !== undefined ? { scheduler } : {}),
          tileSize,
          ...(f["tile-overlap"] !== undefined ? { tileOverlap: f["tile-overlap"] as number } : {}),
          signal: controller.signal,
          onProgress: progressBar(io, "upscale", f["quiet"] === true),
        }));
      const paths = await writeOutputs(result.images, out, kind, quality);
      const [, h, w] = result.images.shape;
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      for (const p of paths) io.stdout(`${p}\n`);
      io.stderr(
        `wrote ${image.width}×${image.height} → ${w}×${h}, seed ${result.seed}, ${result.scheduler} ` +
          `${result.timings.steps} steps${result.tiles > 1 ? `, ${result.tiles} tiles` : ""}, ${secs} s\n`,
      );
    } finally {
      await pipe.dispose();
    }
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));

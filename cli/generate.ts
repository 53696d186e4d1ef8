/**
 * `deno task generate`: text to image with the built-in model (or any converted LDMTextToImagePipeline repository).
 *
 * ```sh
 * deno task generate --prompt "a big red circle on a blue background" --seed 1 --out circle.png
 * ```
 *
 * @module
 */
import { decodeNpy } from "@ldm/core/image";
import type { Tensor } from "@ldm/core/tensor";
import { LDMTextToImagePipeline, SCHEDULER_NAME_LIST } from "@ldm/core/pipelines";
import { type FlagSpec, formatHelp, parseFlags, UsageError } from "./_args.ts";
import {
  BUILTIN_TEXT2IM,
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

/** Default guidance weight of the CLI (diffusers' pipeline defaults to 1, i.e. none; the built-in model wants ~5). */
export const DEFAULT_GUIDANCE = 5;

const FLAGS: FlagSpec[] = [
  { name: "prompt", type: "string", value: "TEXT", required: true, help: "what to draw" },
  { name: "negative-prompt", type: "string", value: "TEXT", help: "what to steer away from (needs --guidance > 1)" },
  { name: "steps", type: "integer", value: "N", help: "denoising steps (default 50)" },
  {
    name: "guidance",
    type: "number",
    value: "W",
    help:
      `classifier-free guidance weight; <= 1 disables it (default ${DEFAULT_GUIDANCE}, good for the built-in model)`,
  },
  { name: "eta", type: "number", value: "X", help: "DDIM eta in [0, 1] (default 0)" },
  { name: "seed", type: "integer", value: "N", help: "random seed (default: random, printed)" },
  {
    name: "scheduler",
    type: "string",
    value: "NAME",
    help: `${SCHEDULER_NAME_LIST.join("|")} (default: the model's, DDIM for the built-in one)`,
  },
  {
    name: "scheduler-config",
    type: "string",
    value: "JSON",
    help: `extra diffusers scheduler config keys, e.g. '{"skip_prk_steps":true}'`,
  },
  { name: "latents", type: "string", value: "FILE.npy", help: "initial latents [N, C, h, w] instead of drawing them" },
  { name: "width", type: "integer", value: "PX", help: "image width (default: the model's, 64 for the built-in one)" },
  { name: "height", type: "integer", value: "PX", help: "image height (default: the model's, 64)" },
  { name: "num-images", type: "integer", value: "N", help: "images to make (default 1)" },
  ...sharedFlags("ldm-text2im-tiny", "[N, H, W, 3]"),
];

const HELP = formatHelp(
  'deno task generate --prompt "..." --out out.png [options]',
  "Draws an image from a text prompt with Latent Diffusion (diffusers' LDMTextToImagePipeline on ONNX Runtime).\n" +
    'The built-in model draws 64×64 coloured shapes: try prompts like "a big red circle on a blue background".',
  FLAGS,
  "Several images (--num-images N): out.png becomes out-0.png, out-1.png, ...; a .npy output holds all of them.\n" +
    "Same seed, same flags → same image. Execution providers can also be set with LDM_EXECUTION_PROVIDERS.",
);

function schedulerConfigFlag(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new UsageError(`--scheduler-config must be a JSON object: got ${JSON.stringify(raw)}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new UsageError(`--scheduler-config must be a JSON object: got ${JSON.stringify(raw)}`);
  }
  return v as Record<string, unknown>;
}

/**
 * Runs the command with `args` (without the program name).
 * @returns the exit status: 0 done, 2 bad flags or values, 130 interrupted, 1 other failures.
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
    const schedulerConfig = schedulerConfigFlag(f["scheduler-config"] as string | undefined);
    const providers = providersFlag(f["provider"] as string | undefined);
    const latentsPath = f["latents"] as string | undefined;
    let latents: Tensor | undefined;
    if (latentsPath !== undefined) {
      try {
        latents = decodeNpy(await Deno.readFile(latentsPath));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) throw new UsageError(`--latents file ${latentsPath} does not exist`);
        throw new UsageError(`--latents ${latentsPath}: ${(e as Error).message}`);
      }
      if (latents.shape.length !== 4) {
        throw new UsageError(
          `--latents ${latentsPath} must hold an [N, C, h, w] array: got [${latents.shape.join(", ")}]`,
        );
      }
    }
    const logger = stderrLogger(io, f["verbose"] === true);
    const model = (f["model"] as string | undefined) ?? BUILTIN_TEXT2IM;
    const started = performance.now();
    const pipe = await LDMTextToImagePipeline.load(model, {
      ...(providers ? { executionProviders: providers } : {}),
      logger,
    });
    try {
      const controller = new AbortController();
      const numImages = (f["num-images"] as number | undefined) ?? latents?.shape[0] ?? 1;
      const result = await withInterrupt(controller, () =>
        pipe.generate({
          prompt: f["prompt"] as string,
          ...(f["negative-prompt"] !== undefined ? { negativePrompt: f["negative-prompt"] as string } : {}),
          numInferenceSteps: (f["steps"] as number | undefined) ?? 50,
          guidanceScale: (f["guidance"] as number | undefined) ?? DEFAULT_GUIDANCE,
          eta: (f["eta"] as number | undefined) ?? 0,
          ...(f["seed"] !== undefined ? { seed: f["seed"] as number } : {}),
          ...(scheduler !== undefined ? { scheduler } : {}),
          ...(schedulerConfig ? { schedulerConfig } : {}),
          ...(latents ? { latents } : {}),
          ...(f["width"] !== undefined ? { width: f["width"] as number } : {}),
          ...(f["height"] !== undefined ? { height: f["height"] as number } : {}),
          numImagesPerPrompt: numImages,
          signal: controller.signal,
          onProgress: progressBar(io, "generate", f["quiet"] === true),
        }));
      const paths = await writeOutputs(result.images, out, kind, quality);
      const [, h, w] = result.images.shape;
      const seed = result.seed === undefined ? "" : `, seed ${result.seed}`;
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      for (const p of paths) io.stdout(`${p}\n`);
      io.stderr(
        `${paths.length === 1 ? "wrote" : `wrote ${paths.length} files,`} ${w}×${h}${seed}, ${result.scheduler} ` +
          `${result.timings.steps} steps, ${secs} s\n`,
      );
    } finally {
      await pipe.dispose();
    }
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * Shared by the pipeline end-to-end suites: the tiny diffusers checkpoints converted once per test file into a
 * temporary folder with the project's converter, and the diffusers reference outputs.
 *
 * @module
 */
import { join } from "node:path";
import { Tensor } from "@ldm/core/tensor";
import { openWeights } from "@ldm/models/checkpoint";
import { convertPipeline } from "@ldm/models/convert";

/** The fixture folder (tiny checkpoints, `references.safetensors`, `sr_input.png`). */
export const TINY = new URL("./fixtures/diffusers-tiny/", import.meta.url).pathname;

/** The prompt of every text-to-image reference run. */
export const T2I_PROMPT = "A painting of a squirrel eating a burger";

/** Paths of the converted fixture repositories. */
export interface ConvertedFixtures {
  root: string;
  t2i: string;
  sr: string;
}

let converted: Promise<ConvertedFixtures> | undefined;

/**
 * Converts `ldm-text2im` and `ldm-super-resolution` (fp32) into a temporary folder, once per process; the folder is
 * removed when the process exits.
 */
export function convertedFixtures(): Promise<ConvertedFixtures> {
  converted ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "ldm-e2e-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(root, { recursive: true });
      } catch {
        // already gone
      }
    });
    const t2i = join(root, "t2i"), sr = join(root, "sr");
    await convertPipeline(join(TINY, "ldm-text2im"), t2i, { hashSources: false });
    await convertPipeline(join(TINY, "ldm-super-resolution"), sr, { hashSources: false });
    return { root, t2i, sr };
  })();
  return converted;
}

/** Reads one tensor of `references.safetensors` as float32. */
export async function reference(name: string): Promise<Tensor> {
  const refs = await openWeights(join(TINY, "references.safetensors"));
  try {
    return new Tensor(await refs.readFloat32(name), refs.info(name).shape);
  } finally {
    refs.close();
  }
}

/** Largest absolute element difference (shapes must match). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.shape.join() !== b.shape.join()) {
    throw new Error(`shapes differ: [${a.shape.join(", ")}] vs [${b.shape.join(", ")}]`);
  }
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

/** Mean absolute element difference. */
export function meanAbsDiff(a: Tensor, b: Tensor): number {
  let s = 0;
  for (let i = 0; i < a.size; i++) s += Math.abs(a.data[i]! - b.data[i]!);
  return s / a.size;
}

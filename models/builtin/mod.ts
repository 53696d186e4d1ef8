/**
 * The built-in models: two small Latent Diffusion checkpoints trained on coloured shapes, converted to ONNX with this
 * project's converter and committed, so a fresh clone generates and upscales images offline. See README.md in this
 * folder for what they can draw; `deno task convert-builtin` regenerates them from the source checkpoints.
 *
 * @example Locating the text-to-image model
 * ```ts
 * import { builtinModelDir } from "@ldm/models/builtin";
 * const dir = builtinModelDir("ldm-text2im-tiny"); // folder with ldm_onnx.json, unet/model.onnx, ...
 * console.log(dir.endsWith("ldm-text2im-tiny"));
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** Names of the built-in models. */
export type BuiltinModelName = "ldm-text2im-tiny" | "ldm-super-resolution-tiny";

/** What each built-in model is. */
export interface BuiltinModel {
  readonly name: BuiltinModelName;
  /** The diffusers pipeline class (`model_index.json` `_class_name`). */
  readonly pipeline: "LDMTextToImagePipeline" | "LDMSuperResolutionPipeline";
  /** One line on what it does. */
  readonly description: string;
}

/** The built-in models, in a stable order. */
export const BUILTIN_MODELS: readonly BuiltinModel[] = Object.freeze([
  {
    name: "ldm-text2im-tiny",
    pipeline: "LDMTextToImagePipeline",
    description:
      "64×64 coloured shapes on plain backgrounds from captions such as 'a big red circle on a blue background'",
  },
  {
    name: "ldm-super-resolution-tiny",
    pipeline: "LDMSuperResolutionPipeline",
    description: "4× super-resolution of images of the same shapes world (e.g. 32×32 → 128×128)",
  },
]);

/**
 * Absolute path of a built-in model's converted repository (it holds `ldm_onnx.json`).
 *
 * @throws {RangeError} naming the model and the available names for an unknown name.
 */
export function builtinModelDir(name: string): string {
  if (!BUILTIN_MODELS.some((m) => m.name === name)) {
    throw new RangeError(
      `unknown built-in model '${name}': available are ${BUILTIN_MODELS.map((m) => m.name).join(", ")}`,
    );
  }
  return fileURLToPath(new URL(`./${name}`, import.meta.url));
}

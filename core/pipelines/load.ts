/**
 * {@linkcode loadPipeline}: opens a converted repository with the pipeline class its `model_index.json` names.
 *
 * @module
 */
import { readJsonObject } from "./_repository.ts";
import { LDMSuperResolutionPipeline } from "./super_resolution.ts";
import { LDMTextToImagePipeline } from "./text_to_image.ts";
import type { PipelineLoadOptions } from "./types.ts";

/** Either pipeline, as {@linkcode loadPipeline} returns it (tell them apart with `instanceof`). */
export type AnyPipeline = LDMTextToImagePipeline | LDMSuperResolutionPipeline;

/**
 * Loads the pipeline `dir/model_index.json` names (`LDMTextToImagePipeline` or `LDMSuperResolutionPipeline`).
 *
 * @throws {TypeError} when the repository names another pipeline or a file is missing or malformed.
 */
export async function loadPipeline(dir: string, options: PipelineLoadOptions = {}): Promise<AnyPipeline> {
  const index = await readJsonObject(dir, "model_index.json");
  switch (index["_class_name"]) {
    case "LDMTextToImagePipeline":
      return await LDMTextToImagePipeline.load(dir, options);
    case "LDMSuperResolutionPipeline":
      return await LDMSuperResolutionPipeline.load(dir, options);
    default:
      throw new TypeError(
        `${dir}/model_index.json names ${
          JSON.stringify(index["_class_name"])
        }; supported: LDMTextToImagePipeline, LDMSuperResolutionPipeline`,
      );
  }
}

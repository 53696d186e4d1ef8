/**
 * Which graphs each diffusers component class becomes, and which builder in `models/onnx` makes each one.
 *
 * @module
 */
import { buildAutoencoderKLDecoder, buildAutoencoderKLEncoder } from "../onnx/autoencoder_kl.ts";
import type { GraphBuilder, WeightSource } from "../onnx/builder.ts";
import type { GraphVariantOptions } from "../onnx/optimize.ts";
import { buildLDMBertModel } from "../onnx/ldm_bert.ts";
import { buildUNet2DModel } from "../onnx/unet_2d.ts";
import { buildUNet2DConditionModel } from "../onnx/unet_2d_condition.ts";
import { buildVQModelDecoder, buildVQModelEncoder } from "../onnx/vq_model.ts";

type Config = Readonly<Record<string, unknown>>;

/** One graph of a component. */
export interface GraphSpec {
  /** Role in the manifest: `"model"`, `"encoder"` or `"decoder"`. */
  role: string;
  /** File name inside the component folder. */
  file: string;
  /**
   * Builds the graph (weights are read later, when it is saved); its inputs and outputs come from the builder's
   * `signature`. `optimize`/`fixedDims` make a speed variant (models/onnx/optimize.ts).
   */
  build(
    config: Config,
    weights: WeightSource,
    options: { dtype: "fp32" | "fp16"; name: string } & GraphVariantOptions,
  ): GraphBuilder;
}

/** Model classes → their graphs (dispatch table of the converter). */
export const MODEL_CLASSES: Readonly<Record<string, readonly GraphSpec[]>> = {
  LDMBertModel: [{ role: "model", file: "model.onnx", build: buildLDMBertModel }],
  UNet2DConditionModel: [{ role: "model", file: "model.onnx", build: buildUNet2DConditionModel }],
  UNet2DModel: [{ role: "model", file: "model.onnx", build: buildUNet2DModel }],
  AutoencoderKL: [
    { role: "encoder", file: "encoder.onnx", build: buildAutoencoderKLEncoder },
    { role: "decoder", file: "decoder.onnx", build: buildAutoencoderKLDecoder },
  ],
  VQModel: [
    { role: "encoder", file: "encoder.onnx", build: buildVQModelEncoder },
    { role: "decoder", file: "decoder.onnx", build: buildVQModelDecoder },
  ],
};

/** Non-network classes whose folders are copied as they are (the pipelines read them in TypeScript). */
export const COPIED_CLASSES: Readonly<Record<string, string>> = {
  DDIMScheduler: "scheduler",
  PNDMScheduler: "scheduler",
  LMSDiscreteScheduler: "scheduler",
  EulerDiscreteScheduler: "scheduler",
  EulerAncestralDiscreteScheduler: "scheduler",
  DPMSolverMultistepScheduler: "scheduler",
  BertTokenizer: "tokenizer",
  BertTokenizerFast: "tokenizer",
};

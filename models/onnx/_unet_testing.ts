/**
 * Test helpers for the UNet graphs: the state-dict enumerators and weight sources of `parameters.ts`, plus seeded
 * random weights held in memory.
 *
 * @module
 */
import { addRandomWeights, MemoryWeights, seededRandom } from "./_test_utils.ts";
import type { ParamSpec } from "./parameters.ts";

export {
  countParams,
  LazyZeroWeights,
  type ParamSpec,
  SyntheticWeights,
  transformer2DParams,
  type TransformerParamsOptions,
  unet2DConditionParams,
  unet2DParams,
} from "./parameters.ts";

/** Seeded random weights for every parameter of `spec` (norm scales near 1, others ±1/√fan-in). */
export function randomWeights(spec: ParamSpec, seed: number): MemoryWeights {
  return addRandomWeights(new MemoryWeights(), spec, seededRandom(seed));
}

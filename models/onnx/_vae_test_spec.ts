/**
 * Test helper: the AutoencoderKL / VQModel state-dict enumerator, now public in `parameters.ts`.
 *
 * @module
 */
export { vaeParameterSpec } from "./parameters.ts";

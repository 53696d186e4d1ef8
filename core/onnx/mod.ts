/**
 * ONNX Runtime sessions for converted model repositories. The only place onnxruntime-node is imported.
 *
 * - {@linkcode loadOnnxModel}: one graph, with execution providers tried in order (explicit list, else
 *   `LDM_EXECUTION_PROVIDERS`, else CPU) and each skipped provider logged with its reason.
 * - {@linkcode loadOnnxComponents}: every component of a repository at once, released together; a graph that
 *   `ldm_onnx.json` records as optimised for `cuda`/`webgpu` and that lands on a provider without its fused
 *   operators fails with an error naming the target and that provider ({@linkcode readGraphTargets}).
 * - {@linkcode OnnxModel.run} checks feeds against the graph's metadata (names, element types, ranks, fixed
 *   dimensions) and converts float feeds to int64 where the graph wants int64 (e.g. an integer `timestep`).
 *
 * @module
 */
export {
  availableExecutionProviders,
  defaultExecutionProviders,
  EXECUTION_PROVIDERS_ENV,
  explainProviderFailure,
  GRAPH_OPTIMIZATION_LEVELS,
  loadOnnxModel,
  parseExecutionProviders,
  silentLogger,
} from "./session.ts";
export type {
  GraphOptimizationLevel,
  Int64Feed,
  LoadOnnxModelOptions,
  Logger,
  OnnxElementType,
  OnnxFeed,
  OnnxModel,
  OnnxValueInfo,
} from "./session.ts";
export { loadOnnxComponents, readGraphTargets } from "./repository.ts";
export type { LoadOnnxComponentsOptions, OnnxComponents } from "./repository.ts";

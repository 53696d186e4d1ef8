/**
 * ONNX Runtime sessions for converted model repositories. The only place onnxruntime-node is imported.
 *
 * @module
 */
export { loadOnnxModel } from "./session.ts";
export type {
  Int64Feed,
  LoadOnnxModelOptions,
  OnnxElementType,
  OnnxFeed,
  OnnxModel,
  OnnxValueInfo,
} from "./session.ts";

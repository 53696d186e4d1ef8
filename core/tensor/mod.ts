/**
 * `Tensor`, the dense float32 array the schedulers and pipelines pass around, and the helpers they use.
 *
 * @module
 */
export { shapeSize, Tensor } from "./tensor.ts";

/**
 * `Tensor`, the dense float32 array the schedulers and pipelines pass around, and the helpers they use.
 *
 * The element-wise helpers (`add`, `linearCombination`, `clamp`, `quantile`, …) follow torch's float32 semantics
 * so that a chain of them in diffusers' order is bit-identical to torch on CPU; see `ops.ts`.
 *
 * @module
 */
export { shapeSize, Tensor } from "./tensor.ts";
export {
  abs,
  absMean,
  absSum,
  add,
  addScalar,
  assertSameShape,
  clamp,
  div,
  divScalar,
  f32,
  fma32,
  linearCombination,
  map,
  map2,
  map3,
  maxAbsDiff,
  mul,
  mulScalar,
  quantile,
  sameShape,
  sub,
} from "./ops.ts";

/**
 * Test helper: rewrites the contrib operators that onnxruntime's CPU provider lacks (`com.microsoft.GroupNorm`,
 * `com.microsoft.BiasSplitGelu`) into default-domain subgraphs with the semantics onnxruntime documents for them
 * (`docs/ContribOperators.md`; the CUDA kernels `contrib_ops/cuda/diffusion/group_norm.cc` and
 * `bias_split_gelu_impl.cu`), so that graphs optimised for webgpu/cuda can be checked numerically on CPU. This
 * verifies how the builders wire those operators (input order, NHWC layout, attributes, which half gets the GELU),
 * not the GPU kernels themselves.
 *
 * @module
 */
import { DATA_TYPE, type INodeProto, type ITensorProto, onnx } from "./_proto.ts";

const MS = "com.microsoft";

/** What {@linkcode lowerContribOps} replaced. */
export interface LoweredModel {
  bytes: Uint8Array;
  /** Number of nodes replaced per op type. */
  replaced: Record<string, number>;
}

/**
 * Returns the model with every `GroupNorm` and `BiasSplitGelu` node replaced by plain ONNX operators.
 *
 * @throws {Error} on a GroupNorm whose layout is not channels-last or whose gamma is not float32 (the kernel refuses
 *   those too), or whose input element type cannot be found.
 */
export function lowerContribOps(bytes: Uint8Array): LoweredModel {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const initializers: ITensorProto[] = graph.initializer ?? [];
  const replaced: Record<string, number> = {};
  let counter = 0;
  const fresh = (base: string) => `${base}/lowered_${counter++}`;
  const constInt64 = (values: number[]): string => {
    const name = fresh("const");
    initializers.push({
      name,
      dataType: DATA_TYPE.int64,
      dims: [values.length],
      rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer),
    });
    return name;
  };
  const constFloat = (values: number[], dims: number[]): string => {
    const name = fresh("const");
    initializers.push({
      name,
      dataType: DATA_TYPE.float32,
      dims,
      rawData: new Uint8Array(Float32Array.from(values).buffer),
    });
    return name;
  };
  // Element types of values, to know when a GroupNorm input is float16.
  const elemType = new Map<string, number>();
  for (const i of graph.input ?? []) elemType.set(i.name!, i.type?.tensorType?.elemType ?? 0);
  for (const t of initializers) elemType.set(t.name!, t.dataType ?? 0);
  const attr = (n: INodeProto, name: string) => n.attribute?.find((a) => a.name === name);
  const out: INodeProto[] = [];
  const node = (opType: string, inputs: string[], attributes: INodeProto["attribute"] = []): string => {
    const name = fresh(opType);
    out.push({ opType, name, input: inputs, output: [name], attribute: attributes });
    return name;
  };
  const intAttr = (name: string, i: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
  const intsAttr = (name: string, ints: number[]) => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints });
  const floatAttr = (name: string, f: number) => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f });
  const cast = (v: string, to: number) => node("Cast", [v], [intAttr("to", to)]);

  for (const n of graph.node ?? []) {
    // Track element types through the ops the builders emit, enough to find float16 GroupNorm inputs.
    const inType = elemType.get(n.input?.[0] ?? "") ?? 0;
    const castTo = attr(n, "to")?.i;
    const outType = n.opType === "Cast" ? Number(castTo) : n.opType === "Shape" ? DATA_TYPE.int64 : inType;
    for (const o of n.output ?? []) elemType.set(o, outType);
    if (n.domain !== MS || (n.opType !== "GroupNorm" && n.opType !== "BiasSplitGelu")) {
      out.push(n);
      continue;
    }
    replaced[n.opType!] = (replaced[n.opType!] ?? 0) + 1;
    const [x, a, b] = n.input as [string, string, string];
    const y = n.output![0]!;
    if (n.opType === "BiasSplitGelu") {
      // left·gelu(right) of x + bias split in halves on the last axis (exact erf GELU).
      const sum = node("Add", [x, a]);
      const left = fresh("left");
      const right = fresh("right");
      out.push({
        opType: "Split",
        name: fresh("Split"),
        input: [sum],
        output: [left, right],
        attribute: [intAttr("axis", -1)], // opset 17 Split: equal halves without a split input
      });
      const isHalf = inType === DATA_TYPE.float16;
      const r32 = isHalf ? cast(right, DATA_TYPE.float32) : right;
      const erf = node("Erf", [node("Mul", [r32, constFloat([Math.SQRT1_2], [])])]);
      const g = node("Mul", [node("Mul", [r32, constFloat([0.5], [])]), node("Add", [erf, constFloat([1], [])])]);
      const gelu = isHalf ? cast(g, DATA_TYPE.float16) : g;
      out.push({ opType: "Mul", name: fresh("Mul"), input: [left, gelu], output: [y] });
      continue;
    }
    // GroupNorm: NHWC input, float32 gamma/beta [C], optional swish.
    if (Number(attr(n, "channels_last")?.i ?? 1) !== 1) throw new Error(`${n.name}: only channels_last is lowered`);
    const gammaType = elemType.get(a);
    if (gammaType !== DATA_TYPE.float32) throw new Error(`${n.name}: gamma must be float32 (got type ${gammaType})`);
    const groups = Number(attr(n, "groups")!.i);
    const eps = attr(n, "epsilon")?.f ?? 1e-5;
    const swish = Number(attr(n, "activation")!.i) === 1;
    const isHalf = inType === DATA_TYPE.float16;
    if (inType !== DATA_TYPE.float16 && inType !== DATA_TYPE.float32) {
      throw new Error(`${n.name}: unknown input element type ${inType}`);
    }
    let h = node("Transpose", [x], [intsAttr("perm", [0, 3, 1, 2])]);
    if (isHalf) h = cast(h, DATA_TYPE.float32);
    const shape = node("Shape", [h]);
    const grouped = node("Reshape", [h, constInt64([0, groups, -1])]);
    const ones = constFloat(new Array(groups).fill(1), [groups]);
    const zeros = constFloat(new Array(groups).fill(0), [groups]);
    let v = node("Reshape", [
      node("InstanceNormalization", [grouped, ones, zeros], [floatAttr("epsilon", eps)]),
      shape,
    ]);
    const axes = constInt64([1, 2]);
    v = node("Add", [node("Mul", [v, node("Unsqueeze", [a, axes])]), node("Unsqueeze", [b, axes])]);
    if (swish) v = node("Mul", [v, node("Sigmoid", [v])]);
    if (isHalf) v = cast(v, DATA_TYPE.float16);
    out.push({
      opType: "Transpose",
      name: fresh("Transpose"),
      input: [v],
      output: [y],
      attribute: [intsAttr("perm", [0, 2, 3, 1])],
    });
  }
  graph.node = out;
  graph.initializer = initializers;
  return { bytes: onnx.ModelProto.encode(model).finish(), replaced };
}

import assert from "node:assert/strict";
import pkg from "onnx-proto";
import { loadOnnxModel } from "./session.ts";
import { Tensor } from "../tensor/mod.ts";

const { onnx } = pkg;

/** A one-node graph y = x + [1, 2], built in the test so nothing is read from disk. */
function addGraph(): Uint8Array {
  const vi = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: "n" }] } } },
    });
  const graph = onnx.GraphProto.create({
    name: "add",
    node: [onnx.NodeProto.create({ opType: "Add", input: ["x", "w"], output: ["y"] })],
    initializer: [
      onnx.TensorProto.create({
        name: "w",
        dims: [2],
        dataType: 1,
        rawData: new Uint8Array(new Float32Array([1, 2]).buffer),
      }),
    ],
    input: [vi("x")],
    output: [vi("y")],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph });
  return onnx.ModelProto.encode(model).finish();
}

Deno.test("loadOnnxModel() runs a graph on the CPU provider and reports its inputs", async () => {
  const m = await loadOnnxModel(addGraph());
  try {
    assert.equal(m.executionProvider, "cpu");
    assert.deepEqual(m.inputs, [{ name: "x", type: "float32", shape: ["n"] }]);
    const out = await m.run({ x: new Tensor(new Float32Array([10, 20]), [2]) });
    assert.deepEqual([...out.y!.data], [11, 22]);
  } finally {
    await m.dispose();
  }
  await assert.rejects(() => m.run({}), /after dispose/);
});

Deno.test("loadOnnxModel() falls back to the next provider and names the failures when none works", async () => {
  await assert.rejects(
    () => loadOnnxModel(addGraph(), { executionProviders: ["no-such-provider"] }),
    /no-such-provider/,
  );
  const m = await loadOnnxModel(addGraph(), { executionProviders: ["no-such-provider", "cpu"] });
  assert.equal(m.executionProvider, "cpu");
  await m.dispose();
});

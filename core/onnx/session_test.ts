import assert from "node:assert/strict";
import pkg from "onnx-proto";
import {
  availableExecutionProviders,
  defaultExecutionProviders,
  EXECUTION_PROVIDERS_ENV,
  explainProviderFailure,
  loadOnnxModel,
  parseExecutionProviders,
} from "./session.ts";
import { loadOnnxComponents } from "./repository.ts";
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

/** y = x + Cast(t): x float32 [2, "n"], t int64 [1] (like a UNet exported with an integer timestep). */
function castGraph(): Uint8Array {
  const graph = onnx.GraphProto.create({
    name: "cast",
    node: [
      onnx.NodeProto.create({
        opType: "Cast",
        input: ["t"],
        output: ["tf"],
        attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
      }),
      onnx.NodeProto.create({ opType: "Add", input: ["x", "tf"], output: ["y"] }),
    ],
    input: [
      onnx.ValueInfoProto.create({
        name: "x",
        type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }, { dimParam: "n" }] } } },
      }),
      onnx.ValueInfoProto.create({
        name: "t",
        type: { tensorType: { elemType: 7, shape: { dim: [{ dimValue: 1 }] } } },
      }),
    ],
    output: [onnx.ValueInfoProto.create({ name: "y", type: { tensorType: { elemType: 1 } } })],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph });
  return onnx.ModelProto.encode(model).finish();
}

function recordingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (msg: string) => void lines.push(`${level}: ${msg}`);
  return { lines, logger: { debug: log("debug"), info: log("info"), warn: log("warn") } };
}

Deno.test("OnnxModel.run() checks feeds against the graph metadata and converts integer feeds to int64", async (t) => {
  const m = await loadOnnxModel(castGraph(), { name: "toy" });
  const x = new Tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
  try {
    await t.step("a float tensor of integers feeds an int64 input", async () => {
      assert.deepEqual(m.inputs[1], { name: "t", type: "int64", shape: [1] });
      const out = await m.run({ x, t: new Tensor(new Float32Array([10]), [1]) });
      assert.deepEqual([...out.y!.data], [11, 12, 13, 14]);
      const viaBigInt = await m.run({ x, t: { int64: new BigInt64Array([5n]), shape: [1] } });
      assert.deepEqual([...viaBigInt.y!.data], [6, 7, 8, 9]);
    });
    await t.step("bad feeds are TypeErrors naming the model, input and shapes", async () => {
      const t1 = new Tensor(new Float32Array([1]), [1]);
      await assert.rejects(() => m.run({ x, t: new Tensor(new Float32Array([832.5]), [1]) }), {
        name: "TypeError",
        message: /toy input 't' is int64 but the value 832.5 at index 0 is not an integer/,
      });
      await assert.rejects(() => m.run({ x }), /toy needs input 't' \(int64 \[1\]\); got: x/);
      await assert.rejects(() => m.run({ x, t: t1, z: t1 }), /toy has no input named 'z' \(inputs: x, t\)/);
      await assert.rejects(
        () => m.run({ x: new Tensor(new Float32Array(4), [4]), t: t1 }),
        /toy input 'x' needs rank 2 \[2, n\]: got \[4\]/,
      );
      await assert.rejects(
        () => m.run({ x: new Tensor(new Float32Array(3), [3, 1]), t: t1 }),
        /toy input 'x' needs dimension 0 = 2 \(\[2, n\]\): got \[3, 1\]/,
      );
      await assert.rejects(
        () => m.run({ x: { int64: new BigInt64Array(4), shape: [2, 2] }, t: t1 }),
        /toy input 'x' is float32: got an int64 feed/,
      );
    });
  } finally {
    await m.dispose();
  }
});

Deno.test("loadOnnxModel() logs the provider it got and each provider it skipped, probing each once", async () => {
  const { lines, logger } = recordingLogger();
  const knownFailures = new Map<string, string>();
  const m = await loadOnnxModel(addGraph(), {
    executionProviders: ["nope", "cpu"],
    name: "bert",
    logger,
    knownFailures,
  });
  await m.dispose();
  assert.match(
    lines[0]!,
    /^warn: bert: skipped execution provider nope: not in this onnxruntime-node build \(it has: cpu/,
  );
  assert.match(lines[1]!, /^info: bert: session created on cpu in \d+ ms$/);
  assert.ok(knownFailures.has("nope"));
  await assert.rejects(() => loadOnnxModel(addGraph(), { executionProviders: [] }), /at least one provider: got \[\]/);
  await assert.rejects(
    () => loadOnnxModel(addGraph(), { intraOpNumThreads: -1 }),
    /intraOpNumThreads must be an integer >= 0: got -1/,
  );
});

Deno.test("parseExecutionProviders() and defaultExecutionProviders() read LDM_EXECUTION_PROVIDERS", () => {
  assert.deepEqual(parseExecutionProviders(" WebGPU, cpu,,cpu "), ["webgpu", "cpu"]);
  assert.throws(
    () => parseExecutionProviders(" , "),
    /LDM_EXECUTION_PROVIDERS must list at least one execution provider/,
  );
  const before = Deno.env.get(EXECUTION_PROVIDERS_ENV);
  try {
    Deno.env.set(EXECUTION_PROVIDERS_ENV, "webgpu,cpu");
    assert.deepEqual(defaultExecutionProviders(), ["webgpu", "cpu"]);
    Deno.env.delete(EXECUTION_PROVIDERS_ENV);
    assert.deepEqual(defaultExecutionProviders(), ["cpu"]);
  } finally {
    if (before === undefined) Deno.env.delete(EXECUTION_PROVIDERS_ENV);
    else Deno.env.set(EXECUTION_PROVIDERS_ENV, before);
  }
  assert.ok(availableExecutionProviders().some((p) => p.name === "cpu" && p.bundled));
});

Deno.test("loadOnnxComponents() loads a repository's graphs together and names a missing one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a`);
    await Deno.writeFile(`${dir}/a/model.onnx`, addGraph());
    const { lines, logger } = recordingLogger();
    const c = await loadOnnxComponents(dir, { first: "a/model.onnx", second: "a/model.onnx" }, { logger });
    assert.equal(c.first.name, "first");
    assert.equal(c.second.executionProvider, "cpu");
    assert.equal(lines.filter((l) => l.startsWith("info")).length, 2);
    await c.dispose();
    await assert.rejects(() => c.first.run({}), /after dispose/);
    await assert.rejects(
      () => loadOnnxComponents(dir, { first: "a/model.onnx", unet: "unet/model.onnx" }),
      { name: "TypeError", message: /unet: ONNX graph not found at .*unet\/model\.onnx/ },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadOnnxModel() on webgpu either gets an adapter or skips with the reason and falls back to cpu", async () => {
  const { lines, logger } = recordingLogger();
  const m = await loadOnnxModel(addGraph(), { executionProviders: ["webgpu", "cpu"], logger, name: "vae" });
  try {
    if (m.executionProvider === "cpu") {
      assert.match(lines[0]!, /^warn: vae: skipped execution provider webgpu: no WebGPU adapter \(/);
    } else assert.equal(m.executionProvider, "webgpu");
    const out = await m.run({ x: new Tensor(new Float32Array([1, 1]), [2]) });
    assert.deepEqual([...out.y!.data], [2, 3]);
  } finally {
    await m.dispose();
  }
});

Deno.test("explainProviderFailure() turns onnxruntime's provider errors into one actionable line", () => {
  assert.match(
    explainProviderFailure(
      "webgpu",
      "/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::" +
        "Initialize(...) adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a " +
        "WebGPU adapter: No supported adapters",
    ),
    /^no WebGPU adapter \(no GPU reachable through Vulkan/,
  );
  assert.match(
    explainProviderFailure("cuda", "OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library"),
    /^the CUDA provider library is not installed .*ONNXRUNTIME_NODE_INSTALL=cuda12/,
  );
  assert.equal(
    explainProviderFailure("webgpu", "/src/x.cc:12 f() cond was false. Unsupported op Foo\nmore"),
    "Unsupported op Foo",
  );
});

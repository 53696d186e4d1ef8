import assert from "node:assert/strict";
import pkg from "onnx-proto";
import { explainProviderFailure, loadOnnxModel } from "./session.ts";
import { loadOnnxComponents, readGraphTargets } from "./repository.ts";

const { onnx } = pkg;

/**
 * y = x + 1 through an optional com.microsoft `GroupNorm` (NHWC, activation 1): the CUDA-only fused operator a
 * `--optimize-for cuda` UNet holds, which the CPU provider has no kernel for.
 */
function graph(withGroupNorm: boolean): Uint8Array {
  const vi = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: {
        tensorType: {
          elemType: 1,
          shape: { dim: [{ dimValue: 1 }, { dimValue: 2 }, { dimValue: 2 }, { dimValue: 4 }] },
        },
      },
    });
  const f32 = (name: string, values: number[]) =>
    onnx.TensorProto.create({
      name,
      dims: [values.length],
      dataType: 1,
      rawData: new Uint8Array(new Float32Array(values).buffer),
    });
  const node = [onnx.NodeProto.create({ opType: "Add", input: ["x", "one"], output: [withGroupNorm ? "a" : "y"] })];
  if (withGroupNorm) {
    node.push(onnx.NodeProto.create({
      opType: "GroupNorm",
      domain: "com.microsoft",
      name: "norm1",
      input: ["a", "gamma", "beta"],
      output: ["y"],
      attribute: [
        { name: "epsilon", type: onnx.AttributeProto.AttributeType.FLOAT, f: 1e-5 },
        { name: "groups", type: onnx.AttributeProto.AttributeType.INT, i: 2 },
        { name: "activation", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
      ],
    }));
  }
  const g = onnx.GraphProto.create({
    name: "g",
    node,
    initializer: [f32("one", [1]), f32("gamma", [1, 1, 1, 1]), f32("beta", [0, 0, 0, 0])],
    input: [vi("x")],
    output: [vi("y")],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }, { domain: "com.microsoft", version: 1 }],
    graph: g,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** A repository with `unet/model.onnx` (GroupNorm) and `bert/model.onnx` (plain), both recorded as `target`. */
async function repository(target: string | null): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/unet`);
  await Deno.mkdir(`${dir}/bert`);
  await Deno.writeFile(`${dir}/unet/model.onnx`, graph(true));
  await Deno.writeFile(`${dir}/bert/model.onnx`, graph(false));
  const optimizations = target === null ? {} : { optimizations: { target, groupNorm: true } };
  const entry = (file: string) => ({ file, externalData: null, inputs: [], outputs: [], ...optimizations });
  await Deno.writeTextFile(
    `${dir}/ldm_onnx.json`,
    JSON.stringify({
      format: "ldm-onnx",
      components: {
        unet: { kind: "converted", graphs: { model: entry("unet/model.onnx") } },
        bert: { kind: "converted", graphs: { model: entry("bert/model.onnx") } },
        scheduler: { kind: "copied" },
      },
    }),
  );
  return dir;
}

function recordingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (msg: string) => void lines.push(`${level}: ${msg}`);
  return { lines, logger: { debug: log("debug"), info: log("info"), warn: log("warn") } };
}

Deno.test("readGraphTargets() maps each graph file of ldm_onnx.json to its optimisation target", async () => {
  const dir = await repository("cuda");
  try {
    assert.deepEqual([...await readGraphTargets(dir)], [["unet/model.onnx", "cuda"], ["bert/model.onnx", "cuda"]]);
    await Deno.writeTextFile(`${dir}/ldm_onnx.json`, "{ nope");
    await assert.rejects(() => readGraphTargets(dir), {
      name: "TypeError",
      message: /ldm_onnx\.json is not valid JSON/,
    });
    await Deno.writeTextFile(`${dir}/ldm_onnx.json`, "{}");
    await assert.rejects(() => readGraphTargets(dir), /ldm_onnx\.json: components must be an object: got undefined/);
    await Deno.remove(`${dir}/ldm_onnx.json`);
    assert.equal((await readGraphTargets(dir)).size, 0, "no manifest, no targets");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadOnnxComponents() refuses a graph optimised for a GPU provider on one without its kernels", async (t) => {
  for (const target of ["cuda", "webgpu"]) {
    await t.step(target, async () => {
      const dir = await repository(target);
      try {
        const { lines, logger } = recordingLogger();
        await assert.rejects(
          () =>
            loadOnnxComponents(dir, { bert: "bert/model.onnx", unet: "unet/model.onnx" }, {
              executionProviders: ["cpu"],
              logger,
            }),
          (e: Error) => {
            assert.equal(
              e.message,
              `unet: the graph is optimised for ${target} (ldm_onnx.json optimizations.target "${target}") and ` +
                "cannot run on the cpu execution provider, which has no kernel for its fused operator GroupNorm " +
                `(node 'norm1'); ${target} is not in executionProviders [cpu]. Load it with executionProviders ` +
                `["${target}"] on a machine where that provider works, or convert the model without --optimize-for ` +
                `${target} (or with --optimize-for cpu) to run it on cpu.`,
            );
            return true;
          },
        );
        // The plain-operator graph of the same repository runs on cpu, with a warning.
        assert.ok(
          lines.includes(`warn: bert: graph optimised for ${target} runs on cpu (it has no ${target}-only op)`),
        );
        // With the target first in the list: its session where that provider works (a GPU machine), else the
        // message says why it fell back.
        try {
          const c = await loadOnnxComponents(dir, { unet: "unet/model.onnx" }, { executionProviders: [target, "cpu"] });
          assert.equal(c.unet.executionProvider, target);
          await c.dispose();
        } catch (e) {
          assert.match(
            (e as Error).message,
            new RegExp(`cannot run on the cpu execution provider.*; it fell back to cpu because ${target}: `),
          );
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
  await t.step("no recorded target: onnxruntime's error, explained", async () => {
    const dir = await repository(null);
    try {
      await assert.rejects(
        () => loadOnnxComponents(dir, { unet: "unet/model.onnx" }, { executionProviders: ["cpu"] }),
        /Could not create an ONNX session for unet with any of \[cpu\]: cpu: the cpu provider has no kernel for operator GroupNorm \(opset 1, node 'norm1'\)/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("loadOnnxModel({ optimizedFor }) loads a graph whose operators the provider has", async () => {
  const m = await loadOnnxModel(graph(false), { optimizedFor: "cuda", executionProviders: ["cpu"] });
  assert.equal(m.executionProvider, "cpu");
  await m.dispose();
  assert.match(
    explainProviderFailure("cpu", "Could not find an implementation for BiasSplitGelu(1) node with name 'ff.proj'"),
    /^the cpu provider has no kernel for operator BiasSplitGelu \(opset 1, node 'ff\.proj'\)/,
  );
});

import assert from "node:assert/strict";
import { loadOnnxModel } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import { GraphBuilder } from "./builder.ts";
import { DATA_TYPE } from "./_proto.ts";
import { decodeModel, MemoryWeights, randomValues, runGraph, seededRandom } from "./_test_utils.ts";

/** y = x @ Wᵀ + b with a [3, 4] weight: exercises lazy weights, transpose and Add. */
function linearGraph(weights: MemoryWeights, dtype: "fp32" | "fp16" = "fp32", upcast = false): GraphBuilder {
  const b = new GraphBuilder({ name: "linear", weights, dtype, upcast });
  const x = b.toCompute(b.input("x", "float32", ["batch", 4]));
  const w = b.weight("fc.weight", [3, 4], { transpose: true });
  const bias = b.weight("fc.bias", [3]);
  const y = b.op("Add", [b.op("MatMul", [x, w], {}, { name: "fc" }), bias], {}, { name: "fc/Add" });
  b.output(y, "y", ["batch", 3]);
  return b;
}

function linearWeights(): MemoryWeights {
  const rand = seededRandom(1);
  return new MemoryWeights().set("fc.weight", [3, 4], randomValues(12, rand)).set(
    "fc.bias",
    [3],
    randomValues(3, rand),
  );
}

async function expectedLinear(weights: MemoryWeights, x: Float32Array): Promise<Float32Array> {
  const w = await weights.readFloat32("fc.weight");
  const bias = await weights.readFloat32("fc.bias");
  const rows = x.length / 4;
  const out = new Float32Array(rows * 3);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < 3; o++) {
      let s = bias[o]!;
      for (let i = 0; i < 4; i++) s += x[r * 4 + i]! * w[o * 4 + i]!;
      out[r * 3 + o] = s;
    }
  }
  return out;
}

Deno.test("GraphBuilder", async (t) => {
  await t.step("op() and output() build a graph onnxruntime runs", async () => {
    const b = new GraphBuilder({ name: "double" });
    const x = b.input("x", "float32", ["batch", 2]);
    b.output(b.op("Mul", [x, b.scalar(2, "float32")]), "y", ["batch", 2]);
    const out = await runGraph(b, { x: new Tensor(Float32Array.of(1, -2, 3.5, 0), [2, 2]) });
    assert.deepEqual([...out.y!.data], [2, -4, 7, 0]);
    assert.deepEqual([...out.y!.shape], [2, 2]);
  });

  await t.step("weight() reads lazily, transposes, and keeps module paths as node names", async () => {
    const weights = linearWeights();
    const b = linearGraph(weights);
    assert.equal(weights.reads, 0, "no weight is read while building");
    const bytes = await b.toBytes();
    assert.equal(weights.reads, 2);
    const model = decodeModel(bytes);
    assert.equal(model.opset, 17);
    assert.deepEqual(model.nodes.map((n) => n.name), ["fc", "fc/Add", "output/y"]);
    assert.deepEqual(model.initializers.map((i) => i.name).sort(), ["fc.bias", "fc.weight"]);
    const wt = model.initializers.find((i) => i.name === "fc.weight")!;
    assert.deepEqual(wt.dims, [4, 3], "stored transposed");
    const x = randomValues(8, seededRandom(2));
    const out = await runGraph(b, { x: new Tensor(x, [2, 4]) });
    const expected = await expectedLinear(weights, x);
    out.y!.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-6));
  });

  await t.step("weight() names the weight, expected and actual shape on mismatch", () => {
    const weights = linearWeights();
    const b = new GraphBuilder({ name: "g", weights });
    assert.throws(() => b.weight("fc.weight", [4, 3]), /weight 'fc\.weight' has shape \[3, 4\]; expected \[4, 3\]/);
    assert.throws(
      () => b.weight("to_q.weight", [3, 4], { aliases: ["query.weight"] }),
      /weight 'to_q\.weight' is missing from the checkpoint \(also tried 'query\.weight'\); expected shape \[3, 4\]/,
    );
    assert.throws(() => new GraphBuilder({ name: "g" }).weight("w", [1]), /without a weight source/);
  });

  await t.step("weight() falls back to aliases and accepted shapes", async () => {
    const rand = seededRandom(3);
    const weights = new MemoryWeights().set("query.weight", [2, 2, 1, 1], randomValues(4, rand));
    const b = new GraphBuilder({ name: "alias", weights });
    const x = b.input("x", "float32", [1, 2]);
    const w = b.weight("to_q.weight", [2, 2], {
      aliases: ["query.weight"],
      acceptShapes: [[2, 2, 1, 1]],
      transpose: true,
    });
    assert.equal(w.name, "query.weight");
    b.output(b.op("MatMul", [x, w]), "y", [1, 2]);
    const src = await weights.readFloat32("query.weight");
    const out = await runGraph(b, { x: new Tensor(Float32Array.of(1, 0), [1, 2]) });
    assert.deepEqual([...out.y!.data], [src[0]!, src[2]!]);
  });

  await t.step("input() refuses float16 and duplicate names; op() refuses foreign values", () => {
    const b = new GraphBuilder({ name: "g" });
    assert.throws(() => b.input("x", "float16", [1]), /must be float32/);
    b.input("x", "float32", [1]);
    assert.throws(() => b.input("x", "float32", [1]), /already used/);
    const other = new GraphBuilder({ name: "other" });
    const y = other.input("y", "float32", [1]);
    assert.throws(() => b.op("Relu", [y]), /does not belong to graph 'g'/);
  });

  await t.step("constructor refuses an unknown dtype and old opsets", () => {
    assert.throws(() => new GraphBuilder({ name: "g", dtype: "bf16" as "fp32" }), /dtype must be "fp32" or "fp16"/);
    assert.throws(() => new GraphBuilder({ name: "g", opset: 13 }), /opset must be an integer >= 17/);
  });

  await t.step("float attributes stay FLOAT when their value is an integer", async () => {
    const b = new GraphBuilder({ name: "leaky" });
    const x = b.input("x", "float32", [3]);
    b.output(b.op("LeakyRelu", [x], { alpha: 2 }), "y", [3]);
    const model = decodeModel(await b.toBytes());
    assert.equal(model.nodes[0]!.attributes.get("alpha"), 1, "AttributeType.FLOAT");
    const out = await runGraph(b, { x: new Tensor(Float32Array.of(-1, 0, 1), [3]) });
    assert.deepEqual([...out.y!.data], [-2, 0, 1]);
  });

  await t.step("fp16 stores half-precision weights and returns float32 outputs", async () => {
    const weights = linearWeights();
    const b16 = linearGraph(weights, "fp16");
    assert.equal(b16.computeType, "float16");
    const model = decodeModel(await b16.toBytes());
    const wt = model.initializers.find((i) => i.name === "fc.weight")!;
    assert.equal(wt.dataType, DATA_TYPE.float16);
    assert.equal(wt.rawLength, 24);
    assert.equal(model.inputs[0]!.elemType, DATA_TYPE.float32);
    assert.equal(model.outputs[0]!.elemType, DATA_TYPE.float32);
    const x = randomValues(8, seededRandom(4));
    const out = await runGraph(b16, { x: new Tensor(x, [2, 4]) });
    const expected = await expectedLinear(weights, x);
    out.y!.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-2, `${v} vs ${expected[i]}`));
    // upcast: fp16 storage, float32 compute (diffusers' force_upcast)
    const up = linearGraph(weights, "fp16", true);
    assert.equal(up.computeType, "float32");
    assert.equal(up.weightType, "float16");
    const outUp = await runGraph(up, { x: new Tensor(x, [2, 4]) });
    outUp.y!.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-2));
  });

  await t.step("fp16 refuses a weight that overflows float16, naming it", async () => {
    const weights = linearWeights();
    weights.set("fc.bias", [3], Float32Array.of(0, 1e6, 0));
    await assert.rejects(linearGraph(weights, "fp16").toBytes(), /weight 'fc\.bias'\[1\] = 1000000 overflows float16/);
  });

  await t.step("save() embeds small graphs and writes external data over the threshold", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const rand = seededRandom(5);
      // 600 × 4 bytes: above the 1 KiB external-data minimum.
      const weights = new MemoryWeights()
        .set("big.weight", [600, 4], randomValues(2400, rand))
        .set("small.bias", [4], randomValues(4, rand));
      const build = () => {
        const b = new GraphBuilder({ name: "ext", weights });
        const x = b.input("x", "float32", ["n", 600]);
        const y = b.op("Add", [b.op("MatMul", [x, b.weight("big.weight", [600, 4])]), b.weight("small.bias", [4])]);
        b.output(y, "y", ["n", 4]);
        return b;
      };
      const x = new Tensor(randomValues(1200, rand), [2, 600]);
      const reference = await runGraph(build(), { x });

      const embedded = await build().save(`${dir}/embedded.onnx`);
      assert.equal(embedded.externalDataPath, null);
      assert.equal(embedded.weightBytes, 9616);

      const external = await build().save(`${dir}/external.onnx`, { externalDataThreshold: 0 });
      assert.equal(external.externalDataPath, `${dir}/external.onnx_data`);
      const data = await Deno.readFile(external.externalDataPath!);
      assert.equal(data.length, 9600);
      const graph = decodeModel(await Deno.readFile(`${dir}/external.onnx`));
      const big = graph.initializers.find((i) => i.name === "big.weight")!;
      assert.ok(big.external);
      assert.deepEqual(big.externalData, [["location", "external.onnx_data"], ["offset", "0"], ["length", "9600"]]);
      const small = graph.initializers.find((i) => i.name === "small.bias")!;
      assert.ok(!small.external);
      assert.equal(small.rawLength, 16, "tensors under 1 KiB stay embedded");
      assert.ok(!exists(`${dir}/external.onnx.partial`));

      for (const path of [`${dir}/embedded.onnx`, `${dir}/external.onnx`]) {
        const model = await loadOnnxModel(path);
        try {
          const out = await model.run({ x });
          assert.deepEqual([...out.y!.data], [...reference.y!.data], path);
        } finally {
          await model.dispose();
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("save() streams: each weight is on disk before the next one is read", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const rand = seededRandom(6);
      const inner = new MemoryWeights();
      for (let i = 0; i < 4; i++) inner.set(`w${i}`, [1024], randomValues(1024, rand));
      for (const [threshold, file] of [[0, "model.onnx_data.partial"], [Infinity, "model.onnx.partial"]] as const) {
        const sizes: number[] = [];
        const source = {
          has: (n: string) => inner.has(n),
          info: (n: string) => inner.info(n),
          readFloat32: (n: string) => {
            sizes.push(exists(`${dir}/${file}`) ? Deno.statSync(`${dir}/${file}`).size : 0);
            return inner.readFloat32(n);
          },
        };
        const b = new GraphBuilder({ name: "stream", weights: source });
        let acc = b.input("x", "float32", [1024]);
        for (let i = 0; i < 4; i++) acc = b.op("Add", [acc, b.weight(`w${i}`, [1024])]);
        b.output(acc, "y", [1024]);
        await b.save(`${dir}/model.onnx`, { externalDataThreshold: threshold });
        for (let i = 1; i < 4; i++) {
          assert.ok(sizes[i]! >= sizes[i - 1]! + 4096, `${file}: weight ${i - 1} written before weight ${i} is read`);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("save() removes its partial files when a weight cannot be read", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const weights = linearWeights();
      const b = linearGraph(weights);
      weights.delete("fc.bias");
      await assert.rejects(b.save(`${dir}/broken.onnx`), /no tensor 'fc\.bias'/);
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("signature lists the declared inputs and outputs", () => {
    assert.deepEqual(linearGraph(linearWeights(), "fp16").signature, {
      inputs: [{ name: "x", type: "float32", dims: ["batch", 4] }],
      outputs: [{ name: "y", type: "float32", dims: ["batch", 3] }],
    });
  });

  await t.step("stats counts nodes, initializers and weight bytes", () => {
    const s = linearGraph(linearWeights()).stats;
    assert.equal(s.initializers, 2);
    assert.equal(s.weightBytes, 60);
    assert.equal(s.opCounts["MatMul"], 1);
  });
});

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The converter at the real block structure and widths of `CompVis/ldm-text2im-large-256`: a synthetic UNet2DCondition
 * checkpoint of 872,300,484 parameters (random seeded fp16 weights, 1.75 GB), converted to fp16 with weights in ONNX
 * external data, then loaded and run once by onnxruntime (CPU). About 70 s and 4 GB of RAM on 2 cores, most of it
 * onnxruntime loading the graph. The 3.5 GB fp32 UNet is not written here (CI disk and time); that it must go to
 * external data (over protobuf's 2 GiB) is checked from the builder's byte count instead. The tiny checkpoints prove numerical parity
 * (tests/convert_test.ts); this proves scale: range reads, streaming writes, external data, loadability.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import pkg from "onnx-proto";
import { loadOnnxModel } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import { openComponent } from "../checkpoint/mod.ts";
import { buildUNet2DConditionModel } from "../onnx/unet_2d_condition.ts";
import { convertPipeline, DEFAULT_EXTERNAL_DATA_THRESHOLD } from "./convert.ts";
import { writeSyntheticPipeline } from "./_synthetic.ts";
import { LDM_TEXT2IM_LARGE_256 } from "../onnx/real_configs.ts";

const { onnx } = pkg;
const UNET_PARAMS = 872_300_484;

Deno.test({
  name: "convertPipeline() converts a real-size ldm-text2im-large-256 UNet to fp16 external data that onnxruntime runs",
  sanitizeResources: false, // onnxruntime keeps native handles until process exit
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "ldm-real-size-" });
    try {
      const src = join(dir, "src");
      const counts = await writeSyntheticPipeline(src, { components: ["unet"], dtype: "F16", seed: 1 });
      assert.equal(counts.unet, UNET_PARAMS);

      await t.step(
        "external data policy: fp32 (3.49 GB, over protobuf's 2 GiB) and fp16 (1.75 GB) both go external by default",
        async () => {
          const unet = await openComponent(join(src, "unet"));
          try {
            const fp32 = buildUNet2DConditionModel(unet.config, unet.weights, { dtype: "fp32" }).stats.weightBytes;
            const fp16 = buildUNet2DConditionModel(unet.config, unet.weights, { dtype: "fp16" }).stats.weightBytes;
            assert.ok(fp32 > 2 ** 31 && fp32 >= UNET_PARAMS * 4, `fp32 weights ${fp32}`);
            assert.ok(fp16 > DEFAULT_EXTERNAL_DATA_THRESHOLD && fp16 >= UNET_PARAMS * 2, `fp16 weights ${fp16}`);
          } finally {
            unet.close();
          }
        },
      );

      const out = join(dir, "out");
      const result = await convertPipeline(src, out, { dtype: "fp16", hashSources: false });
      const graph = result.manifest.components.unet!.graphs!.model!;

      await t.step(
        "the external-data layout: small graph, aligned non-overlapping tensors inside model.onnx_data",
        async () => {
          assert.equal(graph.externalData, "unet/model.onnx_data");
          assert.equal(graph.parameters, UNET_PARAMS);
          const dataSize = (await Deno.stat(join(out, "unet/model.onnx_data"))).size;
          const graphBytes = await Deno.readFile(join(out, "unet/model.onnx"));
          assert.ok(graphBytes.length < 4_000_000, `model.onnx is ${graphBytes.length} bytes`);
          assert.equal(result.manifest.files["unet/model.onnx_data"]?.bytes, dataSize);
          const model = onnx.ModelProto.decode(graphBytes);
          const ext = model.graph!.initializer!.filter((i) =>
            i.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL
          );
          let end = 0;
          let externalBytes = 0;
          let halfBytes = 0;
          for (
            const init of ext.map((i) => {
              const kv = Object.fromEntries(i.externalData!.map((e) => [e.key, e.value]));
              return { i, location: kv.location, offset: Number(kv.offset), length: Number(kv.length) };
            }).sort((a, b) => a.offset - b.offset)
          ) {
            assert.equal(init.location, "model.onnx_data");
            assert.equal(init.offset % 4096, 0, `${init.i.name} offset ${init.offset}`);
            assert.ok(init.offset >= end, `${init.i.name} overlaps the previous tensor`);
            const numel = init.i.dims!.reduce((a, b) => a * Number(b), 1);
            // Weights are float16; the builders keep a few (normalisation parameters) in float32 on purpose.
            const T = onnx.TensorProto.DataType;
            assert.ok(init.i.dataType === T.FLOAT16 || init.i.dataType === T.FLOAT, `${init.i.name}: float type`);
            assert.equal(init.length, numel * (init.i.dataType === T.FLOAT16 ? 2 : 4), `${init.i.name}: length`);
            if (init.i.dataType === T.FLOAT16) halfBytes += init.length;
            end = init.offset + init.length;
            externalBytes += init.length;
          }
          assert.ok(end <= dataSize);
          assert.ok(externalBytes >= 0.99 * UNET_PARAMS * 2, `${externalBytes} bytes external`);
          assert.ok(halfBytes >= 0.99 * UNET_PARAMS * 2, `${halfBytes} bytes of float16 weights`);
        },
      );

      await t.step("onnxruntime loads it and one denoising step gives a finite [1, 4, 32, 32] prediction", async () => {
        const m = await loadOnnxModel(join(out, "unet/model.onnx"), { intraOpNumThreads: 2 });
        try {
          assert.deepEqual(m.inputs.map((i) => i.name), ["sample", "timestep", "encoder_hidden_states"]);
          const sample = Float32Array.from({ length: 4 * 32 * 32 }, (_, i) => Math.sin(i));
          const states = Float32Array.from({ length: 77 * 1280 }, (_, i) => Math.cos(i) * 0.5);
          const res = await m.run({
            sample: new Tensor(sample, [1, 4, 32, 32]),
            timestep: new Tensor(new Float32Array([500]), [1]),
            encoder_hidden_states: new Tensor(states, [1, 77, LDM_TEXT2IM_LARGE_256.unet.cross_attention_dim]),
          });
          const o = res.out_sample!;
          assert.deepEqual([...o.shape], [1, 4, 32, 32]);
          assert.ok(o.data.every(Number.isFinite), "finite");
          assert.ok(o.data.some((v) => Math.abs(v) > 1e-3), "not all zeros");
        } finally {
          await m.dispose();
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * End to end: `convertPipeline()` on the tiny diffusers checkpoints (safetensors and `.bin`), then every graph of the
 * converted repository run with onnxruntime (CPU, through `loadOnnxModel`) on the inputs of
 * `references.safetensors`, compared with what diffusers computed: within 1e-4 × max(1, max|reference|) for fp32 and
 * 2e-2 × max(1, max|reference|) for fp16, with no NaN.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOnnxModel, type OnnxFeed } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import { openWeights } from "@ldm/models/checkpoint";
import { convertPipeline, type LdmOnnxManifest, verifyRepository } from "@ldm/models/convert";

const TINY = new URL("./fixtures/diffusers-tiny/", import.meta.url).pathname;

/** Reference feeds and expected outputs of each graph, keyed by `<component>/<file>`. */
const CASES: Record<string, { feeds: Record<string, string>; outputs: Record<string, string> }> = {
  "bert/model.onnx": {
    feeds: { input_ids: "bert.input_ids" },
    outputs: { last_hidden_state: "bert.last_hidden_state" },
  },
  "unet/model.onnx#t2i": {
    feeds: { sample: "unet.sample", timestep: "unet.timestep", encoder_hidden_states: "unet.encoder_hidden_states" },
    outputs: { out_sample: "unet.out_sample" },
  },
  "vqvae/decoder.onnx#kl": { feeds: { latent_sample: "vae.latent_sample" }, outputs: { sample: "vae.decoded" } },
  "vqvae/encoder.onnx#kl": {
    feeds: { sample: "vae.image" },
    outputs: { latent_mean: "vae.latent_mean", latent_std: "vae.latent_std" },
  },
  "unet/model.onnx#sr": {
    feeds: { sample: "srunet.sample", timestep: "srunet.timestep" },
    outputs: { out_sample: "srunet.out_sample" },
  },
  "vqvae/decoder.onnx#vq": { feeds: { latent_sample: "vq.latent_sample" }, outputs: { sample: "vq.decoded" } },
  "vqvae/encoder.onnx#vq": { feeds: { sample: "vq.image" }, outputs: { latents: "vq.encoded_latents" } },
};

const PIPELINES = {
  "ldm-text2im": ["bert/model.onnx", "unet/model.onnx#t2i", "vqvae/decoder.onnx#kl", "vqvae/encoder.onnx#kl"],
  "ldm-text2im-bin": ["bert/model.onnx", "unet/model.onnx#t2i", "vqvae/decoder.onnx#kl", "vqvae/encoder.onnx#kl"],
  "ldm-super-resolution": ["unet/model.onnx#sr", "vqvae/decoder.onnx#vq", "vqvae/encoder.onnx#vq"],
} as const;

async function checkRepository(
  repo: string,
  cases: readonly string[],
  tolerance: number,
  manifest: LdmOnnxManifest,
): Promise<Record<string, number>> {
  const refs = await openWeights(join(TINY, "references.safetensors"));
  const errors: Record<string, number> = {};
  try {
    for (const key of cases) {
      const file = key.split("#")[0]!;
      const c = CASES[key]!;
      const component = manifest.components[file.split("/")[0]!]!;
      const graph = Object.values(component.graphs ?? {}).find((g) => g.file === file);
      assert.ok(graph, `manifest lists ${file}`);
      const model = await loadOnnxModel(join(repo, file));
      try {
        // The manifest describes the graph as onnxruntime sees it.
        const seen = (
          vs: readonly { name: string; type: string; shape: readonly unknown[] }[],
          declared: typeof graph.inputs,
        ) =>
          vs.map((v, i) =>
            declared[i]?.dims ? { name: v.name, type: v.type, dims: [...v.shape] } : { name: v.name, type: v.type }
          );
        assert.deepEqual(seen(model.inputs, graph.inputs), graph.inputs, `${file} inputs`);
        assert.deepEqual(seen(model.outputs, graph.outputs), graph.outputs, `${file} outputs`);
        const feeds: Record<string, OnnxFeed> = {};
        for (const [input, ref] of Object.entries(c.feeds)) {
          const shape = refs.info(ref).shape;
          const type = model.inputs.find((i) => i.name === input)?.type;
          feeds[input] = type === "int64"
            ? { int64: await refs.readInt64(ref), shape }
            : new Tensor(await refs.readFloat32(ref), shape);
        }
        const out = await model.run(feeds);
        for (const [output, ref] of Object.entries(c.outputs)) {
          const got = out[output];
          assert.ok(got, `${file} returns ${output}`);
          const want = await refs.readFloat32(ref);
          assert.deepEqual([...got.shape], refs.info(ref).shape, `${file} ${output} shape`);
          let err = 0;
          let scale = 1;
          for (let i = 0; i < want.length; i++) {
            const d = Math.abs(got.data[i]! - want[i]!);
            if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d;
            scale = Math.max(scale, Math.abs(want[i]!));
          }
          errors[`${file}:${output}`] = err;
          assert.ok(err <= tolerance * scale, `${file} ${output}: max abs error ${err} > ${tolerance} × ${scale}`);
        }
      } finally {
        await model.dispose();
      }
    }
  } finally {
    refs.close();
  }
  return errors;
}

for (const dtype of ["fp32", "fp16"] as const) {
  for (const [name, cases] of Object.entries(PIPELINES)) {
    if (dtype === "fp16" && name === "ldm-text2im-bin") continue; // same weights as ldm-text2im
    Deno.test(`convertPipeline() ${name} ${dtype}: every graph reproduces diffusers`, async () => {
      const tmp = await Deno.makeTempDir();
      try {
        const out = join(tmp, "repo");
        const result = await convertPipeline(join(TINY, name), out, { dtype });
        assert.equal(result.manifest.dtype, dtype);
        assert.deepEqual(await verifyRepository(out), []);
        for (const f of ["model_index.json", "scheduler/scheduler_config.json", "ldm_onnx.json"]) {
          assert.ok((await Deno.stat(join(out, f))).isFile, f);
        }
        const errors = await checkRepository(out, cases, dtype === "fp32" ? 1e-4 : 2e-2, result.manifest);
        console.log(`${name} ${dtype} max abs errors: ${JSON.stringify(errors)}`);
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    });
  }
}

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOnnxModel, type OnnxFeed } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import { CONVERTER_VERSION, readManifest, verifyRepository } from "../convert/mod.ts";
import { sha256File } from "../convert/_hash.ts";
import { regenerateBuiltins } from "./regenerate.ts";
import { BUILTIN_MODELS, builtinModelDir } from "./mod.ts";

const SOURCES = Deno.env.get("LDM_BUILTIN_SOURCES") ?? "/work/shared/models";
const haveSources = await Deno.stat(join(SOURCES, "ldm-text2im-tiny", "model_index.json")).then(
  () => true,
  () => false,
);

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

async function run(dir: string, file: string, feeds: Record<string, OnnxFeed>): Promise<Record<string, Tensor>> {
  const m = await loadOnnxModel(join(dir, file));
  try {
    return await m.run(feeds);
  } finally {
    await m.dispose();
  }
}

function assertFinite(t: Tensor | undefined, shape: number[], what: string): Tensor {
  assert.ok(t, what);
  assert.deepEqual([...t.shape], shape, `${what} shape`);
  assert.ok(t.data.every(Number.isFinite), `${what} is finite`);
  assert.ok(t.data.some((v) => v !== 0), `${what} is not all zeros`);
  return t;
}

Deno.test("builtinModelDir() names every built-in model and refuses unknown names", () => {
  assert.deepEqual(BUILTIN_MODELS.map((m) => m.name), ["ldm-text2im-tiny", "ldm-super-resolution-tiny"]);
  assert.match(builtinModelDir("ldm-text2im-tiny"), /models\/builtin\/ldm-text2im-tiny$/);
  assert.throws(
    () => builtinModelDir("sd15"),
    /unknown built-in model 'sd15': available are ldm-text2im-tiny, ldm-super/,
  );
});

Deno.test("the committed built-in repositories match their manifests and this converter", async () => {
  for (const { name, pipeline } of BUILTIN_MODELS) {
    const dir = builtinModelDir(name);
    assert.deepEqual(await verifyRepository(dir), [], name);
    const m = await readManifest(dir);
    assert.equal(m.pipeline, pipeline);
    assert.equal(m.dtype, "fp32");
    assert.equal(m.source.name, name);
    // A converter change that alters graphs must bump CONVERTER_VERSION and regenerate (deno task convert-builtin).
    assert.equal(m.converter.version, CONVERTER_VERSION, `${name} was converted by another converter version`);
    assert.ok(Object.keys(m.source.files).length >= 6);
  }
});

Deno.test("the built-in text-to-image graphs run: ids → text states → noise prediction → 64×64 image", async () => {
  const dir = builtinModelDir("ldm-text2im-tiny");
  // The unconditional prompt "" as the pipeline tokenizes it: [CLS] [SEP] [PAD]×75 (ids from tokenizer/vocab.txt).
  const vocab = (await Deno.readTextFile(join(dir, "tokenizer/vocab.txt"))).split("\n");
  const ids = new BigInt64Array(77).fill(BigInt(vocab.indexOf("[PAD]")));
  ids[0] = BigInt(vocab.indexOf("[CLS]"));
  ids[1] = BigInt(vocab.indexOf("[SEP]"));
  assert.deepEqual([ids[0], ids[1], ids[2]], [2n, 3n, 0n]);
  const text = await run(dir, "bert/model.onnx", { input_ids: { int64: ids, shape: [1, 77] } });
  const states = assertFinite(text.last_hidden_state, [1, 77, 128], "last_hidden_state");
  const unet = await run(dir, "unet/model.onnx", {
    sample: new Tensor(seeded(256, 1), [1, 4, 8, 8]),
    timestep: new Tensor(new Float32Array([500]), [1]),
    encoder_hidden_states: states,
  });
  assertFinite(unet.out_sample, [1, 4, 8, 8], "out_sample");
  const image = await run(dir, "vqvae/decoder.onnx", { latent_sample: new Tensor(seeded(256, 2), [1, 4, 8, 8]) });
  assertFinite(image.sample, [1, 3, 64, 64], "decoded image");
});

Deno.test("the built-in super-resolution graphs run: 16×16 → noise prediction → 64×64 image", async () => {
  const dir = builtinModelDir("ldm-super-resolution-tiny");
  const unet = await run(dir, "unet/model.onnx", {
    sample: new Tensor(seeded(6 * 256, 3), [1, 6, 16, 16]),
    timestep: new Tensor(new Float32Array([991]), [1]),
  });
  assertFinite(unet.out_sample, [1, 3, 16, 16], "out_sample");
  const image = await run(dir, "vqvae/decoder.onnx", { latent_sample: new Tensor(seeded(768, 4), [1, 3, 16, 16]) });
  assertFinite(image.sample, [1, 3, 64, 64], "decoded image");
});

Deno.test({
  name: `the built-ins are a fresh conversion of their sources (${haveSources ? SOURCES : `SKIPPED: no ${SOURCES}`})`,
  ignore: !haveSources,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    try {
      await regenerateBuiltins(SOURCES, { outRoot: tmp });
      for (const { name } of BUILTIN_MODELS) {
        const committed = await readManifest(builtinModelDir(name));
        const fresh = await readManifest(join(tmp, name));
        // Same sources (by hash) and byte-identical graphs, configs and manifest-listed files.
        assert.deepEqual(fresh.source, committed.source, `${name}: the source checkpoint changed`);
        for (const [file, { sha256 }] of Object.entries(committed.source.files)) {
          assert.equal((await sha256File(join(SOURCES, name, file))).sha256, sha256, `${name}/${file}`);
        }
        assert.deepEqual(fresh.files, committed.files, `${name}: run deno task convert-builtin`);
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

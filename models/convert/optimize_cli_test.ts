import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOnnxModel } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import { openWeights } from "../checkpoint/mod.ts";
import { main } from "./cli.ts";
import { readManifest, verifyRepository } from "./manifest.ts";

const TINY = new URL("../../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

async function withTemp(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

Deno.test("deno task convert --optimize-for cpu --fixed-size: graphs, manifest and outputs", async () => {
  await withTemp(async (dir) => {
    const out = join(dir, "t2i");
    const c = capture();
    const code = await main(
      [`${TINY}ldm-text2im`, out, "--optimize-for", "cpu", "--fixed-size", "2x16x16", "--quiet", "--no-source-hash"],
      c.io,
    );
    assert.equal(code, 0, c.err.join("\n"));
    assert.deepEqual(await verifyRepository(out), []);
    const m = await readManifest(out);
    const unet = m.components.unet!.graphs!.model!;
    assert.equal(unet.optimizations?.target, "cpu");
    assert.equal(unet.optimizations?.attention, true);
    assert.deepEqual(unet.fixedDims, { batch: 2, height: 16, width: 16, sequence: 77 });
    assert.deepEqual(unet.inputs.map((i) => i.dims), [[2, 4, 16, 16], [2], [2, 77, 32]]);
    const decoder = m.components.vqvae!.graphs!.decoder!;
    assert.deepEqual(decoder.fixedDims, { latent_height: 16, latent_width: 16 });
    assert.deepEqual(decoder.inputs[0]!.dims, ["batch", 4, 16, 16]);
    assert.equal(m.components.vqvae!.graphs!.encoder!.fixedDims, undefined);
    assert.deepEqual(m.components.bert!.graphs!.model!.fixedDims, { sequence: 77 });

    // The converted graphs reproduce diffusers' references.
    const refs = await openWeights(`${TINY}references.safetensors`);
    const t = async (name: string) => new Tensor(await refs.readFloat32(name), refs.info(name).shape);
    try {
      const model = await loadOnnxModel(join(out, unet.file));
      try {
        const res = await model.run({
          sample: await t("unet.sample"),
          timestep: await t("unet.timestep"),
          encoder_hidden_states: await t("unet.encoder_hidden_states"),
        });
        const err = maxAbsDiff(res.out_sample!, await t("unet.out_sample"));
        assert.ok(err < 1e-4, `unet max abs error ${err}`);
      } finally {
        await model.dispose();
      }
      const dec = await loadOnnxModel(join(out, m.components.vqvae!.graphs!.decoder!.file));
      try {
        const res = await dec.run({ latent_sample: await t("vae.latent_sample") });
        const err = maxAbsDiff(res.sample!, await t("vae.decoded"));
        assert.ok(err < 1e-4, `vae decoder max abs error ${err}`);
      } finally {
        await dec.dispose();
      }
    } finally {
      refs.close();
    }
  });
});

Deno.test("deno task convert: plain conversions record no variant", async () => {
  await withTemp(async (dir) => {
    const out = join(dir, "sr");
    const c = capture();
    assert.equal(await main([`${TINY}ldm-super-resolution`, out, "--quiet", "--no-source-hash"], c.io), 0);
    const m = await readManifest(out);
    for (const comp of Object.values(m.components)) {
      for (const g of Object.values(comp.graphs ?? {})) {
        assert.ok(!("optimizations" in g) && !("fixedDims" in g), g.file);
      }
    }
  });
});

Deno.test("deno task convert: variant flags are checked before converting (exit 2, the flag named)", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--optimize-for", "tpu"], /--optimize-for must be one of cpu, webgpu, cuda: got "tpu"/],
    [["--optimize-for", "cpu", "--group-norm", "fused"], /--group-norm "fused" needs com.microsoft.GroupNorm/],
    [["--optimize-for", "cpu", "--upsample", "bicubic"], /--upsample must be "subpixel" or "resize": got "bicubic"/],
    [["--attention", "plain"], /--attention needs --optimize-for cpu\|webgpu\|cuda/],
    [
      ["--fixed-size", "0x16"],
      /--fixed-size must be HEIGHTxWIDTH or BATCHxHEIGHTxWIDTH of positive integers: got "0x16"/,
    ],
  ];
  for (const [flags, message] of cases) {
    await t.step(flags.join(" "), async () => {
      await withTemp(async (dir) => {
        const c = capture();
        const out = join(dir, "never");
        assert.equal(await main([`${TINY}ldm-super-resolution`, out, ...flags, "--quiet"], c.io), 2);
        assert.match(c.err.join("\n"), message);
        await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
      });
    });
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { openComponent, openWeights } from "../checkpoint/mod.ts";
import {
  autoencoderKLParams,
  ldmBertParams,
  PARAMS_BY_CLASS,
  syntheticValues,
  unet2DConditionParams,
  writeSyntheticComponent,
} from "./_synthetic.ts";
import { LDM_TEXT2IM_LARGE_256 } from "../onnx/real_configs.ts";

const TINY = new URL("../../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;
const SHARED = "/work/shared/models";

const count = (l: readonly (readonly [string, readonly number[]])[]) =>
  l.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);

Deno.test("the synthetic state dicts name and shape every tensor exactly as diffusers saved the fixtures", async () => {
  const dirs = [
    "ldm-text2im/unet",
    "ldm-text2im/vqvae",
    "ldm-text2im/bert",
    "ldm-super-resolution/unet",
    "ldm-super-resolution/vqvae",
  ].map((d) => join(TINY, d));
  // The trained built-in sources have other block types and group counts; check them too when present.
  if (await Deno.stat(SHARED).then(() => true, () => false)) {
    for (const m of ["ldm-text2im-tiny/unet", "ldm-text2im-tiny/vqvae", "ldm-super-resolution-tiny/vqvae"]) {
      dirs.push(join(SHARED, m));
    }
  }
  for (const dir of dirs) {
    const c = await openComponent(dir);
    try {
      const cls = typeof c.config._class_name === "string" ? c.config._class_name : "LDMBertModel";
      const want = Object.fromEntries(c.weights.names().map((n) => [n, c.weights.info(n).shape]));
      const got = Object.fromEntries(PARAMS_BY_CLASS[cls]!(c.config).map(([n, s]) => [n, [...s]]));
      assert.deepEqual(got, want, dir);
    } finally {
      c.close();
    }
  }
});

Deno.test("the real ldm-text2im-large-256 configs give the published parameter counts", () => {
  assert.equal(count(unet2DConditionParams(LDM_TEXT2IM_LARGE_256.unet)), 872_300_484); // shared/notes/gpu.md
  assert.equal(count(autoencoderKLParams(LDM_TEXT2IM_LARGE_256.vqvae)), 83_653_863);
  assert.equal(count(ldmBertParams(LDM_TEXT2IM_LARGE_256.bert)), 581_994_042);
});

Deno.test("writeSyntheticComponent() writes seeded, well-scaled weights in the requested dtype", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = JSON.parse(await Deno.readTextFile(join(TINY, "ldm-super-resolution/vqvae/config.json")));
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const n = await writeSyntheticComponent(join(dir, dtype), "VQModel", config, { dtype, seed: 7 });
      const w = await openWeights(join(dir, dtype, "diffusion_pytorch_model.safetensors"));
      try {
        assert.equal(n, count(PARAMS_BY_CLASS.VQModel!(config)));
        const name = "decoder.conv_in.weight";
        assert.equal(w.info(name).dtype, dtype);
        const exact = syntheticValues(name, w.info(name).shape, 7);
        const got = await w.readFloat32(name);
        const tol = dtype === "F32" ? 0 : dtype === "F16" ? 2 ** -11 : 2 ** -8; // relative rounding of the format
        for (let i = 0; i < got.length; i++) {
          assert.ok(Math.abs(got[i]! - exact[i]!) <= tol * Math.abs(exact[i]!), `${dtype} ${name}[${i}]`);
        }
        const bound = 1 / Math.sqrt(3 * 3 * 3); // fan-in of the 3×3 conv over 3 channels
        assert.ok(exact.every((v) => Math.abs(v) <= bound) && exact.some((v) => Math.abs(v) > bound / 2));
        const norm = await w.readFloat32("decoder.conv_norm_out.weight");
        assert.ok(norm.every((v) => v > 0.89 && v < 1.11));
      } finally {
        w.close();
      }
    }
    // Same seed, same values; another seed, other values.
    assert.deepEqual(syntheticValues("a", [4], 1), syntheticValues("a", [4], 1));
    assert.notDeepEqual(syntheticValues("a", [4], 1), syntheticValues("a", [4], 2));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

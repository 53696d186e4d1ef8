import assert from "node:assert/strict";
import { join } from "node:path";
import { convertPipeline } from "@ldm/models/convert";
import { LDMSuperResolutionPipeline, LDMTextToImagePipeline, loadPipeline } from "@ldm/core/pipelines";

const TINY = new URL("./fixtures/diffusers-tiny/", import.meta.url).pathname;

Deno.test("load() of a repository converted with --optimize-for cuda|webgpu on the cpu provider names target and provider", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "ldm-guard-" });
  try {
    for (const target of ["cuda", "webgpu"] as const) {
      await t.step(target, async () => {
        const t2i = join(root, `t2i-${target}`), sr = join(root, `sr-${target}`);
        await convertPipeline(join(TINY, "ldm-text2im"), t2i, { hashSources: false, optimize: { target } });
        await convertPipeline(join(TINY, "ldm-super-resolution"), sr, { hashSources: false, optimize: { target } });
        const expected = new RegExp(
          `^unet: the graph is optimised for ${target} \\(ldm_onnx\\.json optimizations\\.target "${target}"\\) and ` +
            "cannot run on the cpu execution provider, which has no kernel for its fused operator \\w+ \\(node '[^']+'\\)" +
            `; ${target} is not in executionProviders \\[cpu\\]\\. Load it with executionProviders \\["${target}"\\]`,
        );
        await assert.rejects(() => LDMTextToImagePipeline.load(t2i, { executionProviders: ["cpu"] }), {
          message: expected,
        });
        // A graph without operators only the target implements (the webgpu super-resolution UNet has attention but
        // no GEGLU or GroupNorm fusion) loads on cpu, with a warning per such component; otherwise the same error.
        const warnings: string[] = [];
        const logger = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m) };
        const loaded = await LDMSuperResolutionPipeline.load(sr, { executionProviders: ["cpu"], logger }).catch((e) =>
          e
        );
        if (loaded instanceof Error) {
          assert.match(loaded.message, expected);
        } else {
          await using pipe = loaded as LDMSuperResolutionPipeline;
          assert.ok(warnings.includes(`unet: graph optimised for ${target} runs on cpu (it has no ${target}-only op)`));
          const image = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) };
          const r = await pipe.upscale({ image, numInferenceSteps: 1, seed: 0 });
          assert.deepEqual(r.images.shape, [1, 64, 64, 3]);
        }
        await assert.rejects(() => loadPipeline(t2i, { executionProviders: ["cpu"] }), { message: expected });
      });
    }
    await t.step("--optimize-for cpu loads and runs on cpu", async () => {
      const dir = join(root, "t2i-cpu");
      await convertPipeline(join(TINY, "ldm-text2im"), dir, { hashSources: false, optimize: { target: "cpu" } });
      await using pipe = await LDMTextToImagePipeline.load(dir, { executionProviders: ["cpu"] });
      const r = await pipe.generate({ prompt: "a squirrel", numInferenceSteps: 2, guidanceScale: 3, seed: 0 });
      assert.deepEqual(r.images.shape, [1, 32, 32, 3]);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

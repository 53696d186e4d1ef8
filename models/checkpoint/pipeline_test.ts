import assert from "node:assert/strict";
import { join } from "node:path";
import { findWeightsFile, openComponent, openPipelineFolder } from "./pipeline.ts";

const FIXTURES = new URL("../../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;

Deno.test("openPipelineFolder() parses model_index.json and opens each model component", async () => {
  const pipe = await openPipelineFolder(join(FIXTURES, "ldm-text2im"));
  assert.equal(pipe.className, "LDMTextToImagePipeline");
  assert.equal(pipe.diffusersVersion, "0.40.0.dev0");
  assert.deepEqual(pipe.components, {
    bert: { library: "latent_diffusion", className: "LDMBertModel" },
    scheduler: { library: "diffusers", className: "DDIMScheduler" },
    tokenizer: { library: "transformers", className: "BertTokenizer" },
    unet: { library: "diffusers", className: "UNet2DConditionModel" },
    vqvae: { library: "diffusers", className: "AutoencoderKL" },
  });
  const unet = await pipe.openComponent("unet");
  try {
    assert.equal(unet.config._class_name, "UNet2DConditionModel");
    assert.deepEqual(unet.config.block_out_channels, [32, 64]);
    assert.match(unet.weightsPath, /diffusion_pytorch_model\.safetensors$/);
    assert.deepEqual(unet.weights.info("conv_in.weight").shape, [32, 4, 3, 3]);
  } finally {
    unet.close();
  }
  const bert = await pipe.openComponent("bert");
  assert.match(bert.weightsPath, /bert\/model\.safetensors$/);
  assert.ok(bert.weights.has("model.embed_tokens.weight"));
  bert.close();
  await assert.rejects(
    () => pipe.openComponent("safety_checker"),
    /no component 'safety_checker'; components: bert, sched/,
  );

  const bin = await openComponent(join(FIXTURES, "ldm-text2im-bin", "vqvae"));
  assert.match(bin.weightsPath, /diffusion_pytorch_model\.bin$/);
  assert.equal(bin.weights.names().length, 124);
  bin.close();
});

Deno.test("openPipelineFolder() / openComponent() name the missing or malformed file", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("no model_index.json", async () => {
      await assert.rejects(
        () => openPipelineFolder(dir),
        (e) => e instanceof Deno.errors.NotFound && e.message.includes(join(dir, "model_index.json")),
      );
    });
    await t.step("a model_index.json without _class_name or with a bad entry", async () => {
      await Deno.writeTextFile(join(dir, "model_index.json"), JSON.stringify({ unet: ["diffusers", "UNet2DModel"] }));
      await assert.rejects(() => openPipelineFolder(dir), /_class_name must be a non-empty string/);
      await Deno.writeTextFile(
        join(dir, "model_index.json"),
        JSON.stringify({ _class_name: "X", unet: "UNet2DModel" }),
      );
      await assert.rejects(
        () => openPipelineFolder(dir),
        /component 'unet' must be \[library, class\]: got "UNet2DModel"/,
      );
      await Deno.writeTextFile(join(dir, "model_index.json"), "{oops");
      await assert.rejects(() => openPipelineFolder(dir), SyntaxError);
      await Deno.writeTextFile(
        join(dir, "model_index.json"),
        JSON.stringify({ _class_name: "X", safety_checker: [null, null], unet: ["diffusers", "UNet2DModel"] }),
      );
      assert.deepEqual(Object.keys((await openPipelineFolder(dir)).components), ["unet"]);
    });
    const comp = join(dir, "unet");
    await Deno.mkdir(comp);
    await t.step("no config.json", async () => {
      await assert.rejects(
        () => openComponent(comp),
        (e) => e instanceof Deno.errors.NotFound && e.message.includes(join(comp, "config.json")),
      );
    });
    await t.step("no weights, and a variant that was not asked for", async () => {
      await Deno.writeTextFile(join(comp, "config.json"), "{}");
      await assert.rejects(
        () => openComponent(comp),
        /no weights in .*unet: tried diffusion_pytorch_model\.safetensors, /,
      );
      await Deno.copyFile(
        join(FIXTURES, "ldm-super-resolution/unet/diffusion_pytorch_model.safetensors"),
        join(comp, "diffusion_pytorch_model.fp16.safetensors"),
      );
      await assert.rejects(
        () => openComponent(comp),
        /found diffusion_pytorch_model\.fp16\.safetensors \(a weights variant\?/,
      );
      assert.match(await findWeightsFile(comp, { variant: "fp16" }), /diffusion_pytorch_model\.fp16\.safetensors$/);
      const c = await openComponent(comp, { variant: "fp16" });
      assert.ok(c.weights.names().length > 0);
      c.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

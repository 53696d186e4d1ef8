import assert from "node:assert/strict";
import { join } from "node:path";
import { openWeights, type SafetensorsTensor, writeSafetensors } from "../checkpoint/mod.ts";
import type { DType } from "../checkpoint/mod.ts";
import { convertPipeline, type ConvertProgress } from "./convert.ts";
import { readManifest, verifyRepository } from "./manifest.ts";
import { main as cliMain } from "./cli.ts";

const SR = new URL("../../tests/fixtures/diffusers-tiny/ldm-super-resolution/", import.meta.url).pathname;

/** A writable copy of the tiny super-resolution pipeline (the fastest to convert). */
async function copySR(dir: string): Promise<string> {
  const src = join(dir, "src");
  for (const sub of ["", "scheduler", "unet", "vqvae"]) {
    await Deno.mkdir(join(src, sub), { recursive: true });
    for await (const e of Deno.readDir(join(SR, sub))) {
      if (e.isFile) await Deno.copyFile(join(SR, sub, e.name), join(src, sub, e.name));
    }
  }
  return src;
}

/** Rewrites a component's safetensors file, replacing tensors through `edit`. */
async function rewriteWeights(
  file: string,
  edit: (name: string, t: SafetensorsTensor) => SafetensorsTensor,
): Promise<void> {
  const w = await openWeights(file);
  const tensors: SafetensorsTensor[] = [];
  for (const name of w.names()) {
    const { dtype, shape } = w.info(name);
    tensors.push(edit(name, { name, dtype: dtype as DType, shape, data: await w.readRaw(name) }));
  }
  w.close();
  await writeSafetensors(file, tensors);
}

/** Names in `dir` (to check nothing temporary was left behind). */
async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

async function withTemp(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("convertPipeline() writes the repository layout, a verifiable manifest and ordered progress", async () => {
  await withTemp(async (dir) => {
    const out = join(dir, "out", "sr");
    const events: ConvertProgress[] = [];
    const result = await convertPipeline(SR, out, { onProgress: (e) => events.push(e) });
    assert.deepEqual(await entries(join(dir, "out")), ["sr"]);
    assert.deepEqual(await entries(out), ["ldm_onnx.json", "model_index.json", "scheduler", "unet", "vqvae"]);
    assert.deepEqual(await entries(join(out, "unet")), ["config.json", "model.onnx"]);
    assert.deepEqual(await entries(join(out, "vqvae")), ["config.json", "decoder.onnx", "encoder.onnx"]);
    assert.deepEqual(await verifyRepository(out), []);

    const m = await readManifest(out);
    assert.deepEqual(m, result.manifest);
    assert.equal(m.pipeline, "LDMSuperResolutionPipeline");
    assert.equal(m.dtype, "fp32");
    assert.equal(m.source.name, "ldm-super-resolution");
    assert.deepEqual(Object.keys(m.source.files).sort(), [
      "model_index.json",
      "scheduler/scheduler_config.json",
      "unet/config.json",
      "unet/diffusion_pytorch_model.safetensors",
      "vqvae/config.json",
      "vqvae/diffusion_pytorch_model.safetensors",
    ]);
    assert.equal(m.components.scheduler?.kind, "copied");
    const unet = m.components.unet!;
    assert.equal(unet.kind, "converted");
    assert.equal(unet.graphs?.model?.file, "unet/model.onnx");
    assert.equal(unet.graphs?.model?.externalData, null);
    assert.deepEqual(unet.unusedWeights, []);
    // Every checkpoint parameter of both models ends up in some graph.
    const src = await openWeights(join(SR, "unet/diffusion_pytorch_model.safetensors"));
    const params = src.names().reduce((n, k) => n + src.info(k).shape.reduce((a, b) => a * b, 1), 0);
    src.close();
    assert.equal(unet.parameters, params);
    assert.equal(unet.graphs?.model?.parameters, params);
    assert.deepEqual(m.components.vqvae?.unusedWeights, []);

    assert.deepEqual(events[0], { kind: "start", components: ["unet", "vqvae"], graphs: 3, dtype: "fp32" });
    assert.equal(events.at(-1)?.kind, "done");
    const starts = events.filter((e) => e.kind === "graph-start");
    assert.deepEqual(starts.map((e) => e.file), ["unet/model.onnx", "vqvae/encoder.onnx", "vqvae/decoder.onnx"]);
    for (const s of starts) {
      const weights = events.filter((e) => e.kind === "weight" && e.file === s.file);
      assert.ok(weights.length >= s.weights && s.weights > 0, s.file);
    }
    assert.equal(events.filter((e) => e.kind === "hash").length, Object.keys(m.files).length);
  });
});

Deno.test("convertPipeline() is deterministic: converting twice gives byte-identical files", async () => {
  await withTemp(async (dir) => {
    const a = await convertPipeline(SR, join(dir, "a"), { components: ["vqvae"], hashSources: false });
    const b = await convertPipeline(SR, join(dir, "b"), { components: ["vqvae"], hashSources: false });
    assert.deepEqual(a.manifest.files, b.manifest.files);
    assert.equal(a.manifest.components.unet?.kind, "skipped");
    assert.deepEqual(await entries(join(dir, "a")), ["ldm_onnx.json", "model_index.json", "scheduler", "vqvae"]);
    assert.deepEqual(a.manifest.source.files, {});
  });
});

Deno.test("convertPipeline() leaves nothing behind when it fails or is aborted", async (t) => {
  await withTemp(async (dir) => {
    const src = await copySR(dir);
    const outParent = join(dir, "out");
    await Deno.mkdir(outParent);
    const out = join(outParent, "repo");
    const nothingLeft = async () => assert.deepEqual(await entries(outParent), []);

    await t.step("bad options", async () => {
      await assert.rejects(
        () => convertPipeline(src, out, { dtype: "fp8" as "fp16" }),
        /dtype must be "fp32" or "fp16": got "fp8"/,
      );
      await assert.rejects(
        () => convertPipeline(src, out, { components: ["bert"] }),
        /'bert' is not a model component/,
      );
      await assert.rejects(() => convertPipeline(src, join(src, "x")), /outDir must not be inside srcDir/);
      await nothingLeft();
    });

    await t.step("abort during the first graph", async () => {
      const controller = new AbortController();
      await assert.rejects(
        () =>
          convertPipeline(src, out, {
            signal: controller.signal,
            onProgress: (e) => e.kind === "weight" && controller.abort(new Error("stop!")),
          }),
        /stop!/,
      );
      await nothingLeft();
    });

    await t.step("a weight whose shape does not match the config", async () => {
      const file = join(src, "vqvae/diffusion_pytorch_model.safetensors");
      const backup = await Deno.readFile(file);
      await rewriteWeights(file, (name, t) => name === "post_quant_conv.weight" ? { ...t, shape: [9, 1, 1, 1] } : t);
      await assert.rejects(() => convertPipeline(src, out), /post_quant_conv\.weight/);
      await nothingLeft();
      await Deno.writeFile(file, backup);
    });

    await t.step("truncated weights", async () => {
      const file = join(src, "unet/diffusion_pytorch_model.safetensors");
      const backup = await Deno.readFile(file);
      await Deno.writeFile(file, backup.subarray(0, backup.length - 1000));
      await assert.rejects(() => convertPipeline(src, out), /truncated/);
      await nothingLeft();
      await Deno.writeFile(file, backup);
    });

    await t.step("a missing config.json", async () => {
      await Deno.rename(join(src, "vqvae/config.json"), join(src, "vqvae/config.bak"));
      await assert.rejects(
        () => convertPipeline(src, out),
        (e) => e instanceof Deno.errors.NotFound && e.message.includes(join(src, "vqvae/config.json")),
      );
      await nothingLeft();
      await Deno.rename(join(src, "vqvae/config.bak"), join(src, "vqvae/config.json"));
    });

    await t.step("a config the builders cannot honour", async () => {
      const path = join(src, "unet/config.json");
      const text = await Deno.readTextFile(path);
      await Deno.writeTextFile(path, JSON.stringify({ ...JSON.parse(text), resnet_time_scale_shift: "scale_shift" }));
      await assert.rejects(() => convertPipeline(src, out), /unet \(UNet2DModel\) model: .*resnet_time_scale_shift/);
      await nothingLeft();
      await Deno.writeTextFile(path, text);
    });

    await t.step("a component class the converter does not know", async () => {
      const path = join(src, "model_index.json");
      const text = await Deno.readTextFile(path);
      await Deno.writeTextFile(path, JSON.stringify({ ...JSON.parse(text), safety_checker: ["x", "SafetyChecker"] }));
      await assert.rejects(
        () => convertPipeline(src, out),
        /component 'safety_checker' has class SafetyChecker, which this converter does not support \(models: LDMBertModel/,
      );
      await nothingLeft();
      await Deno.writeTextFile(path, text);
    });

    await t.step("an existing outDir is kept unless overwrite is set", async () => {
      await Deno.mkdir(out);
      await Deno.writeTextFile(join(out, "old.txt"), "old");
      await assert.rejects(() => convertPipeline(src, out, { components: ["vqvae"] }), Deno.errors.AlreadyExists);
      assert.deepEqual(await entries(out), ["old.txt"]);
      await convertPipeline(src, out, { components: ["vqvae"], overwrite: true });
      assert.ok(!(await entries(out)).includes("old.txt"));
      assert.deepEqual(await entries(outParent), ["repo"]);
    });
  });
});

Deno.test("deno task convert (cli main) converts, and rejects bad arguments with exit code 2", async () => {
  await withTemp(async (dir) => {
    const lines: string[] = [];
    const io = { out: (s: string) => lines.push(s), err: (s: string) => lines.push(s) };
    const main = (args: string[]) => cliMain(args, io);
    assert.equal(await main([SR]), 2);
    assert.equal(await main([SR, join(dir, "x"), "--dtype", "int8"]), 2);
    assert.equal(await main([SR, join(dir, "x"), "--bogus"]), 2);
    assert.equal(await main([SR, join(dir, "x"), "--external-data-threshold", "-5"]), 2);
    assert.equal(await main([SR, join(dir, "x"), "--components", "unet", "--quiet", "--no-source-hash"]), 0);
    assert.equal((await readManifest(join(dir, "x"))).components.vqvae?.kind, "skipped");
    assert.match(lines.join("\n"), /unet\s+UNet2DModel\s+model\.onnx/);
    assert.equal(await main([SR, join(dir, "x"), "--components", "unet", "--quiet"]), 1); // exists
    assert.match(lines.at(-1)!, /outDir already exists/);
  });
});

/**
 * The functions end to end on the built-in models: a real server on 127.0.0.1 whose worker runs the ONNX pipelines
 * (CPU provider, few steps to keep CI short).
 */
import assert from "node:assert/strict";
import { decodeImage } from "@ldm/core/image";
import { imageResponseSchema, modelListSchema } from "@ldm/sdk/schemas";
import { loadConfig } from "../functions/config.ts";
import { silentLogger } from "../functions/logger.ts";
import { type RunningServer, startServer } from "../functions/server.ts";

const config = loadConfig({ PORT: "0", LDM_INTRA_OP_THREADS: "1", LDM_MAX_BATCH_SIZE: "4" });
const present = [config.textToImageModelDir, config.superResolutionModelDir].every((d) => {
  try {
    return Deno.statSync(`${d}/model_index.json`).isFile;
  } catch {
    return false;
  }
});

async function withServer(fn: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = startServer({ config, logger: silentLogger, handleSignals: false });
  try {
    while (server.runner.status().state === "loading") await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(server.runner.status(), { state: "ready" });
    await fn(server);
  } finally {
    await server.shutdown();
  }
}

function post(server: RunningServer, path: string, body: BodyInit, headers: Record<string, string>) {
  return fetch(`${server.url}${path}`, { method: "POST", headers, body });
}

Deno.test({
  name: "built-in models: both functions answer through the worker-hosted ONNX pipelines",
  ignore: !present,
  fn: () =>
    withServer(async (server) => {
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 200);
      await ready.body?.cancel();
      const models = modelListSchema.parse(await (await fetch(`${server.url}/v1/models`)).json());
      assert.deepEqual(models.data.map((m) => [m.id, m.task, m.execution_provider]), [
        ["ldm-text2im-tiny", "text-to-image", "cpu"],
        ["ldm-super-resolution-tiny", "super-resolution", "cpu"],
      ]);

      // Two images from one request, and the second one again alone: image i of a request is reproducible
      // alone with seed + i (both ran through the real batched pipeline).
      const prompt = "a big red circle on a blue background";
      const common = { prompt, num_inference_steps: 3, guidance_scale: 5 };
      const pair = imageResponseSchema.parse(
        await (await post(
          server,
          "/v1/text-to-image",
          JSON.stringify({ ...common, seed: 21, num_images_per_prompt: 2 }),
          {
            "content-type": "application/json",
          },
        )).json(),
      );
      assert.deepEqual(pair.images.map((i) => [i.seed, i.width, i.height, i.content_type]), [
        [21, 64, 64, "image/png"],
        [22, 64, 64, "image/png"],
      ]);
      assert.equal(pair.model, "ldm-text2im-tiny");
      const alone = await post(server, "/v1/text-to-image", JSON.stringify({ ...common, seed: 22 }), {
        "content-type": "application/json",
        accept: "image/png",
      });
      assert.equal(alone.headers.get("x-seed"), "22");
      const a = await decodeImage(Uint8Array.fromBase64(pair.images[1]!.data));
      const b = await decodeImage(new Uint8Array(await alone.arrayBuffer()));
      let maxDiff = 0;
      for (let i = 0; i < a.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.data[i]! - b.data[i]!));
      assert.ok(maxDiff <= 1, `seed 22 alone differs from image 2 of the seed-21 request by ${maxDiff} levels`);

      // Upscale the generated 64×64 PNG 4×, as a raw body, streaming progress.
      const lowRes = Uint8Array.fromBase64(pair.images[0]!.data);
      const sse = await post(server, "/v1/super-resolution?num_inference_steps=2&seed=3", lowRes, {
        "content-type": "image/png",
        accept: "text/event-stream",
      });
      const text = await sse.text();
      const events = text.split("\n\n").filter((b) => b.startsWith("event: "));
      assert.deepEqual(events.map((e) => e.split("\n")[0]), ["event: progress", "event: progress", "event: result"]);
      const result = imageResponseSchema.parse(JSON.parse(events[2]!.split("\n")[1]!.slice(6)));
      assert.deepEqual(result.images.map((i) => [i.width, i.height, i.seed]), [[256, 256, 3]]);
      assert.equal(result.model, "ldm-super-resolution-tiny");
      const up = await decodeImage(Uint8Array.fromBase64(result.images[0]!.data));
      assert.deepEqual([up.width, up.height], [256, 256]);
    }),
});

Deno.test({
  name: "built-in models: the pipeline's own input checks come back as 422 naming the field",
  ignore: !present,
  fn: () =>
    withServer(async (server) => {
      // 68 is not a multiple of the VAE factor 8 (the latent size is width / 8): refused up front.
      const res = await post(server, "/v1/text-to-image", JSON.stringify({ prompt: "x", width: 68 }), {
        "content-type": "application/json",
      });
      assert.equal(res.status, 422);
      const body = await res.json();
      assert.equal(body.error.param, "width");
      assert.match(body.error.message, /multiple of 8/);
    }),
});

/**
 * The SDK with the runtime's own `fetch` against the real server (`startServer`: `Deno.serve` + the Hono app)
 * listening on 127.0.0.1, hosting the fake pipelines: every endpoint, progress over a real event stream, and a
 * client that goes away (abort, timeout) freeing the server's generation slot.
 */
import assert from "node:assert/strict";
import { AbortError, ConnectionError, createClient, NotFoundError, TimeoutError } from "@ldm/sdk";
import { API_KEY, loopbackServer, pngOf, until } from "./sdk_node/harness.ts";

Deno.test("the SDK drives a server listening on loopback", async (t) => {
  const srv = loopbackServer({ fake: { stepMs: 5 } });
  const client = createClient({ baseUrl: srv.url, apiKey: API_KEY, timeoutMs: 30_000 });
  try {
    await t.step("health() and models()", async () => {
      assert.deepEqual(await client.health(), { ready: true, status: "ready" });
      const models = await client.models();
      assert.deepEqual(models.map((m) => [m.id, m.task, m.upscaleFactor]), [
        ["fake-text2im", "text-to-image", null],
        ["fake-super-resolution", "super-resolution", 4],
      ]);
    });

    await t.step("textToImage() with progress over a real event stream", async () => {
      const steps: number[] = [];
      const result = await client.textToImage({ prompt: "a squirrel", numInferenceSteps: 3, seed: 11 }, {
        onProgress: (p) => steps.push(p.step),
      });
      assert.deepEqual(steps, [1, 2, 3]);
      assert.deepEqual(result.images.map((i) => [i.seed, i.width, i.height, i.contentType]), [
        [11, 32, 32, "image/png"],
      ]);
    });

    await t.step("superResolve() of the generated image, sent as a stream", async () => {
      const small = await client.textToImage({ prompt: "x", numInferenceSteps: 1, seed: 1 });
      const bytes = small.images[0]!.data;
      const stream = new Blob([bytes]).stream();
      const result = await client.superResolve({ image: stream, numInferenceSteps: 2, seed: 9 });
      assert.deepEqual(result.images.map((i) => [i.seed, i.width, i.height]), [[9, 128, 128]]);
    });

    for (const mode of ["json", "event-stream"] as const) {
      await t.step(`abort during a ${mode} generation cancels it on the server and frees the slot`, async () => {
        const calls = srv.runner.calls.length;
        const controller = new AbortController();
        const call = client.textToImage(
          { prompt: "long", numInferenceSteps: 1000 },
          mode === "json" ? { signal: controller.signal } : { signal: controller.signal, onProgress: () => {} },
        );
        await until(() => (srv.runner.calls[calls]?.stepsRun ?? 0) >= 2);
        controller.abort();
        await assert.rejects(call, AbortError);
        await until(() => srv.runner.calls[calls]!.outcome !== "ok" || srv.runner.calls[calls]!.stepsRun === 1000);
        assert.equal(srv.runner.calls[calls]!.outcome, "cancelled");
        await srv.server.queue.whenIdle();
        const next = await client.textToImage({ prompt: "next", numInferenceSteps: 1 }, { maxRetries: 0 });
        assert.equal(next.images.length, 1);
      });
    }

    await t.step("timeoutMs gives TimeoutError and the server stops the work", async () => {
      const calls = srv.runner.calls.length;
      await assert.rejects(
        client.superResolve({ image: await pngOf(32, 32), numInferenceSteps: 1000 }, { timeoutMs: 100 }),
        (e) => e instanceof TimeoutError && e.timeoutMs === 100,
      );
      await until(() => srv.runner.calls[calls]?.outcome === "cancelled");
      await srv.server.queue.whenIdle();
    });

    await t.step("a route the server does not have is NotFoundError", async () => {
      const wrongBase = createClient({ baseUrl: `${srv.url}/nothing-here`, apiKey: API_KEY, maxRetries: 0 });
      await assert.rejects(wrongBase.models(), NotFoundError);
    });
  } finally {
    await srv.close();
  }

  await t.step("a server that is gone is ConnectionError", async () => {
    const gone = createClient({ baseUrl: srv.url, maxRetries: 1, initialRetryDelayMs: 1 });
    await assert.rejects(gone.health(), (e) => e instanceof ConnectionError && e.cause instanceof Error);
  });
});

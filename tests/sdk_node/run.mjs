// The SDK under Node.js (18+), against a running server: no Deno APIs here, and none may be needed by the SDK.
//
//   node tests/sdk_node/run.mjs <base-url> <sdk-bundle.mjs> <api-key>
//
// <sdk-bundle.mjs> is `sdk/mod.ts` bundled to one ES module with zod inside (`deno bundle --platform browser`),
// which is what tests/sdk_node_test.ts builds before running this. The server must host the fake runner of
// `@ldm/functions/testing` (32×32 text-to-image, 4× super-resolution) with one generation slot and no waiting room.
// Exits 0 when every check passes, 1 otherwise.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

const [baseUrl, bundlePath, apiKey] = process.argv.slice(2);
if (!baseUrl || !bundlePath || !apiKey) {
  console.error("usage: node tests/sdk_node/run.mjs <base-url> <sdk-bundle.mjs> <api-key>");
  process.exit(2);
}

const sdk = await import(pathToFileURL(bundlePath).href);
const {
  AbortError,
  AuthenticationError,
  createClient,
  InvalidParameterError,
  LdmError,
  TimeoutError,
  UnprocessableEntityError,
} = sdk;

const PNG = [0x89, 0x50, 0x4e, 0x47];
const isPng = (bytes) => PNG.every((b, i) => bytes[i] === b);
const client = createClient({ baseUrl, apiKey, timeoutMs: 30_000 });

/** Polls until the server runs a generation (its first progress event arrived). */
function progressGate() {
  let open;
  const opened = new Promise((resolve) => (open = resolve));
  return { opened, onProgress: () => open() };
}

const checks = [
  ["runs without Deno", () => {
    assert.equal(typeof globalThis.Deno, "undefined");
    assert.match(process.version, /^v\d+/);
  }],

  ["health() and models()", async () => {
    assert.deepEqual(await client.health(), { ready: true, status: "ready" });
    const models = await client.models();
    assert.deepEqual(models.map((m) => m.task).sort(), ["super-resolution", "text-to-image"]);
  }],

  ["textToImage() returns decoded images with seeds", async () => {
    const result = await client.textToImage({
      prompt: "a squirrel",
      numImagesPerPrompt: 2,
      seed: 21,
      numInferenceSteps: 2,
    });
    assert.deepEqual(result.images.map((i) => [i.seed, i.width, i.height, i.contentType]), [
      [21, 32, 32, "image/png"],
      [22, 32, 32, "image/png"],
    ]);
    for (const image of result.images) {
      assert.ok(image.data instanceof Uint8Array);
      assert.ok(isPng(image.data));
    }
    assert.equal(typeof result.requestId, "string");
    assert.ok(result.timings.totalMs >= 0);
  }],

  ["textToImage() reports progress from the event stream", async () => {
    const steps = [];
    const result = await client.textToImage({ prompt: "x", numInferenceSteps: 3, outputFormat: "jpeg" }, {
      onProgress: (p) => steps.push([p.step, p.total]),
    });
    assert.deepEqual(steps, [[1, 3], [2, 3], [3, 3]]);
    assert.equal(result.images[0].contentType, "image/jpeg");
  }],

  ["superResolve() takes a Uint8Array, a Blob and a ReadableStream", async () => {
    const small = (await client.textToImage({ prompt: "x", numInferenceSteps: 1, seed: 3 })).images[0].data;
    for (const image of [small, new Blob([small]), new Blob([small]).stream()]) {
      const result = await client.superResolve({ image, numInferenceSteps: 2, seed: 4 });
      assert.deepEqual(result.images.map((i) => [i.seed, i.width, i.height]), [[4, 128, 128]]);
      assert.ok(isPng(result.images[0].data));
    }
  }],

  ["errors are classes with status, code and param", async () => {
    const wrongKey = createClient({ baseUrl, apiKey: "wrong-key-0123456789abcdef" });
    await assert.rejects(wrongKey.models(), (e) => e instanceof AuthenticationError && e.status === 401);
    await assert.rejects(
      client.textToImage({ prompt: "x", width: 33, numInferenceSteps: 1 }),
      (e) => e instanceof UnprocessableEntityError && e.param === "width" && e instanceof LdmError,
    );
    await assert.rejects(
      client.textToImage({ prompt: "x", numInferenceSteps: 0 }),
      (e) => e instanceof InvalidParameterError && e.param === "numInferenceSteps",
    );
  }],

  ["abort cancels the server's work and frees its slot", async () => {
    const controller = new AbortController();
    const gate = progressGate();
    const call = client.textToImage({ prompt: "long", numInferenceSteps: 1000 }, {
      signal: controller.signal,
      onProgress: gate.onProgress,
    });
    await gate.opened;
    controller.abort();
    await assert.rejects(call, (e) => e instanceof AbortError);
    // One slot and no waiting room: the server answers 429 until the aborted run has released the slot.
    const waits = [];
    const clock = { sleep: (ms) => (waits.push(ms), new Promise((r) => setTimeout(r, 50))) };
    const patient = createClient({ baseUrl, apiKey, clock, maxRetries: 60 });
    const next = await patient.textToImage({ prompt: "next", numInferenceSteps: 1 });
    assert.equal(next.images.length, 1);
    assert.ok(waits.every((w) => w === 1000), `waits ${waits}`);
  }],

  ["a 429 is retried after Retry-After", async () => {
    const gate = progressGate();
    const stop = new AbortController();
    const busy = client.textToImage({ prompt: "busy", numInferenceSteps: 1000 }, {
      signal: stop.signal,
      onProgress: gate.onProgress,
    }).then(() => null, (e) => e);
    await gate.opened;
    // Instead of sleeping, the "wait" stops the generation that holds the only slot (freed within a step).
    const waits = [];
    const clock = {
      sleep: (ms) => {
        waits.push(ms);
        stop.abort();
        return new Promise((r) => setTimeout(r, 50));
      },
    };
    const retrying = createClient({ baseUrl, apiKey, clock, maxRetries: 60 });
    const result = await retrying.textToImage({ prompt: "second", numInferenceSteps: 1 });
    assert.equal(result.images.length, 1);
    assert.ok(waits.length >= 1 && waits.every((w) => w === 1000), `waits ${waits}`);
    assert.ok((await busy) instanceof AbortError);
  }],

  ["timeoutMs gives TimeoutError", async () => {
    await assert.rejects(
      client.textToImage({ prompt: "slow", numInferenceSteps: 1000 }, { timeoutMs: 100 }),
      (e) => e instanceof TimeoutError && e.timeoutMs === 100,
    );
  }],
];

let passed = 0;
let failed = 0;
for (const [name, check] of checks) {
  try {
    await check();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n${e?.stack ?? e}`);
  }
}
console.log(`node ${process.version}: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

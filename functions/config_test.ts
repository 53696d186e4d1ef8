import assert from "node:assert/strict";
import { CONFIG_VARIABLES, ConfigError, isLoopbackHost, loadConfig } from "./config.ts";

Deno.test("loadConfig() fills every default from CONFIG_VARIABLES", () => {
  const c = loadConfig({});
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.port, 8000);
  assert.deepEqual(c.functions, ["text-to-image", "super-resolution"]);
  assert.match(c.textToImageModelDir, /models\/builtin\/ldm-text2im-tiny$/);
  assert.match(c.superResolutionModelDir, /models\/builtin\/ldm-super-resolution-tiny$/);
  assert.deepEqual(c.executionProviders, ["cpu"]);
  assert.deepEqual(c.apiKeys, []);
  assert.deepEqual(c.queue, { concurrency: 1, maxQueue: 32, maxBatchImages: 4 });
  assert.equal(c.limits.maxBodyBytes, 10 * 1024 * 1024);
  assert.equal(c.requestTimeoutMs, 300_000);
  assert.equal(c.logLevel, "info");
  assert.deepEqual(c.idempotency, { ttlMs: 3_600_000, maxBytes: 256 * 1024 * 1024, graceMs: 15_000 });
});

Deno.test("loadConfig() reads every variable it documents", () => {
  const env = {
    PORT: "9000",
    HOST: "0.0.0.0",
    LDM_FUNCTIONS: "super-resolution",
    LDM_TEXT_TO_IMAGE_MODEL_DIR: "/m/t2i",
    LDM_SUPER_RESOLUTION_MODEL_DIR: "/m/sr",
    LDM_EXECUTION_PROVIDERS: "cuda, webgpu ,cpu",
    LDM_INTRA_OP_THREADS: "4",
    LDM_TEXT_CACHE_ENTRIES: "8",
    LDM_TEXT_CACHE_BYTES: "1048576",
    LDM_API_KEYS: "aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb",
    LDM_API_KEYS_FILE: "/secrets/keys",
    LDM_ALLOW_ANONYMOUS: "false",
    LDM_MAX_BODY_BYTES: "2048",
    LDM_MAX_INPUT_PIXELS: "4096",
    LDM_MAX_DIMENSION: "512",
    LDM_MAX_STEPS: "100",
    LDM_MAX_IMAGES_PER_REQUEST: "8",
    LDM_MAX_PROMPT_LENGTH: "300",
    LDM_CONCURRENCY: "2",
    LDM_QUEUE_SIZE: "0",
    LDM_MAX_BATCH_SIZE: "8",
    LDM_REQUEST_TIMEOUT_MS: "60000",
    LDM_SHUTDOWN_GRACE_MS: "5000",
    LDM_IDEMPOTENCY_TTL_MS: "600000",
    LDM_IDEMPOTENCY_MAX_BYTES: "1048576",
    LDM_IDEMPOTENCY_GRACE_MS: "0",
    LDM_LOG_LEVEL: "debug",
  };
  assert.deepEqual(Object.keys(env).sort(), CONFIG_VARIABLES.map((v) => v.name).sort());
  const c = loadConfig(env, { readTextFile: () => "# comment\ncccccccccccccccc\n\n" });
  assert.equal(c.port, 9000);
  assert.equal(c.host, "0.0.0.0");
  assert.deepEqual(c.functions, ["super-resolution"]);
  assert.deepEqual([c.textToImageModelDir, c.superResolutionModelDir], ["/m/t2i", "/m/sr"]);
  assert.deepEqual(c.executionProviders, ["cuda", "webgpu", "cpu"]);
  assert.equal(c.intraOpThreads, 4);
  assert.deepEqual(c.apiKeys, ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"]);
  assert.deepEqual(c.limits, {
    maxBodyBytes: 2048,
    maxInputPixels: 4096,
    maxDimension: 512,
    maxSteps: 100,
    maxImagesPerRequest: 8,
    maxPromptLength: 300,
  });
  assert.deepEqual(c.queue, { concurrency: 2, maxQueue: 0, maxBatchImages: 8 });
  assert.deepEqual([c.requestTimeoutMs, c.shutdownGraceMs, c.logLevel], [60000, 5000, "debug"]);
  assert.deepEqual(c.idempotency, { ttlMs: 600_000, maxBytes: 1_048_576, graceMs: 0 });
  assert.deepEqual(c.textEmbeddingCache, { maxEntries: 8, maxBytes: 1_048_576 });
});

Deno.test("loadConfig() sizes the text-embedding cache; 0 in either variable turns it off", () => {
  assert.deepEqual(loadConfig({}).textEmbeddingCache, { maxEntries: 32, maxBytes: 16 * 1024 * 1024 });
  assert.equal(loadConfig({ LDM_TEXT_CACHE_ENTRIES: "0" }).textEmbeddingCache, false);
  assert.equal(loadConfig({ LDM_TEXT_CACHE_BYTES: "0" }).textEmbeddingCache, false);
  assert.throws(
    () => loadConfig({ LDM_TEXT_CACHE_ENTRIES: "-1", LDM_TEXT_CACHE_BYTES: "16MiB" }),
    (e) =>
      e instanceof ConfigError && e.problems.length === 2 &&
      /LDM_TEXT_CACHE_ENTRIES must be an integer in \[0, 1000000\]: got "-1"/.test(e.message) &&
      /LDM_TEXT_CACHE_BYTES must be an integer in \[0, 68719476736\]: got "16MiB"/.test(e.message),
  );
});

Deno.test("loadConfig() lists every invalid variable with its value", () => {
  try {
    loadConfig({
      PORT: "80a",
      LDM_CONCURRENCY: "0",
      LDM_LOG_LEVEL: "loud",
      LDM_FUNCTIONS: "txt2img",
      LDM_ALLOW_ANONYMOUS: "maybe",
      LDM_IDEMPOTENCY_TTL_MS: "-1",
      LDM_IDEMPOTENCY_MAX_BYTES: "1e9",
    });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.problems.length, 7);
    assert.match(e.message, /LDM_IDEMPOTENCY_TTL_MS must be an integer in \[0, 604800000\]: got "-1"/);
    assert.match(e.message, /LDM_IDEMPOTENCY_MAX_BYTES must be an integer in \[0, 68719476736\]: got "1e9"/);
    assert.match(e.message, /PORT must be an integer in \[0, 65535\]: got "80a"/);
    assert.match(e.message, /LDM_CONCURRENCY must be an integer in \[1, 64\]: got "0"/);
    assert.match(e.message, /LDM_LOG_LEVEL must be one of debug, info, warn, error: got "loud"/);
    assert.match(e.message, /LDM_FUNCTIONS must list text-to-image and\/or super-resolution: got "txt2img"/);
    assert.match(e.message, /LDM_ALLOW_ANONYMOUS must be true or false: got "maybe"/);
  }
});

Deno.test("loadConfig() refuses a non-loopback HOST without keys unless anonymous access is explicit", () => {
  assert.throws(() => loadConfig({ HOST: "0.0.0.0" }), /not a loopback address and no API keys/);
  assert.equal(loadConfig({ HOST: "0.0.0.0", LDM_ALLOW_ANONYMOUS: "true" }).allowAnonymous, true);
  assert.deepEqual(loadConfig({ HOST: "0.0.0.0", LDM_API_KEYS: "k".repeat(16) }).apiKeys, ["k".repeat(16)]);
  assert.equal(loadConfig({ HOST: "::1" }).host, "::1");
  assert.throws(() => loadConfig({ LDM_API_KEYS: "short" }), /at least 16 characters/);
  assert.throws(() =>
    loadConfig({ LDM_API_KEYS_FILE: "/nope" }, {
      readTextFile: () => {
        throw new Error("ENOENT");
      },
    }), /LDM_API_KEYS_FILE could not be read \(\/nope\): ENOENT/);
});

Deno.test("loadConfig() lets an entry point fix the functions", () => {
  assert.deepEqual(loadConfig({ LDM_FUNCTIONS: "bogus" }, { functions: ["text-to-image"] }).functions, [
    "text-to-image",
  ]);
});

Deno.test("isLoopbackHost() knows the loopback addresses", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) assert.ok(isLoopbackHost(h), h);
  for (const h of ["0.0.0.0", "10.0.0.1", "::", "example.com"]) assert.ok(!isLoopbackHost(h), h);
});

Deno.test("CONFIG_VARIABLES documents each variable once, and README.md lists them all", async () => {
  const names = CONFIG_VARIABLES.map((v) => v.name);
  assert.equal(new Set(names).size, names.length);
  for (const v of CONFIG_VARIABLES) assert.ok(v.description.length > 10, v.name);
  const readme = await Deno.readTextFile(new URL("./README.md", import.meta.url));
  for (const name of names) assert.ok(readme.includes(`\`${name}\``), `README.md does not document ${name}`);
});

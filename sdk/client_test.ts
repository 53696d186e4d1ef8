import assert from "node:assert/strict";
import config from "./deno.json" with { type: "json" };
import { createClient, SDK_VERSION } from "./client.ts";

Deno.test("SDK_VERSION is the version sdk/deno.json publishes", () => {
  assert.equal(SDK_VERSION, config.version);
});

Deno.test("createClient() keeps a base path and drops trailing slashes", () => {
  assert.equal(createClient({ baseUrl: "http://127.0.0.1:8000/" }).baseUrl, "http://127.0.0.1:8000");
  assert.equal(createClient({ baseUrl: "https://example.com/a/b//" }).baseUrl, "https://example.com/a/b");
});

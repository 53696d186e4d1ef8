import assert from "node:assert/strict";
import { Hono } from "hono";
import { bearerAuth, KeyChecker } from "./auth.ts";
import { toApiError } from "./errors.ts";

Deno.test("KeyChecker.matches() accepts exactly the configured keys", async () => {
  const k = new KeyChecker(["first-key-0123456789", "second-key-0123456789"]);
  assert.equal(await k.matches("first-key-0123456789"), true);
  assert.equal(await k.matches("second-key-0123456789"), true);
  assert.equal(await k.matches("first-key-012345678"), false);
  assert.equal(await k.matches(""), false);
  assert.equal(await new KeyChecker([]).matches("anything"), false);
});

Deno.test("bearerAuth() answers 401 without or with a wrong key and passes the right one", async () => {
  const app = new Hono();
  app.onError((e, c) => {
    const err = toApiError(e);
    for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
    return c.json(err.body("x"), err.status as 401);
  });
  app.use(bearerAuth(["the-only-key-0123456789"]));
  app.get("/", (c) => c.text("in"));
  const none = await app.request("/");
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.code, "missing_api_key");
  assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer realm="ldm"$/);
  const basic = await app.request("/", { headers: { authorization: "Basic dXNlcjpwYXNz" } });
  assert.equal((await basic.json()).error.code, "missing_api_key");
  const wrong = await app.request("/", { headers: { authorization: "Bearer nope" } });
  assert.equal((await wrong.json()).error.code, "invalid_api_key");
  const right = await app.request("/", { headers: { authorization: "Bearer the-only-key-0123456789" } });
  assert.equal(await right.text(), "in");
  const open = new Hono().use(bearerAuth([])).get("/", (c) => c.text("open"));
  assert.equal(await (await open.request("/")).text(), "open");
});

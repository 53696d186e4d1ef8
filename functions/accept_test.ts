import assert from "node:assert/strict";
import { negotiate, NotAcceptableError } from "./accept.ts";

Deno.test("negotiate() picks JSON, events or image bytes from Accept", async (t) => {
  const one = { outputFormat: undefined, imageCount: 1 };
  await t.step("JSON without Accept, with */* and with application/json", () => {
    for (const h of [undefined, "", "*/*", "application/json", "application/*"]) {
      assert.deepEqual(negotiate(h, one), { kind: "json" }, String(h));
    }
  });
  await t.step("events for text/event-stream unless JSON is preferred", () => {
    assert.deepEqual(negotiate("text/event-stream", one), { kind: "sse" });
    assert.deepEqual(negotiate("application/json;q=0.5, text/event-stream", one), { kind: "sse" });
    assert.deepEqual(negotiate("application/json, text/event-stream;q=0.2", one), { kind: "json" });
    assert.throws(() => negotiate("text/*", one), NotAcceptableError);
  });
  await t.step("image bytes for a named image type and one image", () => {
    assert.deepEqual(negotiate("image/png", one), { kind: "image", format: "png" });
    assert.deepEqual(negotiate("image/jpeg", one), { kind: "image", format: "jpeg" });
    assert.deepEqual(negotiate("image/*", one), { kind: "image", format: "png" });
    assert.deepEqual(negotiate("image/webp, image/png;q=0.5", one), { kind: "image", format: "webp" });
    assert.deepEqual(negotiate("image/*", { outputFormat: "jpeg", imageCount: 1 }), { kind: "image", format: "jpeg" });
    assert.deepEqual(negotiate("image/png;q=0.4, application/json", one), { kind: "json" });
  });
  await t.step("JSON when several images and JSON is acceptable; 406 when it is not", () => {
    assert.deepEqual(negotiate("image/png, */*;q=0.1", { outputFormat: undefined, imageCount: 2 }), { kind: "json" });
    assert.throws(() => negotiate("image/png", { outputFormat: undefined, imageCount: 2 }), NotAcceptableError);
  });
  await t.step("406 naming output_format when it contradicts Accept", () => {
    try {
      negotiate("image/png", { outputFormat: "webp", imageCount: 1 });
      assert.fail("expected NotAcceptableError");
    } catch (e) {
      assert.ok(e instanceof NotAcceptableError);
      assert.equal(e.param, "output_format");
    }
  });
  await t.step("406 for nothing acceptable; q=0 excludes", () => {
    assert.throws(() => negotiate("text/html", one), NotAcceptableError);
    assert.throws(() => negotiate("application/json;q=0", one), NotAcceptableError);
  });
});

import assert from "node:assert/strict";
import { jsonLogger } from "./logger.ts";

Deno.test("jsonLogger() writes one JSON object per line at or above its level, errors expanded", () => {
  const lines: string[] = [];
  const log = jsonLogger({ level: "info", write: (l) => lines.push(l), now: () => new Date(0) });
  log.debug("hidden");
  log.info("request", { request_id: "r1", status: 200 });
  log.error("failed", { error: new RangeError("bad") });
  assert.equal(lines.length, 2);
  assert.deepEqual(JSON.parse(lines[0]!), {
    time: "1970-01-01T00:00:00.000Z",
    level: "info",
    msg: "request",
    request_id: "r1",
    status: 200,
  });
  const err = JSON.parse(lines[1]!);
  assert.equal(err.error.name, "RangeError");
  assert.equal(err.error.message, "bad");
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  log.warn("odd", { cyclic });
  assert.equal(JSON.parse(lines[2]!).note, "fields were not serializable");
});

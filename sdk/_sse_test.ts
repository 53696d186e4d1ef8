import assert from "node:assert/strict";
import { type ServerSentEvent, SseParser } from "./_sse.ts";

const encoder = new TextEncoder();

/** Feeds `text` split at every given offset and collects the events. */
function parse(text: string, cuts: number[] = []): ServerSentEvent[] {
  const bytes = encoder.encode(text);
  const parser = new SseParser();
  const out: ServerSentEvent[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...parser.push(bytes.subarray(from, cut)));
    from = cut;
  }
  out.push(...parser.end());
  return out;
}

const STREAM = ": keep-alive\n\n" +
  'event: progress\ndata: {"step":1,"total":2}\n\n' +
  "event: result\ndata: line one\ndata: line two\nid: 7\n\n";

Deno.test("SseParser reads events, joins data lines and skips comments", () => {
  assert.deepEqual(parse(STREAM), [
    { event: "progress", data: '{"step":1,"total":2}', id: "" },
    { event: "result", data: "line one\nline two", id: "7" },
  ]);
});

Deno.test("SseParser gives the same events however the bytes are split", () => {
  const expected = parse(STREAM);
  const length = encoder.encode(STREAM).length;
  for (let cut = 1; cut < length; cut++) assert.deepEqual(parse(STREAM, [cut]), expected, `cut at ${cut}`);
  const everyByte = Array.from({ length: length - 1 }, (_, i) => i + 1);
  assert.deepEqual(parse(STREAM, everyByte), expected);
});

Deno.test("SseParser accepts CRLF and CR line ends, also when CRLF is split between chunks", () => {
  const crlf = STREAM.replaceAll("\n", "\r\n");
  const cr = STREAM.replaceAll("\n", "\r");
  const expected = parse(STREAM);
  assert.deepEqual(parse(crlf), expected);
  assert.deepEqual(parse(cr), expected);
  const at = crlf.indexOf("\r\n") + 1;
  assert.deepEqual(parse(crlf, [at]), expected);
});

Deno.test("SseParser decodes UTF-8 split inside a character and drops a leading BOM", () => {
  const text = "\uFEFFdata: élan 🐿\n\n";
  const bytes = encoder.encode(text);
  const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(parse(text, cuts), [{ event: "message", data: "élan 🐿", id: "" }]);
});

Deno.test("SseParser handles fields without a space or value, and drops an event the stream did not close", () => {
  assert.deepEqual(parse("event:error\ndata:{}\ndata\n\nevent: x\n\ndata: unterminated"), [
    { event: "error", data: "{}\n", id: "" },
  ]);
});

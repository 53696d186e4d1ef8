/**
 * A `text/event-stream` parser as the WHATWG HTML standard describes it (§9.2.6 "Interpreting an event stream"):
 * fields `event`, `data` (joined with newlines) and `id`, comments ignored, a blank line dispatches. Fed byte chunks
 * in any split, so it runs on any `ReadableStream` without `EventSource` (which cannot send headers or a body).
 *
 * @module
 */

/** One dispatched event. */
export interface ServerSentEvent {
  /** The `event` field, `"message"` when none was given. */
  event: string;
  /** The `data` lines joined with `\n`. */
  data: string;
  /** The last `id` field seen, or `""`. */
  id: string;
}

/** Incremental parser: `push()` chunks as they arrive, `end()` when the stream closes. */
export class SseParser {
  readonly #decoder = new TextDecoder("utf-8");
  #buffer = "";
  #skipLeadingLf = false;
  #bomChecked = false;
  #event = "";
  #data: string[] = [];
  #hasData = false;
  #lastId = "";

  /** Parses a chunk; returns the events it completed. */
  push(chunk: Uint8Array): ServerSentEvent[] {
    return this.#consume(this.#decoder.decode(chunk, { stream: true }));
  }

  /** Flushes the decoder at the end of the stream. An event not closed by a blank line is dropped, as the
   * standard says. */
  end(): ServerSentEvent[] {
    const out = this.#consume(this.#decoder.decode());
    this.#buffer = "";
    return out;
  }

  #consume(text: string): ServerSentEvent[] {
    if (!this.#bomChecked && text.length > 0) {
      this.#bomChecked = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const out: ServerSentEvent[] = [];
    let s = this.#buffer + text;
    // A CR ending the previous chunk may be the first half of CRLF.
    if (this.#skipLeadingLf && s.startsWith("\n")) s = s.slice(1);
    this.#skipLeadingLf = false;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      this.#line(s.slice(start, i), out);
      if (c === 0x0d) {
        if (i + 1 < s.length) {
          if (s.charCodeAt(i + 1) === 0x0a) i++;
        } else {
          this.#skipLeadingLf = true;
        }
      }
      start = i + 1;
    }
    this.#buffer = s.slice(start);
    return out;
  }

  #line(line: string, out: ServerSentEvent[]): void {
    if (line === "") {
      if (this.#hasData) out.push({ event: this.#event || "message", data: this.#data.join("\n"), id: this.#lastId });
      this.#event = "";
      this.#data = [];
      this.#hasData = false;
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "data") {
      this.#data.push(value);
      this.#hasData = true;
    } else if (field === "id" && !value.includes("\0")) this.#lastId = value;
    // `retry` and unknown fields do not concern a one-shot request.
  }
}

/**
 * Base64 decoding that runs everywhere `fetch` does: `Uint8Array.fromBase64` where the runtime has it (Deno, recent
 * browsers), `atob` otherwise (Node.js 18–24, older browsers, workers).
 *
 * @module
 */

type FromBase64 = (text: string) => Uint8Array<ArrayBuffer>;

/** Decodes standard base64 with `atob`; throws on malformed input. */
export function decodeBase64Portable(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

const native = (Uint8Array as unknown as { fromBase64?: FromBase64 }).fromBase64;

/** Decodes standard base64 (the server's `data` fields); throws on malformed input. */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  return native ? native.call(Uint8Array, text) : decodeBase64Portable(text);
}

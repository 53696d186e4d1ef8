/**
 * Streaming SHA-256 of files (WebCrypto's digest needs the whole input in memory; multi-gigabyte weights must not).
 *
 * @module
 */
import { createHash } from "node:crypto";

const CHUNK = 8 * 1024 * 1024;

/** The SHA-256 (lower-case hex) and size of a file, read in 8 MiB chunks. */
export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(CHUNK);
  let bytes = 0;
  try {
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    file.close();
  }
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * An encoder worker: PNG/JPEG/WebP-encodes generated images and decodes super-resolution uploads for the worker
 * pool, so that this CPU-heavy JavaScript runs neither on the server's event loop nor on a pipeline worker (the
 * generation slot). One task at a time; the pool sends the next one when it answers.
 *
 * @module
 */
import { decodeUpload, encodeGenerated } from "../codec.ts";
import { RunnerError } from "../runner.ts";
import type { FromCodec, ToCodec } from "./protocol.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToCodec>) => void) | null;
  postMessage(message: FromCodec, transfer?: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;

scope.onmessage = async (e: MessageEvent<ToCodec>) => {
  const msg = e.data;
  try {
    if (msg.type === "encode") {
      const images = await encodeGenerated(msg.result);
      scope.postMessage({ type: "encoded", id: msg.id, images }, images.map((i) => i.data.buffer));
    } else {
      const image = await decodeUpload(msg.bytes, msg.maxPixels);
      scope.postMessage({ type: "decoded", id: msg.id, image }, [image.data.buffer]);
    }
  } catch (err) {
    const error = err instanceof RunnerError
      ? err
      : new RunnerError("internal", `image ${msg.type} failed: ${err instanceof Error ? err.message : String(err)}`);
    scope.postMessage({
      type: "error",
      id: msg.id,
      error: { code: error.code, message: error.message, param: error.param },
    });
  }
};

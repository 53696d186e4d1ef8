/**
 * Messages between the server's main thread and its workers: the pipeline workers (`worker.ts`) and the encoder
 * workers (`codec_worker.ts`). Everything is structured-clone data; image buffers are transferred, not copied.
 *
 * @module
 */
import type {
  DecodedImage,
  EncodedImage,
  GeneratedResult,
  ModelDescriptor,
  RunResult,
  SerializedRunnerError,
  SuperResolutionJob,
  TextToImageJob,
} from "../runner.ts";

/** Main thread → pipeline worker. */
export type ToWorker =
  /** Import `module` and call its `createRunner(options, { logger })`. */
  | { type: "init"; module: string; options: unknown }
  /**
   * Run one pipeline call. With `raw`, answer `generated` (images not encoded) when the runner module can, so the
   * worker takes its next call while the images are encoded elsewhere; otherwise encode them here and answer `result`.
   */
  | { type: "run"; id: number; raw: boolean; task: "text-to-image"; jobs: TextToImageJob[] }
  | { type: "run"; id: number; raw: boolean; task: "super-resolution"; job: SuperResolutionJob }
  /** Cancel call `id` at its next step, or only job `job` of a text-to-image batch. */
  | { type: "cancel"; id: number; job?: number; reason: string }
  /** Release the sessions and exit. */
  | { type: "close" };

/** Pipeline worker → main thread. */
export type FromWorker =
  | { type: "ready"; models: ModelDescriptor[] }
  | { type: "init_error"; message: string }
  | { type: "progress"; id: number; step: number; total: number }
  /** The call's encoded images (the worker encoded them itself). */
  | { type: "result"; id: number; results: (RunResult | null)[] }
  /** The call's images before encoding (pixel buffers transferred); the worker is free again. */
  | { type: "generated"; id: number; results: (GeneratedResult | null)[] }
  | { type: "error"; id: number; error: SerializedRunnerError }
  | { type: "log"; level: "debug" | "info" | "warn"; msg: string; fields: Record<string, unknown> }
  | { type: "closed" };

/** Main thread → encoder worker. */
export type ToCodec =
  /** Encode one job's images (pixel buffers transferred). */
  | { type: "encode"; id: number; result: GeneratedResult }
  /** Decode an upload (bytes copied). */
  | { type: "decode"; id: number; bytes: Uint8Array<ArrayBuffer>; maxPixels: number };

/** Encoder worker → main thread. */
export type FromCodec =
  /** Encoded bytes (buffers transferred). */
  | { type: "encoded"; id: number; images: EncodedImage[] }
  /** Decoded pixels (buffer transferred). */
  | { type: "decoded"; id: number; image: DecodedImage }
  | { type: "error"; id: number; error: SerializedRunnerError };

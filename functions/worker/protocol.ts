/**
 * Messages between the server's main thread and a pipeline worker. Everything is structured-clone data; image
 * buffers are transferred, not copied.
 *
 * @module
 */
import type {
  ModelDescriptor,
  RunResult,
  SerializedRunnerError,
  SuperResolutionJob,
  TextToImageJob,
} from "../runner.ts";

/** Main thread → worker. */
export type ToWorker =
  /** Import `module` and call its `createRunner(options, { logger })`. */
  | { type: "init"; module: string; options: unknown }
  /** Run one pipeline call. */
  | { type: "run"; id: number; task: "text-to-image"; jobs: TextToImageJob[] }
  | { type: "run"; id: number; task: "super-resolution"; job: SuperResolutionJob }
  /** Cancel call `id` at its next step, or only job `job` of a text-to-image batch. */
  | { type: "cancel"; id: number; job?: number; reason: string }
  /** Release the sessions and exit. */
  | { type: "close" };

/** Worker → main thread. */
export type FromWorker =
  | { type: "ready"; models: ModelDescriptor[] }
  | { type: "init_error"; message: string }
  | { type: "progress"; id: number; step: number; total: number }
  | { type: "result"; id: number; results: (RunResult | null)[] }
  | { type: "error"; id: number; error: SerializedRunnerError }
  | { type: "log"; level: "debug" | "info" | "warn"; msg: string; fields: Record<string, unknown> }
  | { type: "closed" };

/**
 * {@linkcode CodecPool}: the worker pool's encoder workers. A pipeline worker hands its float images over as soon as
 * the pipeline call ends and takes the next call; these workers turn them into PNG/JPEG/WebP bytes meanwhile (and
 * decode super-resolution uploads before their request takes a slot), off the event loop.
 *
 * @module
 */
import type { ImageCodec } from "../codec.ts";
import type { Logger } from "../logger.ts";
import { type DecodedImage, type EncodedImage, type GeneratedResult, RunnerError } from "../runner.ts";
import type { FromCodec, ToCodec } from "./protocol.ts";

/** Options of {@linkcode CodecPool}. */
export interface CodecPoolOptions {
  /** Encoder workers (tasks encoded at once). */
  size: number;
  /** Receives crash reports. */
  logger: Logger;
}

type Answer = EncodedImage[] | DecodedImage;

interface Task {
  message: ToCodec;
  transfer: Transferable[];
  resolve: (answer: Answer) => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
  settled: boolean;
}

interface Encoder {
  index: number;
  worker: Worker;
  task: Task | null;
}

const CODEC_WORKER_URL = new URL("./codec_worker.ts", import.meta.url);

function cancelled(message = "The generation was cancelled"): RunnerError {
  return new RunnerError("cancelled", message);
}

/**
 * A fixed set of encoder workers fed from one FIFO: a task goes to the first idle worker, so a large image does
 * not hold up small ones while another worker is free. A worker that crashes fails its task with an internal error
 * and is replaced.
 *
 * @example Encoding a job's images
 * ```ts ignore
 * const codec = new CodecPool({ size: 2, logger });
 * const images = await codec.encode({ images: [{ width, height, pixels, seed }], outputFormat: "png", inferenceMs });
 * await codec.close();
 * ```
 */
export class CodecPool implements ImageCodec {
  readonly #logger: Logger;
  readonly #encoders: Encoder[] = [];
  readonly #queue: Task[] = [];
  #nextId = 1;
  #closed = false;

  /** Starts `size` encoder workers. */
  constructor(options: CodecPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError(`size must be an integer >= 1: got ${options.size}`);
    }
    this.#logger = options.logger;
    for (let i = 0; i < options.size; i++) this.#encoders.push(this.#spawn(i));
  }

  /** Encoder workers. */
  get size(): number {
    return this.#encoders.length;
  }

  /** Tasks waiting for an idle encoder. */
  get depth(): number {
    return this.#queue.length;
  }

  #spawn(index: number): Encoder {
    const worker = new Worker(CODEC_WORKER_URL.href, { type: "module", name: `ldm-encoder-${index}` });
    const encoder: Encoder = { index, worker, task: null };
    worker.onmessage = (e: MessageEvent<FromCodec>) => this.#onMessage(encoder, e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#onCrash(encoder, e.message);
    };
    worker.onmessageerror = () => this.#onCrash(encoder, "a message from the encoder could not be deserialized");
    return encoder;
  }

  #finish(task: Task, fn: () => void): void {
    if (task.settled) return;
    task.settled = true;
    task.signal?.removeEventListener("abort", task.onAbort);
    fn();
  }

  #onMessage(encoder: Encoder, msg: FromCodec): void {
    const task = encoder.task;
    if (!task || task.message.id !== msg.id) return;
    encoder.task = null;
    if (msg.type === "encoded") this.#finish(task, () => task.resolve(msg.images));
    else if (msg.type === "decoded") this.#finish(task, () => task.resolve(msg.image));
    else this.#finish(task, () => task.reject(new RunnerError(msg.error.code, msg.error.message, msg.error.param)));
    this.#dispatch();
  }

  #onCrash(encoder: Encoder, message: string): void {
    if (this.#encoders[encoder.index] !== encoder) return;
    this.#logger.error("encoder worker crashed", { worker: encoder.index, reason: message });
    encoder.worker.terminate();
    const task = encoder.task;
    encoder.task = null;
    if (task) this.#finish(task, () => task.reject(new RunnerError("internal", `The encoder crashed: ${message}`)));
    if (this.#closed) return;
    this.#encoders[encoder.index] = this.#spawn(encoder.index);
    this.#dispatch();
  }

  #dispatch(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const encoder = this.#encoders.find((e) => e.task === null);
      if (!encoder) return;
      const task = this.#queue.shift()!;
      if (task.settled) continue;
      encoder.task = task;
      try {
        encoder.worker.postMessage(task.message, task.transfer);
      } catch (e) {
        // A buffer that cannot be transferred (already detached): the task's own fault, not the encoder's.
        encoder.task = null;
        this.#finish(
          task,
          () => task.reject(new RunnerError("internal", `image hand-off failed: ${(e as Error).message}`)),
        );
      }
    }
  }

  #submit(message: ToCodec, transfer: Transferable[], signal: AbortSignal | undefined): Promise<Answer> {
    if (this.#closed) return Promise.reject(cancelled("The runner closed"));
    if (signal?.aborted) return Promise.reject(cancelled());
    const { promise, resolve, reject } = Promise.withResolvers<Answer>();
    const task: Task = {
      message,
      transfer,
      resolve,
      reject,
      signal,
      settled: false,
      // A queued task leaves the queue; a running one is answered now and its worker's answer is dropped.
      onAbort: () => {
        const i = this.#queue.indexOf(task);
        if (i >= 0) this.#queue.splice(i, 1);
        this.#finish(task, () => task.reject(cancelled()));
      },
    };
    signal?.addEventListener("abort", task.onAbort, { once: true });
    this.#queue.push(task);
    this.#dispatch();
    return promise;
  }

  /** Encodes one job's images in an encoder worker; the pixel buffers are transferred there (detached here). */
  async encode(result: GeneratedResult, signal?: AbortSignal): Promise<EncodedImage[]> {
    const buffers = [...new Set(result.images.map((i) => i.pixels.buffer))];
    return await this.#submit({ type: "encode", id: this.#nextId++, result }, buffers, signal) as EncodedImage[];
  }

  /** Decodes an upload in an encoder worker (the bytes are copied). */
  async decode(
    bytes: Uint8Array<ArrayBuffer>,
    options: { maxPixels: number },
    signal?: AbortSignal,
  ): Promise<DecodedImage> {
    const message: ToCodec = { type: "decode", id: this.#nextId++, bytes, maxPixels: options.maxPixels };
    return await this.#submit(message, [], signal) as DecodedImage;
  }

  /** Rejects queued and running tasks (`cancelled`) and terminates the workers. Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const task of this.#queue.splice(0)) this.#finish(task, () => task.reject(cancelled("The runner closed")));
    for (const encoder of this.#encoders) {
      const task = encoder.task;
      encoder.task = null;
      if (task) this.#finish(task, () => task.reject(cancelled("The runner closed")));
      encoder.worker.terminate();
    }
    return Promise.resolve();
  }
}

/**
 * Option validation shared by both pipelines: every message names the option, the value and what was expected.
 *
 * @module
 */
import { Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import { isSchedulerName, SCHEDULER_NAMES, type SchedulerName } from "../schedulers/mod.ts";
import type { RunOptions } from "./types.ts";

/** The six short scheduler names, in the order the CLI lists them. */
export const SCHEDULER_NAME_LIST: readonly SchedulerName[] = Object.keys(SCHEDULER_NAMES) as SchedulerName[];

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === null) return "null";
  if (Array.isArray(v)) return `array of length ${v.length}`;
  if (v instanceof Tensor) return `Tensor [${v.shape.join(", ")}]`;
  if (typeof v === "object") return v.constructor?.name ?? "object";
  if (typeof v === "function") return "function";
  return String(v);
}

/** Throws a `TypeError` for keys of `options` that are not in `known` (catches typos such as `guidance`). */
export function checkKnownKeys(options: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(`${what}: unknown option '${key}' (known: ${known.join(", ")})`);
    }
  }
}

/** An integer in [min, max], or `fallback` when `undefined`. */
export function checkInteger(name: string, v: unknown, min: number, max: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number") throw new TypeError(`${name} must be an integer in [${min}, ${max}]: got ${show(v)}`);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}]: got ${v}`);
  }
  return v;
}

/** A finite number in [min, max], or `fallback` when `undefined`. */
export function checkNumber(name: string, v: unknown, min: number, max: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number") throw new TypeError(`${name} must be a number in [${min}, ${max}]: got ${show(v)}`);
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(`${name} must be a finite number in [${min}, ${max}]: got ${v}`);
  }
  return v;
}

/** A string (any length; tokenisation truncates). */
export function checkString(name: string, v: unknown): string {
  if (typeof v !== "string") throw new TypeError(`${name} must be a string: got ${show(v)}`);
  return v;
}

/** `undefined` or one of the scheduler names. */
export function checkSchedulerName(v: unknown): SchedulerName | undefined {
  if (v === undefined) return undefined;
  if (!isSchedulerName(v)) {
    throw new (typeof v === "string" ? RangeError : TypeError)(
      `scheduler must be one of ${SCHEDULER_NAME_LIST.join(", ")}: got ${show(v)}`,
    );
  }
  return v;
}

/** `undefined` or a plain object of scheduler config keys. */
export function checkSchedulerConfig(v: unknown): Readonly<Record<string, unknown>> {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new TypeError(`schedulerConfig must be an object of diffusers config keys: got ${show(v)}`);
  }
  return v as Record<string, unknown>;
}

/** A seed for a new {@linkcode Generator}: an integer in [0, 2^53). */
export function checkSeed(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number") throw new TypeError(`${name} must be an integer in [0, 2^53): got ${show(v)}`);
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be an integer in [0, 2^53): got ${v}`);
  return v;
}

/** A generator from `seed` or `generator` (not both); a fresh random seed when neither. */
export function resolveGenerator(options: Pick<RunOptions, "seed" | "generator">): {
  generator: Generator;
  seed: number | undefined;
} {
  const seed = checkSeed("seed", options.seed);
  if (options.generator !== undefined) {
    if (!(options.generator instanceof Generator)) {
      throw new TypeError(`generator must be a Generator from @ldm/core/random: got ${show(options.generator)}`);
    }
    if (seed !== undefined) throw new TypeError("seed and generator are mutually exclusive: got both");
    return { generator: options.generator, seed: undefined };
  }
  if (seed !== undefined) return { generator: new Generator(seed), seed };
  const generator = new Generator();
  return { generator, seed: Number(generator.initialSeed) };
}

/** `undefined` or an `AbortSignal`. */
export function checkSignal(name: string, v: unknown): AbortSignal | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof AbortSignal)) throw new TypeError(`${name} must be an AbortSignal: got ${show(v)}`);
  return v;
}

/** `undefined` or a function. */
export function checkCallback<T>(name: string, v: T | undefined): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "function") throw new TypeError(`${name} must be a function: got ${show(v)}`);
  return v;
}

/** A tensor of exactly `shape` with finite values. */
export function checkTensor(name: string, v: unknown, shape: readonly number[]): Tensor {
  if (!(v instanceof Tensor)) throw new TypeError(`${name} must be a Tensor: got ${show(v)}`);
  if (v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
    throw new RangeError(`${name} must have shape [${shape.join(", ")}]: got [${v.shape.join(", ")}]`);
  }
  const bad = firstNonFinite(v.data);
  if (bad >= 0) throw new RangeError(`${name} must hold finite values: element ${bad} is ${v.data[bad]}`);
  return v;
}

/** Throws `signal.reason` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason ?? new DOMException("The operation was aborted", "AbortError");
  }
}

/** Index of the first NaN or ±Infinity in `d`, or -1. */
export function firstNonFinite(d: Float32Array): number {
  // `x - x` is 0 for every finite x and NaN for NaN and ±Infinity. A plain loop: `findIndex` with a callback took
  // ~7 ns per element (0.35 ms for a 128×128 super-resolution output, every step), this ~0.5 ns.
  for (let i = 0; i < d.length; i++) {
    const x = d[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

/** Throws when a model output holds NaN or ±Infinity (e.g. a broken fp16 graph), naming where it happened. */
export function checkFinite(t: Tensor, where: string): void {
  const bad = firstNonFinite(t.data);
  if (bad >= 0) {
    throw new Error(
      `${where} produced a non-finite value (${t.data[bad]} at element ${bad} of [${t.shape.join(", ")}])`,
    );
  }
}

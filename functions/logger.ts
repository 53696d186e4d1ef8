/**
 * The injected logger: JSON lines, one object per event, with the request id attached by the caller.
 *
 * @module
 */
import { LOG_LEVELS, type LogLevel } from "./config.ts";

/** Structured fields of a log line. */
export type LogFields = Record<string, unknown>;

/** What the app and server log through. Never `console.*` in library code. */
export interface Logger {
  /** Logs at debug level. */
  debug(msg: string, fields?: LogFields): void;
  /** Logs at info level. */
  info(msg: string, fields?: LogFields): void;
  /** Logs at warn level. */
  warn(msg: string, fields?: LogFields): void;
  /** Logs at error level. */
  error(msg: string, fields?: LogFields): void;
}

/** Options of {@linkcode jsonLogger}. */
export interface JsonLoggerOptions {
  /** Lowest level written. @default "info" */
  level?: LogLevel;
  /** Receives each finished line (without the newline). */
  write: (line: string) => void;
  /** Clock for the `time` field. @default () => new Date() */
  now?: () => Date;
}

function errorFields(e: unknown): unknown {
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return e;
}

/**
 * A logger that writes one JSON object per line: `{"time","level","msg",...fields}`. `Error` values in fields are
 * expanded to name, message and stack.
 *
 * @example Logging to stdout
 * ```ts
 * import { jsonLogger } from "@ldm/functions";
 *
 * const log = jsonLogger({ write: (line) => console.log(line) });
 * log.info("listening", { port: 8000 });
 * ```
 */
export function jsonLogger({ level = "info", write, now = () => new Date() }: JsonLoggerOptions): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const emit = (lvl: LogLevel) => (msg: string, fields: LogFields = {}) => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    const out: Record<string, unknown> = { time: now().toISOString(), level: lvl, msg };
    for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? errorFields(v) : v;
    let line: string;
    try {
      line = JSON.stringify(out);
    } catch {
      line = JSON.stringify({ time: out.time, level: lvl, msg, note: "fields were not serializable" });
    }
    write(line);
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** A logger that drops everything (the default in tests). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

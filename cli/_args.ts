/**
 * A small strict flag parser for the CLI (JSR's `@std/cli` is not reachable here): `--name value`, `--name=value`,
 * boolean `--name`; unknown flags, missing values, non-numeric numbers, repeated flags and positional arguments are
 * usage errors naming the flag.
 *
 * @module
 */

/** A bad command line; the CLI prints the message and exits with status 2. */
export class UsageError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** How one flag is parsed and documented. */
export interface FlagSpec {
  /** The long name without dashes, e.g. `"negative-prompt"`. */
  name: string;
  /** `string`, `number` (finite), `integer`, or `boolean` (takes no value). */
  type: "string" | "number" | "integer" | "boolean";
  /** One line for `--help`. */
  help: string;
  /** Placeholder shown in `--help`, e.g. `"N"`. */
  value?: string;
  /** Whether the flag must be given. */
  required?: boolean;
}

/** Parsed flags by name: strings, numbers or `true`. */
export type ParsedFlags = Record<string, string | number | boolean | undefined>;

function closest(name: string, specs: readonly FlagSpec[]): string | undefined {
  const distance = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      }
    }
    return d[a.length]![b.length]!;
  };
  let best: string | undefined, bestD = 3;
  for (const s of specs) {
    const d = distance(name, s.name);
    if (d < bestD || (s.name.startsWith(name) && name.length >= 3)) {
      best = s.name;
      bestD = Math.min(d, bestD);
    }
  }
  return best;
}

/**
 * Parses `args` against `specs`.
 * @throws {UsageError} for an unknown or repeated flag, a missing or bad value, a positional argument, or a missing
 * required flag (checked unless `--help` is present).
 */
export function parseFlags(args: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const out: ParsedFlags = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("--") || arg === "--") {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(arg)}: every option is a --flag (quote multi-word prompts)`,
      );
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = specs.find((s) => s.name === name);
    if (spec === undefined) {
      const hint = closest(name, specs);
      throw new UsageError(`unknown flag --${name}${hint ? ` (did you mean --${hint}?)` : ""}`);
    }
    if (out[name] !== undefined) throw new UsageError(`--${name} is given more than once`);
    if (spec.type === "boolean") {
      if (eq >= 0) throw new UsageError(`--${name} takes no value: got ${JSON.stringify(arg.slice(eq + 1))}`);
      out[name] = true;
      continue;
    }
    let raw: string;
    if (eq >= 0) {
      raw = arg.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        throw new UsageError(`--${name} needs a value${spec.value ? ` (${spec.value})` : ""}`);
      }
      raw = next;
      i++;
    }
    if (spec.type === "string") {
      out[name] = raw;
      continue;
    }
    const n = raw.trim() === "" ? NaN : Number(raw);
    if (!Number.isFinite(n) || (spec.type === "integer" && !Number.isInteger(n))) {
      throw new UsageError(
        `--${name} must be ${spec.type === "integer" ? "an integer" : "a number"}: got ${JSON.stringify(raw)}`,
      );
    }
    out[name] = n;
  }
  if (out["help"] !== true) {
    for (const s of specs) {
      if (s.required && out[s.name] === undefined) throw new UsageError(`--${s.name} is required`);
    }
  }
  return out;
}

/** The `--help` text: a usage line, a description, then one line per flag. */
export function formatHelp(usage: string, description: string, specs: readonly FlagSpec[], footer = ""): string {
  const left = specs.map((s) => `  --${s.name}${s.type === "boolean" ? "" : ` ${s.value ?? "VALUE"}`}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  const lines = specs.map((s, i) => `${left[i]!.padEnd(width)}${s.required ? "(required) " : ""}${s.help}`);
  return [`Usage: ${usage}`, "", description, "", "Options:", ...lines, ...(footer ? ["", footer] : [])].join("\n") +
    "\n";
}

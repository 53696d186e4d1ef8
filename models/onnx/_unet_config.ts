/**
 * Validation helpers shared by the UNet config resolvers ({@linkcode ../unet_2d_condition.ts} and
 * {@linkcode ../unet_2d.ts}). Every error names the config class, the key, the value and what is accepted.
 *
 * @module
 */

/** A diffusers `config.json` object as parsed from JSON. */
export type RawConfig = Readonly<Record<string, unknown>>;

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  try {
    const s = JSON.stringify(value);
    return s.length > 100 ? `${s.slice(0, 97)}...` : s;
  } catch {
    return String(value);
  }
}

/**
 * Reads config keys of one class, records which keys were used, and throws errors that name class, key and value.
 * An absent key takes the class's diffusers default; an explicit `null` is accepted only where diffusers gives None a
 * meaning (`nullableInteger`, `oneOf` lists containing `null`, `refuseUnless`) and refused elsewhere, since diffusers
 * would either fail on it or read it as a falsy value unlike its default.
 */
export class ConfigReader {
  readonly #raw: RawConfig;
  readonly #cls: string;
  readonly #used = new Set<string>();

  /**
   * @throws {TypeError} when `raw` is not a plain object.
   */
  constructor(raw: unknown, cls: string) {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw new TypeError(`${cls} config must be a JSON object: got ${show(raw)}`);
    }
    this.#raw = raw as RawConfig;
    this.#cls = cls;
  }

  /**
   * Refuses a config saved for another class (`_class_name`) and a resolved config that lost its identity (e.g. a
   * JSON copy, whose camelCase keys would otherwise be ignored and replaced by defaults).
   */
  checkClassName(expected: string): void {
    const name = this.#raw["_class_name"];
    if (name !== undefined && name !== expected) this.fail("_class_name", JSON.stringify(expected), name);
    if ("blockOutChannels" in this.#raw || "className" in this.#raw) {
      throw new TypeError(
        `${this.#cls} config must be a diffusers config.json object (snake_case keys) or the frozen object the resolver returned: got an object with camelCase keys`,
      );
    }
  }

  /** `"<Class> config: <key>"`, the prefix of error messages about `key`. */
  where(key: string): string {
    return `${this.#cls} config: ${key}`;
  }

  /** Throws a TypeError (wrong kind of value) or RangeError (value outside what is supported) about `key`. */
  fail(key: string, expected: string, value: unknown, kind: "type" | "range" = "range"): never {
    const message = `${this.where(key)} must be ${expected}: got ${show(value)}`;
    throw kind === "type" ? new TypeError(message) : new RangeError(message);
  }

  /** The raw value of `key`, `undefined` when absent; marks the key as understood. */
  get(key: string): unknown {
    this.#used.add(key);
    return this.#raw[key];
  }

  /** Whether `key` is present with a value other than `null`. */
  isSet(key: string): boolean {
    const v = this.get(key);
    return v !== undefined && v !== null;
  }

  /** A boolean, `fallback` when absent. */
  boolean(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") this.fail(key, "a boolean", v, "type");
    return v;
  }

  /** A finite number, `fallback` when absent. */
  number(key: string, fallback: number, check?: { min?: number; exclusiveMin?: boolean }): number {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(key, "a finite number", v, "type");
    if (check?.min !== undefined && (check.exclusiveMin ? !(v > check.min) : !(v >= check.min))) {
      this.fail(key, `a number ${check.exclusiveMin ? ">" : ">="} ${check.min}`, v);
    }
    return v;
  }

  /** An integer ≥ `min`, `fallback` when absent. */
  integer(key: string, fallback: number, min = 1): number {
    const v = this.get(key);
    if (v === undefined) return fallback;
    return this.checkInteger(key, v, min);
  }

  /**
   * An integer ≥ `min` or `null` (diffusers' `int | None` options, where None has a meaning), `fallback` when absent.
   */
  nullableInteger(key: string, fallback: number | null, min = 1): number | null {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (v === null) return null;
    return this.checkInteger(key, v, min);
  }

  /** Checks that `v` (the value of `key` or one of its elements) is an integer ≥ `min`. */
  checkInteger(key: string, v: unknown, min = 1): number {
    if (typeof v !== "number" || !Number.isInteger(v)) this.fail(key, `an integer >= ${min}`, v, "type");
    if (v < min) this.fail(key, `an integer >= ${min}`, v);
    return v;
  }

  /** One of `allowed` (strings or `null`), `fallback` when absent. */
  oneOf<T extends string | null>(key: string, allowed: readonly T[], fallback: T, what = "supported"): T {
    const raw = this.get(key);
    const v = raw === undefined ? fallback : raw;
    if (!allowed.includes(v as T)) {
      this.fail(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")} (${what})`, raw);
    }
    return v as T;
  }

  /** A non-empty array of strings, each one of `allowed`. */
  stringList<T extends string>(key: string, allowed: readonly T[], fallback: readonly T[] | undefined): T[] {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback === undefined) this.fail(key, "a non-empty list of block type names", v, "type");
      return [...fallback];
    }
    if (!Array.isArray(v) || v.length === 0) this.fail(key, "a non-empty list of block type names", v, "type");
    return v.map((item, i) => {
      // diffusers strips a "UNetRes" prefix from block type names (unet_2d_blocks.py get_down_block / get_up_block).
      const name = typeof item === "string" && item.startsWith("UNetRes") ? item.slice(7) : item;
      if (!allowed.includes(name as T)) {
        this.fail(`${key}[${i}]`, `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")} (supported)`, item);
      }
      return name as T;
    });
  }

  /** A non-empty array of integers ≥ `min`. */
  integerList(key: string, fallback: readonly number[] | undefined, min = 1): number[] {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback === undefined) this.fail(key, `a non-empty list of integers >= ${min}`, v, "type");
      return [...fallback];
    }
    if (!Array.isArray(v) || v.length === 0) this.fail(key, `a non-empty list of integers >= ${min}`, v, "type");
    return v.map((item, i) => this.checkInteger(`${key}[${i}]`, item, min));
  }

  /**
   * An integer or a list of `n` integers (diffusers' "int | tuple[int]" per-block options), as a list of `n`.
   * `fallback` applies when absent.
   */
  perBlockInteger(key: string, n: number, fallback: number | undefined, min = 1): number[] {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback === undefined) this.fail(key, `an integer >= ${min} or a list of ${n} of them`, v, "type");
      return new Array<number>(n).fill(fallback);
    }
    if (typeof v === "number") return new Array<number>(n).fill(this.checkInteger(key, v, min));
    if (!Array.isArray(v)) this.fail(key, `an integer >= ${min} or a list of ${n} of them`, v, "type");
    if (v.length !== n) this.fail(key, `a list with one entry per down block (${n})`, v);
    return v.map((item, i) => {
      if (Array.isArray(item)) {
        this.fail(`${key}[${i}]`, "an integer (per-layer lists are not supported)", item);
      }
      return this.checkInteger(`${key}[${i}]`, item, min);
    });
  }

  /** A boolean or a list of `n` booleans, as a list of `n`. */
  perBlockBoolean(key: string, n: number, fallback: boolean): boolean[] {
    const v = this.get(key);
    if (v === undefined) return new Array<boolean>(n).fill(fallback);
    if (typeof v === "boolean") return new Array<boolean>(n).fill(v);
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "boolean")) {
      this.fail(key, `a boolean or a list of ${n} booleans (one per down block)`, v, "type");
    }
    return [...v] as boolean[];
  }

  /** Refuses `key` unless it is absent, `null` or equal to one of `accepted`. */
  refuseUnless(key: string, accepted: readonly unknown[], reason: string): void {
    const v = this.get(key);
    if (v === undefined || v === null || accepted.includes(v)) return;
    const acceptedText = ["null", ...accepted.map((a) => JSON.stringify(a))].join(" or ");
    this.fail(key, `${acceptedText} (${reason})`, v);
  }

  /** Keys of the config that were never read, ignoring private `_…` keys. */
  unusedKeys(): string[] {
    return Object.keys(this.#raw).filter((k) => !k.startsWith("_") && !this.#used.has(k)).sort();
  }
}

/** `sample_size`: an integer, a `[height, width]` pair or `null` (not used by the graph; recorded in metadata). */
export function readSampleSize(r: ConfigReader): number | readonly [number, number] | null {
  const v = r.get("sample_size");
  if (v === undefined || v === null) return null;
  if (typeof v === "number") return r.checkInteger("sample_size", v);
  if (Array.isArray(v) && v.length === 2) {
    return [r.checkInteger("sample_size[0]", v[0]), r.checkInteger("sample_size[1]", v[1])];
  }
  return r.fail("sample_size", "an integer, a [height, width] pair or null", v, "type");
}

/** Checks that every channel count in `channels` can be split into `groups` GroupNorm groups. */
export function checkGroups(r: ConfigReader, key: string, groups: number, channels: readonly number[]): void {
  for (const c of channels) {
    if (c % groups !== 0) {
      r.fail(key, `a divisor of every normalised channel count (${[...new Set(channels)].join(", ")})`, groups);
    }
  }
}

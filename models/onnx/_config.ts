/**
 * Typed reads of diffusers/transformers `config.json` fields with diffusers' defaults, whose errors name the class, the
 * field, the value and what is accepted.
 *
 * @module
 */

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** Reads the fields of one model config. */
export class ConfigFields {
  readonly #raw: Readonly<Record<string, unknown>>;
  readonly #cls: string;

  /**
   * @param config the parsed `config.json`.
   * @param cls the model class, for messages and the `_class_name` check.
   * @param classCheck where the class name is recorded (`_class_name` in diffusers, `model_type` in transformers;
   *   for an array the first element) and the accepted values; a present, different value is refused.
   * @throws {TypeError} when `config` is not an object; {@linkcode RangeError} when it names another class.
   */
  constructor(config: unknown, cls: string, classCheck?: { key: string; expected: readonly string[] }) {
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new TypeError(`${cls} config must be a JSON object: got ${show(config)}`);
    }
    this.#raw = config as Record<string, unknown>;
    this.#cls = cls;
    if (classCheck) {
      const v = this.#raw[classCheck.key];
      const actual = Array.isArray(v) ? v[0] : v;
      if (actual !== undefined && !classCheck.expected.includes(actual as string)) {
        throw new RangeError(
          `${cls} config: ${classCheck.key} must be ${classCheck.expected.map((e) => show(e)).join(" or ")}: got ${
            show(v)
          }`,
        );
      }
    }
  }

  /** The model class named in messages. */
  get className(): string {
    return this.#cls;
  }

  #get(key: string, fallback: unknown): unknown {
    const v = this.#raw[key];
    return v === undefined ? fallback : v;
  }

  #fail(key: string, value: unknown, expected: string): never {
    throw new RangeError(`${this.#cls} config: ${key} must be ${expected}: got ${show(value)}`);
  }

  /** An integer ≥ `min`; `fallback` when absent (required when no fallback). */
  int(key: string, fallback?: number, min = 1): number {
    const v = this.#get(key, fallback);
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) this.#fail(key, v, `an integer >= ${min}`);
    return v;
  }

  /** An integer ≥ `min` or null (absent → `fallback`). */
  intOrNull(key: string, fallback: number | null, min = 1): number | null {
    const v = this.#get(key, fallback);
    if (v === null) return null;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) this.#fail(key, v, `null or an integer >= ${min}`);
    return v;
  }

  /** A finite number. */
  number(key: string, fallback?: number): number {
    const v = this.#get(key, fallback);
    if (typeof v !== "number" || !Number.isFinite(v)) this.#fail(key, v, "a finite number");
    return v;
  }

  /** A boolean. */
  bool(key: string, fallback?: boolean): boolean {
    const v = this.#get(key, fallback);
    if (typeof v !== "boolean") this.#fail(key, v, "true or false");
    return v;
  }

  /** One of `allowed` (compared after `normalize`). */
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback?: T, normalize = (s: string) => s): T {
    const v = this.#get(key, fallback);
    if (typeof v !== "string" || !allowed.includes(normalize(v) as T)) {
      this.#fail(key, v, `one of ${allowed.map((a) => show(a)).join(", ")}`);
    }
    return normalize(v) as T;
  }

  /** A non-empty array of integers ≥ 1. */
  intArray(key: string, fallback?: readonly number[]): number[] {
    const v = this.#get(key, fallback);
    if (
      !Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 1)
    ) {
      this.#fail(key, v, "a non-empty array of integers >= 1");
    }
    return [...v] as number[];
  }

  /** A non-empty array whose every element is in `allowed`. */
  stringArray(key: string, allowed: readonly string[], fallback?: readonly string[]): string[] {
    const v = this.#get(key, fallback);
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) {
      this.#fail(key, v, "a non-empty array of strings");
    }
    for (const [i, x] of (v as string[]).entries()) {
      if (!allowed.includes(x)) {
        throw new RangeError(
          `${this.#cls} config: ${key}[${i}] is ${show(x)}; supported: ${allowed.map((a) => show(a)).join(", ")}`,
        );
      }
    }
    return [...v] as string[];
  }

  /** Throws unless two arrays read from the config have the same length. */
  sameLength(keyA: string, a: readonly unknown[], keyB: string, b: readonly unknown[]): void {
    if (a.length !== b.length) {
      throw new RangeError(
        `${this.#cls} config: ${keyA} has ${a.length} entries but ${keyB} has ${b.length}; they must match`,
      );
    }
  }
}

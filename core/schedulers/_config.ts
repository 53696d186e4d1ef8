/**
 * Scheduler configuration resolution with diffusers' `from_config` semantics
 * (`configuration_utils.py`, `ConfigMixin.extract_init_dict` and `register_to_config`):
 *
 * 1. keys listed in `_use_default_values` are dropped first, so a config saved by another class does not impose that
 *    class's defaults (e.g. PNDM built from a DDIM config gets PNDM's `set_alpha_to_one = false` unless the original
 *    JSON set it);
 * 2. keys the class declares are validated and used; missing keys take the class's diffusers default;
 * 3. other keys (private `_…` ones and keys of other classes, e.g. `clip_sample` for LMS) are ignored for the
 *    computation but kept in the resolved config, as diffusers keeps them "hidden" for compatible classes;
 * 4. the resolved config records `_class_name` and the new `_use_default_values` (the declared keys that took
 *    defaults), so it can itself be passed to another class's resolver.
 *
 * Each scheduler declares its fields once with the builders below ({@linkcode integer}, {@linkcode number},
 * {@linkcode boolean}, {@linkcode oneOf}, {@linkcode numberArray}, {@linkcode nullable}); {@linkcode defineConfig}
 * turns the declaration into a typed resolver. Validation errors name the class, field and value.
 *
 * @module
 */
import { BETA_SCHEDULES } from "./_betas.ts";

/** How one config field is validated, and its diffusers default. */
export interface FieldSpec<T> {
  /** The class's `__init__` default. */
  readonly default: T;
  /** Human description of the accepted values, used in error messages. */
  readonly expected: string;
  /**
   * Converts a JSON value to `T` or throws.
   * @param where `"<Class> config: <key>"`, the prefix of error messages.
   */
  parse(value: unknown, where: string): T;
}

/** The value type a {@linkcode FieldSpec} produces. */
export type FieldValue<F> = F extends FieldSpec<infer T> ? T : never;

/** A class's declared fields: diffusers key → spec. */
export type FieldSpecs = Readonly<Record<string, FieldSpec<unknown>>>;

/** The typed, validated values of a class's declared fields. */
export type ResolvedValues<S extends FieldSpecs> = { readonly [K in keyof S]: FieldValue<S[K]> };

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) {
    return String(value);
  }
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? s.slice(0, 77) + "..." : s;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function fail(where: string, expected: string, value: unknown, kind: "type" | "range"): never {
  const message = `${where} must be ${expected}: got ${show(value)}`;
  throw kind === "type" ? new TypeError(message) : new RangeError(message);
}

/** Bounds of a numeric field (inclusive unless `exclusiveMin`). */
export interface NumberBounds {
  /** Smallest accepted value. */
  min?: number;
  /** Largest accepted value. */
  max?: number;
  /** Treat `min` as exclusive. */
  exclusiveMin?: boolean;
}

function boundsText({ min, max, exclusiveMin }: NumberBounds): string {
  const lo = min === undefined ? "" : `${exclusiveMin ? ">" : ">="} ${min}`;
  const hi = max === undefined ? "" : `<= ${max}`;
  return [lo, hi].filter((s) => s !== "").join(" and ");
}

function inBounds(v: number, { min, max, exclusiveMin }: NumberBounds): boolean {
  if (min !== undefined && (exclusiveMin ? !(v > min) : !(v >= min))) return false;
  if (max !== undefined && !(v <= max)) return false;
  return true;
}

/** An integer field, e.g. `num_train_timesteps`. */
export function integer(defaultValue: number, bounds: NumberBounds = {}): FieldSpec<number> {
  const b = boundsText(bounds);
  const expected = b === "" ? "an integer" : `an integer ${b}`;
  return {
    default: defaultValue,
    expected,
    parse(value, where) {
      if (typeof value !== "number") fail(where, expected, value, "type");
      if (!Number.isInteger(value) || !inBounds(value, bounds)) fail(where, expected, value, "range");
      return value;
    },
  };
}

/**
 * A float field, e.g. `beta_start`. Finite unless `allowInfinite`, which also accepts the strings `"Infinity"` and
 * `"-Infinity"` (how python's `float("inf")` survives a JSON round trip, e.g. `lambda_min_clipped`).
 */
export function number(
  defaultValue: number,
  bounds: NumberBounds & { allowInfinite?: boolean } = {},
): FieldSpec<number> {
  const b = boundsText(bounds);
  const expected = (bounds.allowInfinite ? "a number" : "a finite number") + (b === "" ? "" : ` ${b}`);
  return {
    default: defaultValue,
    expected,
    parse(value, where) {
      let v = value;
      if (bounds.allowInfinite && (v === "Infinity" || v === "-Infinity")) v = v === "Infinity" ? Infinity : -Infinity;
      if (typeof v !== "number") fail(where, expected, value, "type");
      if (Number.isNaN(v) || (!bounds.allowInfinite && !Number.isFinite(v)) || !inBounds(v, bounds)) {
        fail(where, expected, value, "range");
      }
      return v;
    },
  };
}

/** A boolean field, e.g. `clip_sample`. */
export function boolean(defaultValue: boolean): FieldSpec<boolean> {
  return {
    default: defaultValue,
    expected: "a boolean",
    parse(value, where) {
      if (typeof value !== "boolean") fail(where, "a boolean", value, "type");
      return value;
    },
  };
}

/** A string field restricted to `values`, e.g. `beta_schedule`. */
export function oneOf<const V extends readonly string[]>(values: V, defaultValue: V[number]): FieldSpec<V[number]> {
  const expected = `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`;
  return {
    default: defaultValue,
    expected,
    parse(value, where) {
      if (typeof value !== "string") fail(where, expected, value, "type");
      if (!values.includes(value)) fail(where, expected, value, "range");
      return value as V[number];
    },
  };
}

/** An array of finite numbers (e.g. `trained_betas`), frozen; `minLength` defaults to 1. */
export function numberArray(
  defaultValue: readonly number[],
  { minLength = 1 }: { minLength?: number } = {},
): FieldSpec<readonly number[]> {
  const expected = `an array of at least ${minLength} finite numbers`;
  return {
    default: defaultValue,
    expected,
    parse(value, where) {
      if (!Array.isArray(value)) fail(where, expected, value, "type");
      if (value.length < minLength) fail(where, expected, value, "range");
      for (const [i, v] of value.entries()) {
        if (typeof v !== "number" || !Number.isFinite(v)) fail(`${where}[${i}]`, "a finite number", v, "type");
      }
      return Object.freeze([...value as number[]]);
    },
  };
}

/** Makes a field accept `null` (python `None`); `defaultValue` replaces the inner default. */
export function nullable<T>(inner: FieldSpec<T>, defaultValue: T | null = null): FieldSpec<T | null> {
  const expected = `${inner.expected} or null`;
  return {
    default: defaultValue,
    expected,
    parse(value, where) {
      if (value === null) return null;
      try {
        return inner.parse(value, where);
      } catch (e) {
        // A value of the wrong kind altogether: say that null would also do. Errors about parts (an array element)
        // or ranges pass through unchanged.
        if (e instanceof TypeError && e.message.startsWith(`${where} must be `)) fail(where, expected, value, "type");
        throw e;
      }
    },
  };
}

/** What a resolver returns. */
export interface ResolvedConfig<S extends FieldSpecs> {
  /** The declared fields, validated and typed (defaults filled in). */
  readonly values: ResolvedValues<S>;
  /**
   * The frozen config diffusers would expose as `scheduler.config`: declared fields, the ignored ("hidden") keys,
   * `_class_name` and `_use_default_values`.
   */
  readonly config: Readonly<Record<string, unknown>>;
}

/** A class's resolver, made by {@linkcode defineConfig}. */
export interface ConfigResolver<S extends FieldSpecs> {
  /** The diffusers class name. */
  readonly className: string;
  /** The declared fields. */
  readonly fields: S;
  /**
   * Resolves `config` with from_config semantics.
   * @throws {TypeError} when `config` is not a plain object or a field has the wrong JSON type;
   * {@link RangeError} when a value is out of range or not an allowed choice.
   */
  resolve(config?: Readonly<Record<string, unknown>>): ResolvedConfig<S>;
}

/**
 * Declares a scheduler class's config fields once and returns its resolver.
 *
 * @example
 * ```ts
 * import { boolean, defineConfig, integer } from "./_config.ts";
 * const resolver = defineConfig("MyScheduler", { num_train_timesteps: integer(1000, { min: 1 }), clip_sample: boolean(true) });
 * const { values } = resolver.resolve({ clip_sample: false, unknown_key: 1 });
 * values.num_train_timesteps; // 1000
 * ```
 */
export function defineConfig<S extends FieldSpecs>(className: string, fields: S): ConfigResolver<S> {
  return {
    className,
    fields,
    resolve(config = {}) {
      if (typeof config !== "object" || config === null || Array.isArray(config)) {
        throw new TypeError(`${className} config must be an object: got ${show(config)}`);
      }
      const usedDefaults = config["_use_default_values"];
      if (
        usedDefaults !== undefined && !(Array.isArray(usedDefaults) && usedDefaults.every((k) => typeof k === "string"))
      ) {
        throw new TypeError(
          `${className} config: _use_default_values must be an array of strings: got ${show(usedDefaults)}`,
        );
      }
      const dropped = new Set<string>(usedDefaults ?? []);
      const values: Record<string, unknown> = {};
      const defaulted: string[] = [];
      for (const [key, spec] of Object.entries(fields)) {
        if (Object.hasOwn(config, key) && !dropped.has(key) && config[key] !== undefined) {
          values[key] = spec.parse(config[key], `${className} config: ${key}`);
        } else {
          values[key] = spec.default;
          defaulted.push(key);
        }
      }
      const resolved: Record<string, unknown> = { ...values };
      for (const [key, value] of Object.entries(config)) {
        if (key === "_use_default_values" || key === "_class_name" || dropped.has(key) || key in fields) continue;
        resolved[key] = value;
      }
      resolved["_class_name"] = className;
      resolved["_use_default_values"] = Object.freeze(defaulted);
      return {
        values: Object.freeze(values) as ResolvedValues<S>,
        config: Object.freeze(resolved),
      };
    },
  };
}

/**
 * `config` with `overrides` applied the way diffusers' `from_config(config, **kwargs)` applies keyword arguments:
 * an override wins even when `config` lists its key in `_use_default_values` (so the key is removed from that list).
 * Neither argument is modified.
 */
export function withOverrides(
  config: Readonly<Record<string, unknown>>,
  overrides: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...config, ...overrides };
  const used = config["_use_default_values"];
  if (Array.isArray(used)) merged["_use_default_values"] = used.filter((k) => !Object.hasOwn(overrides, k));
  return merged;
}

/** The beta/timestep fields every one of the six schedulers declares, with diffusers' shared defaults. */
export const COMMON_FIELDS = {
  /** T, the number of training timesteps. */
  num_train_timesteps: integer(1000, { min: 1 }),
  /** First beta of `linear`/`scaled_linear`. */
  beta_start: number(0.0001, { min: 0, max: 1 }),
  /** Last beta of `linear`/`scaled_linear`. */
  beta_end: number(0.02, { min: 0, max: 1 }),
  /** How betas are built (ignored when `trained_betas` is set). */
  beta_schedule: oneOf(BETA_SCHEDULES, "linear"),
  /** Explicit betas (length T) overriding the schedule. */
  trained_betas: nullable(numberArray([])),
  /** Offset added to `leading` timesteps. */
  steps_offset: integer(0, { min: 0 }),
} as const;

/**
 * Diffusion schedulers with diffusers' contract and numerics: {@linkcode DDIMScheduler}, {@linkcode PNDMScheduler},
 * {@linkcode LMSDiscreteScheduler}, {@linkcode EulerDiscreteScheduler}, {@linkcode EulerAncestralDiscreteScheduler}
 * and {@linkcode DPMSolverMultistepScheduler}, all implementing {@linkcode Scheduler}.
 *
 * - {@linkcode createScheduler} builds the class a diffusers `scheduler_config.json` names in `_class_name`.
 * - {@linkcode createSchedulerByName} swaps schedulers the way diffusers' `Cls.from_config(pipe.scheduler.config)`
 *   does, from the short names the CLI and API use (`ddim`, `pndm`, `lms`, `euler`, `euler-ancestral`,
 *   `dpm-multistep`).
 *
 * Configs are resolved with from_config semantics: keys a class does not use are ignored (and kept in `.config`),
 * missing keys take that class's diffusers defaults, keys listed in `_use_default_values` are dropped so the new class
 * applies its own defaults, and invalid values throw `TypeError`/`RangeError` naming the field and value.
 *
 * Arithmetic follows torch's float32 order, so DDIM, PNDM, Euler and Euler-ancestral reproduce diffusers (CPU)
 * bit for bit, LMS and DPM-Solver to ~1e-6 relative.
 *
 * Schedulers are stateful: create one per generation and never share it between concurrent requests.
 *
 * @example Swap the checkpoint's DDIM for DPM-Solver++
 * ```ts
 * import { createScheduler, createSchedulerByName } from "@ldm/core/schedulers";
 * const json = { _class_name: "DDIMScheduler", beta_schedule: "scaled_linear", beta_start: 0.0015, beta_end: 0.0155, steps_offset: 1, clip_sample: false };
 * const ddim = createScheduler(json);
 * const dpm = createSchedulerByName("dpm-multistep", ddim.config);
 * dpm.setTimesteps(20);
 * ```
 *
 * @module
 */
import { DDIMScheduler } from "./ddim.ts";
import { DPMSolverMultistepScheduler } from "./dpm_solver_multistep.ts";
import { EulerAncestralDiscreteScheduler } from "./euler_ancestral_discrete.ts";
import { EulerDiscreteScheduler } from "./euler_discrete.ts";
import { LMSDiscreteScheduler } from "./lms_discrete.ts";
import { PNDMScheduler } from "./pndm.ts";
import { withOverrides } from "./_config.ts";
import type { Scheduler } from "./types.ts";

export type { Scheduler, StepOptions, StepOutput } from "./types.ts";
export { DDIMScheduler } from "./ddim.ts";
export { PNDMScheduler } from "./pndm.ts";
export { LMSDiscreteScheduler } from "./lms_discrete.ts";
export { EulerDiscreteScheduler } from "./euler_discrete.ts";
export type { EulerStepOptions } from "./euler_discrete.ts";
export { EulerAncestralDiscreteScheduler } from "./euler_ancestral_discrete.ts";
export { DPMSolverMultistepScheduler } from "./dpm_solver_multistep.ts";

/** The supported diffusers class names → constructors (each takes a config with from_config semantics). */
export const SCHEDULER_CLASSES: Readonly<
  Record<SchedulerClassName, new (config?: Record<string, unknown>) => Scheduler>
> = Object.freeze({
  DDIMScheduler,
  PNDMScheduler,
  LMSDiscreteScheduler,
  EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler,
  DPMSolverMultistepScheduler,
});

/** A supported diffusers scheduler class name. */
export type SchedulerClassName =
  | "DDIMScheduler"
  | "PNDMScheduler"
  | "LMSDiscreteScheduler"
  | "EulerDiscreteScheduler"
  | "EulerAncestralDiscreteScheduler"
  | "DPMSolverMultistepScheduler";

/** Short scheduler names (CLI flags, API `scheduler` field) → diffusers class names. */
export const SCHEDULER_NAMES = Object.freeze(
  {
    ddim: "DDIMScheduler",
    pndm: "PNDMScheduler",
    lms: "LMSDiscreteScheduler",
    euler: "EulerDiscreteScheduler",
    "euler-ancestral": "EulerAncestralDiscreteScheduler",
    "dpm-multistep": "DPMSolverMultistepScheduler",
  } as const satisfies Record<string, SchedulerClassName>,
);

/** A short scheduler name: `ddim`, `pndm`, `lms`, `euler`, `euler-ancestral` or `dpm-multistep`. */
export type SchedulerName = keyof typeof SCHEDULER_NAMES;

/** Whether `name` is one of the short names in {@linkcode SCHEDULER_NAMES}. */
export function isSchedulerName(name: unknown): name is SchedulerName {
  return typeof name === "string" && Object.hasOwn(SCHEDULER_NAMES, name);
}

function isClassName(name: unknown): name is SchedulerClassName {
  return typeof name === "string" && Object.hasOwn(SCHEDULER_CLASSES, name);
}

/**
 * Builds the scheduler a diffusers scheduler config names in `_class_name` (e.g. the contents of
 * `scheduler/scheduler_config.json`).
 *
 * @throws {TypeError} when `config` is not an object or `_class_name` is missing or not a string;
 * {@link RangeError} for an unsupported `_class_name` (the message lists the supported ones) or an invalid field.
 * @example
 * ```ts
 * import { createScheduler } from "@ldm/core/schedulers";
 * const s = createScheduler({ _class_name: "PNDMScheduler", skip_prk_steps: true });
 * s.setTimesteps(5);
 * ```
 */
export function createScheduler(config: Record<string, unknown>): Scheduler {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new TypeError(`scheduler config must be an object: got ${config === null ? "null" : typeof config}`);
  }
  const name = config["_class_name"];
  const supported = Object.keys(SCHEDULER_CLASSES).join(", ");
  if (typeof name !== "string") {
    throw new TypeError(
      `scheduler config _class_name must be a string naming one of ${supported}: got ${
        name === undefined ? "undefined" : JSON.stringify(name)
      }`,
    );
  }
  if (!isClassName(name)) {
    throw new RangeError(`scheduler config _class_name must be one of ${supported}: got ${JSON.stringify(name)}`);
  }
  return new SCHEDULER_CLASSES[name](config);
}

/**
 * `<Class>.from_config(baseConfig, **overrides)` for a short name: builds that class from another scheduler's config
 * (its `.config`, or a raw `scheduler_config.json`). Keys the base config took as defaults (`_use_default_values`)
 * are dropped so the new class applies its own defaults; `overrides` always win.
 *
 * @throws {RangeError} for an unknown name (the message lists the supported ones) or an invalid field.
 * @example
 * ```ts
 * import { createSchedulerByName } from "@ldm/core/schedulers";
 * const pndm = createSchedulerByName("pndm", { _class_name: "DDIMScheduler", beta_start: 0.00085, beta_end: 0.012 }, { skip_prk_steps: true });
 * pndm.setTimesteps(5);
 * ```
 */
export function createSchedulerByName(
  name: string,
  baseConfig: Readonly<Record<string, unknown>> = {},
  overrides: Readonly<Record<string, unknown>> = {},
): Scheduler {
  if (!isSchedulerName(name)) {
    throw new RangeError(
      `scheduler name must be one of ${Object.keys(SCHEDULER_NAMES).join(", ")}: got ${JSON.stringify(name)}`,
    );
  }
  const Cls = SCHEDULER_CLASSES[SCHEDULER_NAMES[name]];
  return new Cls(withOverrides(baseConfig, overrides));
}

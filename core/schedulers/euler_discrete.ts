/**
 * `EulerDiscreteScheduler`: the Euler sampler of Karras et al. (2022, "Elucidating the Design Space of
 * Diffusion-Based Generative Models", Algorithm 2, with its optional "churn"), ported from diffusers'
 * `scheduling_euler_discrete.py`.
 *
 * @module
 */
import { f32, Tensor } from "../tensor/mod.ts";
import type { Scheduler, StepOptions, StepOutput } from "./types.ts";
import { checkNumInferenceSteps, originalFromSigma, TIMESTEP_SPACINGS, torchLinspaceF32 } from "./_betas.ts";
import { SigmaScheduler } from "./_base.ts";
import { boolean, COMMON_FIELDS, defineConfig, nullable, number, oneOf, type ResolvedValues } from "./_config.ts";
import {
  appendFinalSigma,
  betaSigmas,
  checkOneSigmaRespacing,
  exponentialSigmas,
  initNoiseSigmaFor,
  interpOnIndexGrid,
  karrasSigmas,
  mapNoised,
  scaleBySigma,
  sigmaTimesteps,
  sigmaToT,
  stepNoise,
} from "./_sigmas.ts";

const CLASS_NAME = "EulerDiscreteScheduler";

/** The config fields of `EulerDiscreteScheduler` with diffusers' defaults. */
const FIELDS = {
  ...COMMON_FIELDS,
  // "original_sample" is diffusers' backwards-compatible alias of "sample".
  prediction_type: oneOf(["epsilon", "sample", "v_prediction", "original_sample"] as const, "epsilon"),
  interpolation_type: oneOf(["linear", "log_linear"] as const, "linear"),
  use_karras_sigmas: boolean(false),
  use_exponential_sigmas: boolean(false),
  use_beta_sigmas: boolean(false),
  sigma_min: nullable(number(0, { min: 0, exclusiveMin: true })),
  sigma_max: nullable(number(0, { min: 0, exclusiveMin: true })),
  timestep_spacing: oneOf(TIMESTEP_SPACINGS, "linspace"),
  timestep_type: oneOf(["discrete", "continuous"] as const, "discrete"),
  rescale_betas_zero_snr: boolean(false),
  final_sigmas_type: oneOf(["zero", "sigma_min"] as const, "zero"),
} as const;

const RESOLVER = defineConfig(CLASS_NAME, FIELDS);

/**
 * {@linkcode StepOptions} plus the "churn" of Karras et al. (2022) Algorithm 2, diffusers' `step(s_churn, s_tmin,
 * s_tmax, s_noise)`. With the defaults the step is deterministic; with `sChurn > 0` and `sTmin ≤ σ ≤ sTmax` it adds
 * `randn · sNoise · sqrt(σ̂² − σ²)` first, drawn from `generator` (or taken from `varianceNoise`).
 */
export interface EulerStepOptions extends StepOptions {
  /** Amount of stochasticity; γ = min(sChurn / (len(sigmas) − 1), √2 − 1). @default 0 */
  sChurn?: number;
  /** Smallest σ that gets churn. @default 0 */
  sTmin?: number;
  /** Largest σ that gets churn. @default Infinity */
  sTmax?: number;
  /** Scale of the churn noise. @default 1 */
  sNoise?: number;
}

function checkChurnOption(name: string, value: unknown, fallback: number, allowInfinite: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(`${CLASS_NAME}.step: options.${name} must be a number: got ${typeof value}`);
  }
  if (Number.isNaN(value) || (!allowInfinite && !Number.isFinite(value)) || (name === "sChurn" && value < 0)) {
    const expected = name === "sChurn" ? "a finite number >= 0" : allowInfinite ? "a number" : "a finite number";
    throw new RangeError(`${CLASS_NAME}.step: options.${name} must be ${expected}: got ${value}`);
  }
  return value;
}

/**
 * Euler sampler in σ-space with diffusers' exact behaviour: `x ← x + d·(σ_{i+1} − σ̂)` with `d = (x − x̂₀)/σ̂`.
 *
 * Supports every `EulerDiscreteScheduler` option: beta schedules and `trained_betas`, `rescale_betas_zero_snr`
 * (the last ᾱ becomes 2⁻²⁴ as in diffusers), `prediction_type` (`epsilon`, `v_prediction`, `sample`/`original_sample`),
 * `interpolation_type` (`linear`, `log_linear`), Karras/exponential/beta σ with `sigma_min`/`sigma_max`,
 * `timestep_spacing`, `timestep_type` (`continuous` with `v_prediction` makes the timesteps `0.25·log σ`),
 * `final_sigmas_type`, and churn through {@linkcode EulerStepOptions}. Every step is float32 arithmetic in torch's
 * order, so the samples are bit-identical to diffusers on CPU.
 *
 * Deliberate differences from diffusers: `step`/`scaleModelInput` before `setTimesteps` throw and `timesteps` is empty
 * until then (`initNoiseSigma` is already valid); diffusers rejects Python `int` timesteps (to catch loop indices),
 * which JS numbers cannot express, so any number is accepted and must equal (in float32) one of `timesteps` on first
 * use; churn noise needs `options.generator` or `options.varianceNoise` (no global RNG). Custom `timesteps`/`sigmas`
 * lists for `set_timesteps` are not supported.
 *
 * Inherited σ-scheduler members (diffusers' step-index bookkeeping, shared with the other σ schedulers): `config`,
 * `order` (1), `timesteps`, `sigmas`, `alphasCumprod`, `stepIndex`, `beginIndex` and `setBeginIndex`.
 *
 * @example Super-resolution style loop
 * ```ts
 * import { EulerDiscreteScheduler } from "./euler_discrete.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const scheduler = new EulerDiscreteScheduler({ use_karras_sigmas: true });
 * scheduler.setTimesteps(20);
 * let latents = new Tensor(new Float32Array(16).fill(scheduler.initNoiseSigma), [1, 1, 4, 4]);
 * for (const t of scheduler.timesteps) {
 *   const noisePred = scheduler.scaleModelInput(latents, t); // a UNet call in a real pipeline
 *   latents = scheduler.step(noisePred, t, latents).prevSample;
 * }
 * ```
 */
export class EulerDiscreteScheduler extends SigmaScheduler<Float32Array> implements Scheduler {
  /** The diffusers class this reproduces. */
  readonly className = CLASS_NAME;

  readonly #values: ResolvedValues<typeof FIELDS>;

  /**
   * Builds the scheduler from a diffusers config (`from_config` semantics: unknown keys are kept but ignored).
   *
   * @throws {TypeError} for a wrongly typed field; {@link RangeError} for an out-of-range value, an unknown choice,
   *   or more than one of `use_karras_sigmas`, `use_exponential_sigmas`, `use_beta_sigmas`.
   */
  constructor(config: Record<string, unknown> = {}) {
    const { values, config: resolved } = RESOLVER.resolve(config);
    checkOneSigmaRespacing(values, CLASS_NAME);
    super(CLASS_NAME, resolved, values, { notFound: "throw", timesteps: new Float32Array(0), sigmas: "training" });
    this.#values = values;
  }

  /** `max σ` (`linspace`/`trailing` spacing) or `sqrt(max σ² + 1)` (`leading`). */
  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.#values.timestep_spacing);
  }

  /**
   * Sets `numInferenceSteps` timesteps by `timestep_spacing` and their σ (`interpolation_type`, then an optional
   * Karras/exponential/beta re-spacing with `_sigma_to_t` timesteps), appends the final σ and resets the step state.
   *
   * @throws {RangeError} when `numInferenceSteps` is not an integer in [1, num_train_timesteps].
   */
  setTimesteps(numInferenceSteps: number): void {
    const v = this.#values;
    const n = checkNumInferenceSteps(numInferenceSteps, v.num_train_timesteps);
    let timesteps: ArrayLike<number> = sigmaTimesteps(v.timestep_spacing, v.num_train_timesteps, n, v.steps_offset);
    const train = this.trainSigmas;
    let sigmas: ArrayLike<number>;
    if (v.interpolation_type === "linear") {
      sigmas = interpOnIndexGrid(timesteps, train);
    } else {
      // torch.linspace(log σ_train[-1], log σ_train[0], n + 1).exp(): n + 1 log-spaced σ from σ_max down to σ_min.
      const logs = torchLinspaceF32(Math.log(train[train.length - 1]!), Math.log(train[0]!), n + 1);
      sigmas = logs.map((l) => Math.exp(l));
    }
    if (v.use_karras_sigmas || v.use_exponential_sigmas || v.use_beta_sigmas) {
      if (train.length < 2) throw new RangeError(`${CLASS_NAME}: σ re-spacing needs num_train_timesteps >= 2: got 1`);
      const lo = v.sigma_min ?? sigmas[sigmas.length - 1]!;
      const hi = v.sigma_max ?? sigmas[0]!;
      const respaced = v.use_karras_sigmas
        ? karrasSigmas(lo, hi, n)
        : v.use_exponential_sigmas
        ? exponentialSigmas(lo, hi, n)
        : betaSigmas(lo, hi, n);
      sigmas = respaced;
      timesteps = Float64Array.from(respaced, (s) => sigmaToT(s, this.logSigmas));
    }
    const all = appendFinalSigma(sigmas, v.final_sigmas_type === "sigma_min" ? train[0]! : 0);
    if (v.timestep_type === "continuous" && v.prediction_type === "v_prediction") {
      // EDM's c_noise(σ) = 0.25·log σ, over every σ but the last (float32 log, then the exact ×0.25).
      timesteps = Float32Array.from(all.subarray(0, all.length - 1), (s) => 0.25 * f32(Math.log(s)));
    }
    this.startSchedule(Float32Array.from(timesteps), all);
  }

  /**
   * `sample / sqrt(σ² + 1)` for the current step (diffusers `scale_model_input`); locates the step on first use.
   *
   * @throws {Error} before `setTimesteps`; {@link RangeError} for a timestep that is not in `timesteps`.
   */
  scaleModelInput(sample: Tensor, timestep: number): Tensor {
    const i = this.locateStep(timestep, "scaleModelInput");
    return scaleBySigma(sample, this.sigmas[i]!);
  }

  /**
   * One Euler step (with optional churn): x̂₀ by `prediction_type`, `d = (x − x̂₀)/σ̂`, `x + d·(σ_{i+1} − σ̂)`.
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} when shapes differ, the timestep is not a finite number,
   *   a churn option is not a number, or churn needs noise and neither `generator` nor `varianceNoise` is given;
   *   {@link RangeError} for a timestep not in `timesteps`, a step past the end, or a churn option out of range.
   */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, options?: EulerStepOptions): StepOutput {
    const sChurn = checkChurnOption("sChurn", options?.sChurn, 0, false);
    const sTmin = checkChurnOption("sTmin", options?.sTmin, 0, true);
    const sTmax = checkChurnOption("sTmax", options?.sTmax, Infinity, true);
    const sNoise = checkChurnOption("sNoise", options?.sNoise, 1, false);
    const i = this.locateStep(timestep, "step");
    const sigmas = this.sigmas;
    const sigma = sigmas[i]!;
    // Karras et al. Algorithm 2: γ = min(S_churn / N, √2 − 1) inside [S_tmin, S_tmax] (python floats, float64).
    const gamma = f32(sTmin) <= sigma && sigma <= f32(sTmax)
      ? Math.min(sChurn / (sigmas.length - 1), 2 ** 0.5 - 1)
      : 0.0;
    const sigmaHat = f32(sigma * f32(gamma + 1));
    let x = sample;
    if (gamma > 0) {
      const noise = stepNoise(options, modelOutput.shape, CLASS_NAME, `s_churn = ${sChurn} adds noise`);
      const c = f32(Math.sqrt(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma))));
      const s = f32(sNoise), e = noise.data, xd = sample.data;
      const churned = new Float32Array(xd.length);
      for (let k = 0; k < xd.length; k++) churned[k] = xd[k]! + f32(f32(e[k]! * s) * c);
      x = new Tensor(churned, sample.shape);
    }
    // 1. x̂₀ (diffusers uses σ̂ for epsilon but σ for v-prediction)
    const type = this.#values.prediction_type === "original_sample" ? "sample" : this.#values.prediction_type;
    const predOriginalSample = originalFromSigma(type, modelOutput, x, type === "epsilon" ? sigmaHat : sigma);
    // 2. the ODE derivative and the Euler step to σ_{i+1}
    const dt = f32(sigmas[i + 1]! - sigmaHat);
    const xd = x.data, x0 = predOriginalSample.data;
    const prev = new Float32Array(xd.length);
    for (let k = 0; k < xd.length; k++) prev[k] = xd[k]! + f32(f32(f32(xd[k]! - x0[k]!) / sigmaHat) * dt);
    this.advanceStep();
    return { prevSample: new Tensor(prev, sample.shape), predOriginalSample };
  }

  /**
   * Forward-noises `originalSamples` to the σ of `timesteps` (diffusers `add_noise`): `x₀ + ε·σ`; one timestep for
   * the batch or one per batch item.
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} when shapes differ or the count does not fit the batch;
   *   {@link RangeError} for a timestep that is not in `timesteps`.
   */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    const sig = this.noiseSigmas(timesteps, originalSamples.shape[0] ?? 1);
    return mapNoised(originalSamples, noise, sig.length, (x, e, g) => x + f32(e * sig[g]!));
  }
}

/**
 * `DDIMScheduler`: denoising diffusion implicit models (Song, Meng & Ermon 2020, https://arxiv.org/abs/2010.02502),
 * ported from diffusers' `src/diffusers/schedulers/scheduling_ddim.py` with torch's float32 arithmetic order, so
 * results are bit-identical to diffusers on CPU.
 *
 * @module
 */
import { assertSameShape, f32, Tensor } from "../tensor/mod.ts";
import {
  checkIntegerTimestep,
  checkNumInferenceSteps,
  clipSample,
  dynamicThreshold,
  epsilonFromOriginal,
  originalAndEpsilonFromAlpha,
  spacedTimesteps,
  TIMESTEP_SPACINGS,
} from "./_betas.ts";
import { AlphaBarScheduler } from "./_base.ts";
import { boolean, COMMON_FIELDS, defineConfig, number, oneOf } from "./_config.ts";
import type { Scheduler, StepOptions, StepOutput } from "./types.ts";

/** DDIM's config fields and diffusers' `__init__` defaults. */
const DDIM_CONFIG = defineConfig("DDIMScheduler", {
  ...COMMON_FIELDS,
  clip_sample: boolean(true),
  set_alpha_to_one: boolean(true),
  prediction_type: oneOf(["epsilon", "sample", "v_prediction"] as const, "epsilon"),
  thresholding: boolean(false),
  dynamic_thresholding_ratio: number(0.995, { min: 0, max: 1 }),
  clip_sample_range: number(1.0, { min: 0, exclusiveMin: true }),
  sample_max_value: number(1.0, { min: 0, exclusiveMin: true }),
  timestep_spacing: oneOf(TIMESTEP_SPACINGS, "leading"),
  rescale_betas_zero_snr: boolean(false),
});

/**
 * DDIM sampler (diffusers `DDIMScheduler`). Config keys and defaults are diffusers': `num_train_timesteps` 1000,
 * `beta_start` 1e-4, `beta_end` 0.02, `beta_schedule` `"linear"` (or `"scaled_linear"`, `"squaredcos_cap_v2"`),
 * `trained_betas` null, `clip_sample` true, `clip_sample_range` 1, `set_alpha_to_one` true, `steps_offset` 0,
 * `prediction_type` `"epsilon"` (or `"sample"`, `"v_prediction"`), `thresholding` false,
 * `dynamic_thresholding_ratio` 0.995, `sample_max_value` 1, `timestep_spacing` `"leading"` (or `"trailing"`,
 * `"linspace"`), `rescale_betas_zero_snr` false. Keys of other classes are ignored (from_config semantics).
 *
 * Stateless between steps apart from the schedule, but still create one per generation.
 *
 * Inherited ᾱ-scheduler members (shared with {@linkcode PNDMScheduler}): `config`, `initNoiseSigma` (1), `order` (1),
 * `timesteps`, `numInferenceSteps`, `alphasCumprod`, `finalAlphaCumprod`, `scaleModelInput` (the identity) and
 * `addNoise` (√ᾱ_t·x₀ + √(1−ᾱ_t)·ε).
 *
 * @example 5 steps of the super-resolution checkpoint's schedule
 * ```ts
 * import { DDIMScheduler } from "@ldm/core/schedulers";
 * import { Tensor } from "@ldm/core/tensor";
 * const scheduler = new DDIMScheduler({ beta_schedule: "scaled_linear", beta_start: 0.0015, beta_end: 0.0155, steps_offset: 1, clip_sample: false });
 * scheduler.setTimesteps(5); // [801, 601, 401, 201, 1]
 * let sample = Tensor.zeros([1, 3, 8, 8]);
 * for (const t of scheduler.timesteps) {
 *   const noisePred = Tensor.zeros(sample.shape); // the UNet's output
 *   sample = scheduler.step(noisePred, t, sample).prevSample;
 * }
 * ```
 */
export class DDIMScheduler extends AlphaBarScheduler implements Scheduler {
  /** `"DDIMScheduler"`. */
  readonly className = "DDIMScheduler";

  readonly #cfg: ReturnType<typeof DDIM_CONFIG.resolve>["values"];

  /**
   * @param config A diffusers scheduler config (e.g. `scheduler/scheduler_config.json`), resolved with from_config
   * semantics.
   * @throws {TypeError|RangeError} naming the field and value of an invalid config entry.
   */
  constructor(config: Record<string, unknown> = {}) {
    const { values, config: resolved } = DDIM_CONFIG.resolve(config);
    super(DDIM_CONFIG.className, resolved, values);
    this.#cfg = values;
  }

  /**
   * Sets `numInferenceSteps` timesteps spaced by `timestep_spacing` (diffusers `set_timesteps`).
   *
   * @throws {RangeError} when `numInferenceSteps` is not an integer in [1, num_train_timesteps].
   */
  setTimesteps(numInferenceSteps: number): void {
    const n = checkNumInferenceSteps(numInferenceSteps, this.#cfg.num_train_timesteps);
    this.startSchedule(
      spacedTimesteps(this.#cfg.timestep_spacing, this.#cfg.num_train_timesteps, n, this.#cfg.steps_offset),
      n,
    );
  }

  /**
   * σ_t² of DDIM eq. 16 with η = 1: `(1 − ᾱ_prev)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_prev)` in float32 (diffusers
   * `_get_variance`); `prevTimestep < 0` uses {@linkcode finalAlphaCumprod}.
   *
   * @throws {RangeError} when `timestep` is not an integer in [0, T) or `prevTimestep` ≥ T.
   */
  getVariance(timestep: number, prevTimestep: number): number {
    const alphaProdT = this.alphaProd(checkIntegerTimestep(timestep, this.#cfg.num_train_timesteps));
    const alphaProdTPrev = this.#alphaAt(prevTimestep);
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    return f32(f32(betaProdTPrev / betaProdT) * f32(1 - f32(alphaProdT / alphaProdTPrev)));
  }

  #alphaAt(timestep: number): number {
    if (!Number.isInteger(timestep) || timestep >= this.#cfg.num_train_timesteps) {
      throw new RangeError(
        `prevTimestep must be an integer < ${this.#cfg.num_train_timesteps}: got ${timestep}`,
      );
    }
    return this.alphaProd(timestep);
  }

  /**
   * One DDIM step x_t → x_{t−1} (DDIM eq. 12), in diffusers' stages:
   * 1. previous timestep `t − T // n` (whatever the spacing, as diffusers);
   * 2. ᾱ_t, ᾱ_{t−1} (final ᾱ below 0), 1 − ᾱ_t;
   * 3. x̂₀ ("predicted x₀" of eq. 12) and ε̂ from the model output by `prediction_type`;
   * 4. dynamic thresholding or `clip_sample` on x̂₀;
   * 5. σ_t = η·√variance (eq. 16);
   * 6. with `useClippedModelOutput`, ε̂ recomputed from the clipped x̂₀;
   * 7. "direction pointing to x_t" √(1 − ᾱ_{t−1} − σ_t²)·ε̂, and x_{t−1} = √ᾱ_{t−1}·x̂₀ + direction;
   * 8. η > 0: add σ_t·z with z = `varianceNoise` or `generator.randn(sample.shape)` (drawn even on the last step).
   *
   * @throws {Error} before {@linkcode setTimesteps}; {@link TypeError} on mismatched shapes, both `generator` and
   * `varianceNoise` with η > 0 (as diffusers), or η > 0 with neither; {@link RangeError} on a bad timestep or η.
   */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): StepOutput {
    const n = this.requireSchedule("step()");
    assertSameShape(modelOutput, sample, ["modelOutput", "sample"]);
    const T = this.#cfg.num_train_timesteps;
    checkIntegerTimestep(timestep, T);
    const { eta = 0, generator, varianceNoise, useClippedModelOutput = false } = options;
    if (typeof eta !== "number" || !Number.isFinite(eta) || eta < 0) {
      throw new RangeError(`eta must be a finite number >= 0: got ${eta}`);
    }
    if (eta > 0) {
      if (generator !== undefined && varianceNoise !== undefined) {
        throw new TypeError(
          "Cannot pass both generator and varianceNoise: make sure that either `generator` or `varianceNoise` stays undefined",
        );
      }
      if (generator === undefined && varianceNoise === undefined) {
        throw new TypeError(`eta > 0 (got ${eta}) needs options.generator or options.varianceNoise`);
      }
      if (varianceNoise !== undefined) assertSameShape(varianceNoise, sample, ["varianceNoise", "sample"]);
    }

    // 1. previous step value (=t-1)
    const prevTimestep = timestep - Math.floor(T / n);

    // 2. alphas, betas
    const alphaProdT = this.alphaProd(timestep);
    const alphaProdTPrev = this.alphaProd(prevTimestep);

    // 3. predicted original sample x̂₀ ("predicted x_0" of DDIM eq. 12) and predicted noise ε̂
    let { predOriginalSample, predEpsilon } = originalAndEpsilonFromAlpha(
      this.#cfg.prediction_type,
      modelOutput,
      sample,
      alphaProdT,
    );

    // 4. clip or threshold x̂₀
    if (this.#cfg.thresholding) {
      predOriginalSample = dynamicThreshold(
        predOriginalSample,
        this.#cfg.dynamic_thresholding_ratio,
        this.#cfg.sample_max_value,
      );
    } else if (this.#cfg.clip_sample) {
      predOriginalSample = clipSample(predOriginalSample, this.#cfg.clip_sample_range);
    }

    // 5. σ_t(η) of DDIM eq. 16
    const variance = this.getVariance(timestep, prevTimestep);
    const stdDevT = f32(f32(eta) * f32(Math.sqrt(variance)));

    // 6. ε̂ from the clipped x̂₀ (Glide's convention)
    if (useClippedModelOutput) predEpsilon = epsilonFromOriginal(sample, predOriginalSample, alphaProdT);

    // 7. DDIM eq. 12: x_{t-1} = √ᾱ_{t-1}·x̂₀ + √(1 − ᾱ_{t-1} − σ_t²)·ε̂ (+ σ_t·z below)
    const dirCoeff = f32(Math.sqrt(f32(f32(1 - alphaProdTPrev) - f32(stdDevT * stdDevT))));
    const sqrtAlphaPrev = f32(Math.sqrt(alphaProdTPrev));
    const x0 = predOriginalSample.data, eps = predEpsilon.data;
    const prev = new Float32Array(x0.length);
    for (let i = 0; i < prev.length; i++) prev[i] = f32(sqrtAlphaPrev * x0[i]!) + f32(dirCoeff * eps[i]!);

    // 8. random noise σ_t·z (η > 0)
    if (eta > 0) {
      const z = varianceNoise ?? generator!.randn(sample.shape);
      assertSameShape(z, sample, ["noise", "sample"]);
      const zd = z.data;
      for (let i = 0; i < prev.length; i++) prev[i] = prev[i]! + f32(stdDevT * zd[i]!);
    }

    return { prevSample: new Tensor(prev, sample.shape), predOriginalSample };
  }
}

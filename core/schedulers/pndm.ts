/**
 * `PNDMScheduler`: pseudo numerical methods for diffusion models (Liu, Ren, Lin & Zhao 2022,
 * https://arxiv.org/abs/2202.09778): four Runge–Kutta (PRK) steps to warm up, then a 4th-order linear multistep
 * (PLMS) method, or PLMS alone with `skip_prk_steps`. Ported from diffusers'
 * `src/diffusers/schedulers/scheduling_pndm.py` with torch's float32 arithmetic order.
 *
 * @module
 */
import { assertSameShape, f32, Tensor } from "../tensor/mod.ts";
import { checkIntegerTimestep, checkNumInferenceSteps, spacedTimesteps, TIMESTEP_SPACINGS } from "./_betas.ts";
import { AlphaBarScheduler } from "./_base.ts";
import { boolean, COMMON_FIELDS, defineConfig, oneOf } from "./_config.ts";
import type { Scheduler, StepOptions, StepOutput } from "./types.ts";

/** PNDM's config fields and diffusers' `__init__` defaults. */
const PNDM_CONFIG = defineConfig("PNDMScheduler", {
  ...COMMON_FIELDS,
  skip_prk_steps: boolean(false),
  set_alpha_to_one: boolean(false),
  prediction_type: oneOf(["epsilon", "v_prediction"] as const, "epsilon"),
  timestep_spacing: oneOf(TIMESTEP_SPACINGS, "leading"),
});

/** PNDM's fixed order: PLMS combines the last four ε estimates; PRK needs four stages. */
const PNDM_ORDER = 4;

const SIXTH = f32(1 / 6);
const THIRD = f32(1 / 3);
const TWENTY_FOURTH = f32(1 / 24);

/**
 * PNDM sampler (diffusers `PNDMScheduler`). Config keys and defaults are diffusers': `num_train_timesteps` 1000,
 * `beta_start` 1e-4, `beta_end` 0.02, `beta_schedule` `"linear"`, `trained_betas` null, `skip_prk_steps` false,
 * `set_alpha_to_one` **false**, `prediction_type` `"epsilon"` (or `"v_prediction"`; `"sample"` is rejected as in
 * diffusers), `timestep_spacing` `"leading"`, `steps_offset` 0.
 *
 * `timesteps` has repeated entries (PRK evaluates each interval's midpoint twice; PLMS without PRK revisits the
 * second timestep): call the model and `step` once per entry. Holds per-run state (the ε history): create one per
 * generation; `setTimesteps` resets it.
 *
 * Inherited ᾱ-scheduler members (shared with {@linkcode DDIMScheduler}): `config`, `initNoiseSigma` (1), `order` (1),
 * `timesteps`, `numInferenceSteps`, `alphasCumprod`, `finalAlphaCumprod`, `scaleModelInput` (the identity) and
 * `addNoise` (√ᾱ_t·x₀ + √(1−ᾱ_t)·ε).
 *
 * @example
 * ```ts
 * import { PNDMScheduler } from "@ldm/core/schedulers";
 * const scheduler = new PNDMScheduler({ skip_prk_steps: true });
 * scheduler.setTimesteps(7);
 * console.log(scheduler.timesteps); // [852, 710, 710, 568, 426, 284, 142, 0]
 * ```
 */
export class PNDMScheduler extends AlphaBarScheduler implements Scheduler {
  /** `"PNDMScheduler"`. */
  readonly className = "PNDMScheduler";

  readonly #cfg: ReturnType<typeof PNDM_CONFIG.resolve>["values"];
  #prkTimesteps: readonly number[] = Object.freeze([]);
  #plmsTimesteps: readonly number[] = Object.freeze([]);

  // Per-run state, reset by setTimesteps (diffusers: ets, counter, cur_model_output, cur_sample).
  #ets: Tensor[] = [];
  #counter = 0;
  #curModelOutput: Float32Array | null = null;
  #curSample: Tensor | null = null;

  /**
   * @param config A diffusers scheduler config, resolved with from_config semantics.
   * @throws {TypeError|RangeError} naming the field and value of an invalid config entry (e.g.
   * `prediction_type: "sample"`, which diffusers' PNDM rejects).
   */
  constructor(config: Record<string, unknown> = {}) {
    const { values, config: resolved } = PNDM_CONFIG.resolve(config);
    super(PNDM_CONFIG.className, resolved, values);
    this.#cfg = values;
  }

  /** The PRK part of {@linkcode timesteps} (empty with `skip_prk_steps`). */
  get prkTimesteps(): readonly number[] {
    return this.#prkTimesteps;
  }

  /** The PLMS part of {@linkcode timesteps}. */
  get plmsTimesteps(): readonly number[] {
    return this.#plmsTimesteps;
  }

  /**
   * Builds the PRK and PLMS timesteps (diffusers `set_timesteps`) and resets the ε history.
   *
   * @throws {RangeError} when `numInferenceSteps` is not an integer in [1, num_train_timesteps], or is below 4
   * without `skip_prk_steps` (diffusers fails there with a numpy broadcast error: PRK needs four timesteps).
   */
  setTimesteps(numInferenceSteps: number): void {
    const T = this.#cfg.num_train_timesteps;
    const n = checkNumInferenceSteps(numInferenceSteps, T);
    if (!this.#cfg.skip_prk_steps && n < PNDM_ORDER) {
      throw new RangeError(
        `numInferenceSteps must be >= ${PNDM_ORDER} when skip_prk_steps is false (PRK warm-up needs ${PNDM_ORDER} timesteps): got ${n}`,
      );
    }
    // Ascending, as diffusers' `_timesteps`.
    const ts = spacedTimesteps(this.#cfg.timestep_spacing, T, n, this.#cfg.steps_offset).reverse();
    let prk: number[];
    let plms: number[];
    if (this.#cfg.skip_prk_steps) {
      // concat(_ts[:-1], _ts[-2:-1], _ts[-1:])[::-1]: the second timestep is visited twice (Heun-like first step).
      prk = [];
      plms = [...ts.slice(0, -1), ...(ts.length >= 2 ? [ts[ts.length - 2]!] : []), ts[ts.length - 1]!].reverse();
    } else {
      // (_ts[-4:].repeat(2) + tile([0, h], 4))[:-1].repeat(2)[1:-1][::-1]: each RK step evaluates t, t−h, t−h, t−2h.
      const h = Math.floor(Math.floor(T / n) / 2);
      const last = ts.slice(-PNDM_ORDER);
      const withHalf = last.flatMap((t) => [t, t + h]).slice(0, -1);
      prk = withHalf.flatMap((t) => [t, t]).slice(1, -1).reverse();
      plms = ts.slice(0, -3).reverse();
    }
    this.#prkTimesteps = Object.freeze(prk);
    this.#plmsTimesteps = Object.freeze(plms);
    // diffusers' `timesteps`: the PRK timesteps followed by the PLMS ones.
    this.startSchedule([...prk, ...plms], n);
    this.#ets = [];
    this.#counter = 0;
    this.#curModelOutput = null;
    this.#curSample = null;
  }

  /**
   * One PNDM step: a Runge–Kutta stage (`stepPrk`) for the first `prkTimesteps.length` calls unless
   * `skip_prk_steps`, then linear multistep (`stepPlms`). `options` are accepted and ignored (PNDM is
   * deterministic). Returns no `predOriginalSample` (diffusers computes none).
   *
   * @throws {Error} before {@linkcode setTimesteps}; {@link TypeError} on mismatched shapes; {@link RangeError} on a
   * timestep that is not an integer in [0, T).
   */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, _options: StepOptions = {}): StepOutput {
    this.requireSchedule("step()");
    assertSameShape(modelOutput, sample, ["modelOutput", "sample"]);
    checkIntegerTimestep(timestep, this.#cfg.num_train_timesteps);
    if (this.#curSample !== null) assertSameShape(sample, this.#curSample, ["sample", "the previous steps' sample"]);
    if (this.#counter < this.#prkTimesteps.length && !this.#cfg.skip_prk_steps) {
      return { prevSample: this.#stepPrk(modelOutput, timestep, sample) };
    }
    return { prevSample: this.#stepPlms(modelOutput, timestep, sample) };
  }

  /**
   * Pseudo Runge–Kutta (PNDM paper, eq. 13 with the pseudo transfer φ of eq. 11): four model evaluations per
   * interval, combined as (e₁ + 2e₂ + 2e₃ + e₄)/6, each stage transferring from the sample at the start of the interval.
   */
  #stepPrk(modelOutput: Tensor, timestep: number, sample: Tensor): Tensor {
    const n = this.numInferenceSteps!;
    const T = this.#cfg.num_train_timesteps;
    const c = this.#counter;
    // 1. stage target: half an interval for stages 1–2 (even counters), the same point for odd ones
    const diffToPrev = c % 2 ? 0 : Math.floor(Math.floor(T / n) / 2);
    const prevTimestep = timestep - diffToPrev;
    const anchor = this.#prkTimesteps[Math.floor(c / 4) * 4]!;

    // 2. accumulate the RK4 weights 1/6, 1/3, 1/3, 1/6 (float32 coefficients, as torch rounds python's 1/6)
    const m = modelOutput.data;
    let eps = modelOutput;
    if (c % 4 === 0) {
      this.#curModelOutput = m.map((v) => SIXTH * v);
      this.#ets.push(modelOutput);
      this.#curSample = sample;
    } else if (c % 4 === 1 || c % 4 === 2) {
      const cur = this.#curModelOutput!;
      for (let i = 0; i < cur.length; i++) cur[i] = cur[i]! + f32(THIRD * m[i]!);
    } else {
      const cur = this.#curModelOutput!;
      eps = new Tensor(cur.map((v, i) => v + f32(SIXTH * m[i]!)), modelOutput.shape);
      this.#curModelOutput = null;
    }

    // 3. transfer from the interval's start sample
    const curSample = this.#curSample ?? sample;
    const prev = this.#getPrevSample(curSample, anchor, prevTimestep, eps);
    this.#counter++;
    return prev;
  }

  /**
   * Pseudo linear multistep (PNDM paper, eq. 12): ε' = (55e₀ − 59e₋₁ + 37e₋₂ − 9e₋₃)/24 once four estimates exist,
   * lower-order Adams–Bashforth combinations before that; with `skip_prk_steps` the first interval is redone with
   * the average of two estimates (a Heun-like start).
   */
  #stepPlms(modelOutput: Tensor, timestep: number, sample: Tensor): Tensor {
    const n = this.numInferenceSteps!;
    const ratio = Math.floor(this.#cfg.num_train_timesteps / n);
    if (!this.#cfg.skip_prk_steps && this.#ets.length < 3) {
      // Unreachable through step(); kept as diffusers' guard.
      throw new Error("PNDMScheduler: PLMS steps need the 12 PRK warm-up steps first (ets has fewer than 3 entries)");
    }
    // 1. target timestep
    let prevTimestep = timestep - ratio;
    let t = timestep;
    if (this.#counter !== 1) {
      this.#ets = this.#ets.slice(-3);
      this.#ets.push(modelOutput);
    } else {
      prevTimestep = timestep;
      t = timestep + ratio;
    }

    // 2. combine the ε history
    const e = this.#ets;
    const k = e.length;
    let x = sample;
    let eps: Tensor;
    if (k === 1 && this.#counter === 0) {
      eps = modelOutput;
      this.#curSample = sample;
    } else if (k === 1 && this.#counter === 1) {
      const e1 = e[k - 1]!.data;
      eps = new Tensor(modelOutput.data.map((v, i) => f32(v + e1[i]!) / 2), modelOutput.shape);
      x = this.#curSample!;
      this.#curSample = null;
    } else {
      const e1 = e[k - 1]!.data, e2 = e[k - 2]!.data;
      const out = new Float32Array(e1.length);
      if (k === 2) {
        for (let i = 0; i < out.length; i++) out[i] = f32(f32(3 * e1[i]!) - e2[i]!) / 2;
      } else if (k === 3) {
        const e3 = e[k - 3]!.data;
        for (let i = 0; i < out.length; i++) {
          out[i] = f32(f32(f32(23 * e1[i]!) - f32(16 * e2[i]!)) + f32(5 * e3[i]!)) / 12;
        }
      } else {
        const e3 = e[k - 3]!.data, e4 = e[k - 4]!.data;
        for (let i = 0; i < out.length; i++) {
          const s = f32(f32(f32(f32(55 * e1[i]!) - f32(59 * e2[i]!)) + f32(37 * e3[i]!)) - f32(9 * e4[i]!));
          out[i] = TWENTY_FOURTH * s;
        }
      }
      eps = new Tensor(out, modelOutput.shape);
    }

    // 3. transfer
    const prev = this.#getPrevSample(x, t, prevTimestep, eps);
    this.#counter++;
    return prev;
  }

  /**
   * The pseudo transfer φ (PNDM paper, eq. 9; diffusers `_get_prev_sample`):
   * x_{t−δ} = √(ᾱ_{t−δ}/ᾱ_t)·x_t − (ᾱ_{t−δ} − ᾱ_t)·ε / (ᾱ_t·√(1−ᾱ_{t−δ}) + √(ᾱ_t(1−ᾱ_t)ᾱ_{t−δ})),
   * with ε = √ᾱ_t·v + √(1−ᾱ_t)·x for v-prediction.
   */
  #getPrevSample(sample: Tensor, timestep: number, prevTimestep: number, modelOutput: Tensor): Tensor {
    const alphaProdT = this.alphaProd(checkIntegerTimestep(timestep, this.#cfg.num_train_timesteps));
    const alphaProdTPrev = this.alphaProd(prevTimestep);
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    const x = sample.data;
    let eps = modelOutput.data;
    if (this.#cfg.prediction_type === "v_prediction") {
      const sa = f32(Math.sqrt(alphaProdT)), sb = f32(Math.sqrt(betaProdT));
      const v = eps;
      eps = v.map((vi, i) => f32(sa * vi) + f32(sb * x[i]!));
    }
    const sampleCoeff = f32(Math.sqrt(f32(alphaProdTPrev / alphaProdT)));
    const denom = f32(
      f32(alphaProdT * f32(Math.sqrt(betaProdTPrev))) +
        f32(Math.sqrt(f32(f32(alphaProdT * betaProdT) * alphaProdTPrev))),
    );
    const diff = f32(alphaProdTPrev - alphaProdT);
    const out = new Float32Array(x.length);
    for (let i = 0; i < out.length; i++) out[i] = f32(sampleCoeff * x[i]!) - f32(f32(diff * eps[i]!) / denom);
    return new Tensor(out, sample.shape);
  }
}

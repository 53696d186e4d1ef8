/**
 * `LMSDiscreteScheduler`: Katherine Crowson's linear multistep sampler for discrete beta schedules (k-diffusion
 * `sample_lms`; Karras et al. 2022 for the σ-space ODE), ported from diffusers' `scheduling_lms_discrete.py`.
 *
 * @module
 */
import { f32, Tensor } from "../tensor/mod.ts";
import type { Scheduler, StepOptions, StepOutput } from "./types.ts";
import { checkNumInferenceSteps, originalFromSigma, TIMESTEP_SPACINGS } from "./_betas.ts";
import { SigmaScheduler } from "./_base.ts";
import { boolean, COMMON_FIELDS, defineConfig, oneOf, type ResolvedValues } from "./_config.ts";
import {
  appendFinalSigma,
  betaSigmas,
  checkOneSigmaRespacing,
  exponentialSigmas,
  hiddenSigmaBound,
  initNoiseSigmaFor,
  interpOnIndexGrid,
  karrasSigmas,
  mapNoised,
  scaleBySigma,
  sigmaTimesteps,
  sigmaToT,
} from "./_sigmas.ts";

const CLASS_NAME = "LMSDiscreteScheduler";

/** The config fields of `LMSDiscreteScheduler` with diffusers' defaults. */
const FIELDS = {
  ...COMMON_FIELDS,
  use_karras_sigmas: boolean(false),
  use_exponential_sigmas: boolean(false),
  use_beta_sigmas: boolean(false),
  prediction_type: oneOf(["epsilon", "sample", "v_prediction"] as const, "epsilon"),
  timestep_spacing: oneOf(TIMESTEP_SPACINGS, "linspace"),
} as const;

const RESOLVER = defineConfig(CLASS_NAME, FIELDS);

/** How many past derivatives the multistep formula uses at most (diffusers' `step(order=4)` default). */
const MAX_ORDER = 4;

/**
 * Linear multistep (LMS) sampler in σ-space with diffusers' exact behaviour.
 *
 * Each step turns the model output into the ODE derivative `d = (x − x̂₀)/σ` and advances
 * `x ← x + Σ_j c_j · d_{i−j}` over the last up to 4 derivatives, where `c_j` integrates the Lagrange basis polynomial
 * of node `σ_{i−j}` from `σ_i` to `σ_{i+1}`.
 *
 * The coefficients reproduce what diffusers computes with `scipy.integrate.quad(epsrel=1e-4)`: QUADPACK's first
 * 21-point Gauss–Kronrod estimate of the integrand evaluated in float32 (torch 0-dim tensor arithmetic), which quad
 * accepts for these degree ≤ 3 polynomials. Reproducing that estimate, rather than integrating the polynomial
 * exactly in float64, makes the samples bit-identical to diffusers (exact integration differs by up to ~2e-5
 * absolute over a 50-step run). Should QUADPACK's error test ever reject the first estimate, the exact integral is
 * used, which is what quad's adaptive subdivision converges to.
 *
 * Deliberate differences from diffusers: `step`/`scaleModelInput` before `setTimesteps` throw (diffusers silently
 * uses a `num_train_timesteps`-step schedule), and `timesteps` is empty until then; `initNoiseSigma` is already valid
 * (the maximum training σ). The `scale_model_input` warning is not reproduced. Python distinguishes `int` from
 * `float` timesteps; JS numbers do not, so any number is accepted and must equal (in float32) one of `timesteps`.
 *
 * Inherited σ-scheduler members (diffusers' step-index bookkeeping, shared with the other σ schedulers): `config`,
 * `order` (1), `timesteps`, `sigmas`, `alphasCumprod`, `stepIndex`, `beginIndex` and `setBeginIndex`.
 *
 * @example Super-resolution style loop
 * ```ts
 * import { LMSDiscreteScheduler } from "./lms_discrete.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const scheduler = new LMSDiscreteScheduler({ beta_schedule: "scaled_linear", beta_start: 0.0015, beta_end: 0.0155 });
 * scheduler.setTimesteps(10);
 * let latents = new Tensor(new Float32Array(16).fill(scheduler.initNoiseSigma), [1, 1, 4, 4]);
 * for (const t of scheduler.timesteps) {
 *   const input = scheduler.scaleModelInput(latents, t);
 *   const noisePred = input; // a UNet call in a real pipeline
 *   latents = scheduler.step(noisePred, t, latents).prevSample;
 * }
 * ```
 */
export class LMSDiscreteScheduler extends SigmaScheduler<Float32Array> implements Scheduler {
  /** The diffusers class this reproduces. */
  readonly className = CLASS_NAME;

  readonly #values: ResolvedValues<typeof FIELDS>;
  #derivatives: Float32Array[] = [];

  /**
   * Builds the scheduler from a diffusers config (`scheduler_config.json` contents or overrides; `from_config`
   * semantics: unknown keys are kept but ignored).
   *
   * @throws {TypeError} for a wrongly typed field (including a non-numeric `sigma_min`/`sigma_max` key that the
   *   exponential and beta re-spacings read); {@link RangeError} for an out-of-range value, an unknown choice, or more
   *   than one of `use_karras_sigmas`, `use_exponential_sigmas`, `use_beta_sigmas`.
   */
  constructor(config: Record<string, unknown> = {}) {
    const { values, config: resolved } = RESOLVER.resolve(config);
    checkOneSigmaRespacing(values, CLASS_NAME);
    if (values.use_exponential_sigmas || values.use_beta_sigmas) {
      // Validate now what setTimesteps will read (see hiddenSigmaBound).
      hiddenSigmaBound(resolved, "sigma_min", CLASS_NAME);
      hiddenSigmaBound(resolved, "sigma_max", CLASS_NAME);
    }
    // Before setTimesteps, σ is the full training table (what initNoiseSigma reports), as in diffusers.
    super(CLASS_NAME, resolved, values, { notFound: "throw", timesteps: new Float32Array(0), sigmas: "training" });
    this.#values = values;
  }

  /** `max σ` (`linspace`/`trailing` spacing) or `sqrt(max σ² + 1)` (`leading`). */
  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.#values.timestep_spacing);
  }

  /**
   * Sets `numInferenceSteps` timesteps by `timestep_spacing`, their σ (interpolated from the training table, or
   * re-spaced by Karras/exponential/beta σ with `_sigma_to_t` timesteps), appends σ = 0 and resets the step state.
   *
   * @throws {RangeError} when `numInferenceSteps` is not an integer in [1, num_train_timesteps].
   */
  setTimesteps(numInferenceSteps: number): void {
    const v = this.#values;
    const n = checkNumInferenceSteps(numInferenceSteps, v.num_train_timesteps);
    let timesteps: ArrayLike<number> = sigmaTimesteps(v.timestep_spacing, v.num_train_timesteps, n, v.steps_offset);
    let sigmas: Float64Array = interpOnIndexGrid(timesteps, this.trainSigmas);
    if (v.use_karras_sigmas || v.use_exponential_sigmas || v.use_beta_sigmas) {
      if (this.trainSigmas.length < 2) {
        throw new RangeError(`${CLASS_NAME}: σ re-spacing needs num_train_timesteps >= 2: got 1`);
      }
      const inMin = sigmas[sigmas.length - 1]!, inMax = sigmas[0]!;
      if (v.use_karras_sigmas) {
        // diffusers' LMS `_convert_to_karras` ignores config sigma_min/sigma_max; the other two read them.
        sigmas = karrasSigmas(inMin, inMax, n);
      } else {
        const lo = hiddenSigmaBound(this.config, "sigma_min", CLASS_NAME) ?? inMin;
        const hi = hiddenSigmaBound(this.config, "sigma_max", CLASS_NAME) ?? inMax;
        sigmas = v.use_exponential_sigmas ? exponentialSigmas(lo, hi, n) : betaSigmas(lo, hi, n);
      }
      timesteps = Float32Array.from(sigmas, (s) => sigmaToT(s, this.logSigmas));
    }
    this.startSchedule(Float32Array.from(timesteps), appendFinalSigma(sigmas, 0));
    this.#derivatives = [];
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
   * One LMS step: x̂₀ by `prediction_type`, `d = (x − x̂₀)/σ`, then `x + Σ_j c_j·d_{i−j}` (order min(i + 1, 4)).
   * `options` are accepted for interface compatibility and ignored (LMS is deterministic).
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} when the shapes differ or the timestep is not a finite
   *   number; {@link RangeError} for a timestep that is not in `timesteps` or a step past the end.
   */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, _options?: StepOptions): StepOutput {
    const i = this.locateStep(timestep, "step");
    const sigmas = this.sigmas;
    const sigma = sigmas[i]!;
    // 1. x̂₀ from the σ-scaled prediction
    const predOriginalSample = originalFromSigma(this.#values.prediction_type, modelOutput, sample, sigma);
    // 2. the ODE derivative d = (x − x̂₀)/σ
    const x = sample.data, x0 = predOriginalSample.data, size = x.length;
    const derivative = new Float32Array(size);
    for (let k = 0; k < size; k++) derivative[k] = f32(x[k]! - x0[k]!) / sigma;
    this.#derivatives.push(derivative);
    if (this.#derivatives.length > MAX_ORDER) this.#derivatives.shift();
    // 3. linear multistep coefficients
    const order = Math.min(i + 1, MAX_ORDER);
    // 4. x_{i+1} = x + Σ_j c_j·d_{i−j}; python's sum() adds the products left to right in float32. zip() stops at
    // the stored derivatives: a run started mid-schedule (begin index) has fewer than `order` of them at first.
    const acc = new Float32Array(size);
    const terms = Math.min(order, this.#derivatives.length);
    for (let j = 0; j < terms; j++) {
      const c = f32(lmsCoefficient(sigmas, order, i, j));
      const d = this.#derivatives[this.#derivatives.length - 1 - j]!;
      for (let k = 0; k < size; k++) acc[k] = j === 0 ? c * d[k]! : acc[k]! + f32(c * d[k]!);
    }
    const prev = new Float32Array(size);
    for (let k = 0; k < size; k++) prev[k] = x[k]! + acc[k]!;
    this.advanceStep();
    return { prevSample: new Tensor(prev, sample.shape), predOriginalSample };
  }

  /**
   * Forward-noises `originalSamples` to the σ of `timesteps` (diffusers `add_noise`): `x₀ + ε·σ`. `timesteps` is one
   * timestep for the whole batch or one per batch item; the schedule position follows diffusers (lookup, or the
   * begin/current step index once set).
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} when shapes differ or the count does not fit the batch;
   *   {@link RangeError} for a timestep that is not in `timesteps`.
   */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    const sig = this.noiseSigmas(timesteps, originalSamples.shape[0] ?? 1);
    return mapNoised(originalSamples, noise, sig.length, (x, e, g) => x + f32(e * sig[g]!));
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// LMS coefficients: scipy.integrate.quad's first QUADPACK step (dqk21 inside dqagse), on a float32 integrand.
// ---------------------------------------------------------------------------------------------------------------------

/** Kronrod abscissae of the 21-point rule (QUADPACK `dqk21` `xgk`); odd positions (1, 3, …) are the Gauss nodes. */
const XGK = [
  0.995657163025808080735527280689003,
  0.973906528517171720077964012084452,
  0.930157491355708226001207180059508,
  0.865063366688984510732096688423493,
  0.780817726586416897063717578345042,
  0.679409568299024406234327365114874,
  0.562757134668604683339000099272694,
  0.433395394129247190799265943165784,
  0.294392862701460198131126603103866,
  0.148874338981631210884826001129720,
  0,
];
/** Kronrod weights (`wgk`). */
const WGK = [
  0.011694638867371874278064396062192,
  0.032558162307964727478818972459390,
  0.054755896574351996031381300244580,
  0.075039674810919952767043140916190,
  0.093125454583697605535065465083366,
  0.109387158802297641899210590325805,
  0.123491976262065851077208745109523,
  0.134709217311473325928054001771707,
  0.142775938577060080797094273138717,
  0.147739104901338491374841515972068,
  0.149445554002916905664936468389821,
];
/** Weights of the embedded 10-point Gauss rule (`wg`). */
const WG = [
  0.066671344308688137593568809893332,
  0.149451349150580593145776339657697,
  0.219086362515982043995534934228163,
  0.269266719309996355091226921569469,
  0.295524224714752870173892994651338,
];
const EPMACH = 2.220446049250313e-16; // d1mach(4)
const UFLOW = 2.2250738585072014e-308; // d1mach(1)
const QUAD_EPSABS = 1.49e-8; // scipy.integrate.quad default
const QUAD_EPSREL = 1e-4; // diffusers' epsrel

/**
 * The float32 integrand diffusers hands to quad: `prod_{k≠j} (τ − σ_{i−k}) / (σ_{i−j} − σ_{i−k})`, every operation a
 * float32 0-dim tensor op (the python float τ is rounded to float32 first); `1.0` for order 1.
 */
function lagrangeBasisF32(sigmas: Float32Array, order: number, i: number, j: number, tau: number): number {
  const tau32 = f32(tau);
  let prod = 1.0;
  for (let k = 0; k < order; k++) {
    if (k === j) continue;
    const sk = sigmas[i - k]!;
    prod = f32(prod * f32(f32(tau32 - sk) / f32(sigmas[i - j]! - sk)));
  }
  return prod;
}

/**
 * The exact integral of the same Lagrange basis polynomial (degree ≤ 3) over [σ_i, σ_{i+1}] in float64 (two-point
 * Gauss–Legendre is exact for cubics). Used only if QUADPACK would not accept its first estimate.
 */
export function lmsCoefficientExact(sigmas: Float32Array, order: number, i: number, j: number): number {
  const basis = (tau: number): number => {
    let prod = 1.0;
    for (let k = 0; k < order; k++) {
      if (k === j) continue;
      prod *= (tau - sigmas[i - k]!) / (sigmas[i - j]! - sigmas[i - k]!);
    }
    return prod;
  };
  const a = sigmas[i]!, b = sigmas[i + 1]!;
  const centre = 0.5 * (a + b), half = 0.5 * (b - a), node = half / Math.sqrt(3);
  return half * (basis(centre - node) + basis(centre + node));
}

/**
 * diffusers' `get_lms_coefficient(order, i, j)`: `quad(basis_j, σ_i, σ_{i+1}, epsrel=1e-4)`, reproduced as QUADPACK
 * `dqags` does it: the 21-point Gauss–Kronrod sum (`dqk21`, same summation order) of the float32 integrand, returned
 * when `dqagse`'s first acceptance test passes (it always does for these polynomials in practice), else the exact
 * integral ({@linkcode lmsCoefficientExact}).
 *
 * @param sigmas the schedule's σ (float32, with the final σ appended).
 * @param order number of nodes (1…4); `i` the step index; `j` the node whose basis is integrated.
 */
export function lmsCoefficient(sigmas: Float32Array, order: number, i: number, j: number): number {
  const a = sigmas[i]!, b = sigmas[i + 1]!;
  const f = (tau: number) => lagrangeBasisF32(sigmas, order, i, j, tau);
  // dqk21
  const centr = 0.5 * (a + b);
  const hlgth = 0.5 * (b - a);
  const dhlgth = Math.abs(hlgth);
  const fv1 = new Array<number>(10), fv2 = new Array<number>(10);
  let resg = 0;
  const fc = f(centr);
  let resk = WGK[10]! * fc;
  let resabs = Math.abs(resk);
  for (let jj = 0; jj < 5; jj++) {
    const jtw = 2 * jj + 1;
    const absc = hlgth * XGK[jtw]!;
    const fval1 = f(centr - absc), fval2 = f(centr + absc);
    fv1[jtw] = fval1;
    fv2[jtw] = fval2;
    const fsum = fval1 + fval2;
    resg = resg + WG[jj]! * fsum;
    resk = resk + WGK[jtw]! * fsum;
    resabs = resabs + WGK[jtw]! * (Math.abs(fval1) + Math.abs(fval2));
  }
  for (let jj = 0; jj < 5; jj++) {
    const jtwm1 = 2 * jj;
    const absc = hlgth * XGK[jtwm1]!;
    const fval1 = f(centr - absc), fval2 = f(centr + absc);
    fv1[jtwm1] = fval1;
    fv2[jtwm1] = fval2;
    const fsum = fval1 + fval2;
    resk = resk + WGK[jtwm1]! * fsum;
    resabs = resabs + WGK[jtwm1]! * (Math.abs(fval1) + Math.abs(fval2));
  }
  const reskh = resk * 0.5;
  let resasc = WGK[10]! * Math.abs(fc - reskh);
  for (let jj = 0; jj < 10; jj++) {
    resasc = resasc + WGK[jj]! * (Math.abs(fv1[jj]! - reskh) + Math.abs(fv2[jj]! - reskh));
  }
  const result = resk * hlgth;
  resabs = resabs * dhlgth;
  resasc = resasc * dhlgth;
  let abserr = Math.abs((resk - resg) * hlgth);
  if (resasc !== 0 && abserr !== 0) abserr = resasc * Math.min(1, (200 * abserr / resasc) ** 1.5);
  if (resabs > UFLOW / (50 * EPMACH)) abserr = Math.max(EPMACH * 50 * resabs, abserr);
  // dqagse: stop after the first rule on success, on round-off (ier = 2) or a zero error estimate.
  const errbnd = Math.max(QUAD_EPSABS, QUAD_EPSREL * Math.abs(result));
  const roundoff = abserr <= 100 * EPMACH * resabs && abserr > errbnd;
  if (roundoff || (abserr <= errbnd && abserr !== resabs) || abserr === 0) return result;
  return lmsCoefficientExact(sigmas, order, i, j);
}

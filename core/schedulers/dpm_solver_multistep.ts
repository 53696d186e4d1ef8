/**
 * `DPMSolverMultistepScheduler`: the multistep DPM-Solver family ported from diffusers'
 * `scheduling_dpmsolver_multistep.py`: DPM-Solver (Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion
 * Probabilistic Model Sampling in Around 10 Steps"), DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for
 * Guided Sampling of Diffusion Probabilistic Models") and their SDE variants, orders 1–3.
 *
 * @module
 */
import { assertSameShape, f32, Tensor } from "../tensor/mod.ts";
import type { Scheduler, StepOptions, StepOutput } from "./types.ts";
import {
  checkNumInferenceSteps,
  dynamicThreshold,
  numpyArange,
  numpyLinspace,
  roundHalfEven,
  TIMESTEP_SPACINGS,
} from "./_betas.ts";
import { SigmaScheduler } from "./_base.ts";
import {
  boolean,
  COMMON_FIELDS,
  defineConfig,
  integer,
  nullable,
  number,
  oneOf,
  type ResolvedValues,
} from "./_config.ts";
import {
  appendFinalSigma,
  betaSigmas,
  checkOneSigmaRespacing,
  exponentialSigmas,
  hiddenSigmaBound,
  interpOnIndexGrid,
  karrasSigmas,
  luLambdas,
  mapNoised,
  sigmaToT,
  stepNoise,
} from "./_sigmas.ts";

const CLASS_NAME = "DPMSolverMultistepScheduler";

/** The config fields of `DPMSolverMultistepScheduler` with diffusers' defaults. */
const FIELDS = {
  ...COMMON_FIELDS,
  solver_order: integer(2, { min: 1, max: 3 }),
  prediction_type: oneOf(["epsilon", "sample", "v_prediction", "flow_prediction"] as const, "epsilon"),
  thresholding: boolean(false),
  dynamic_thresholding_ratio: number(0.995, { min: 0, max: 1 }),
  sample_max_value: number(1.0, { min: 0, exclusiveMin: true }),
  // "deis" and the UniPC/DEIS solver types are remapped as diffusers does (configs saved by those schedulers).
  algorithm_type: oneOf(
    ["dpmsolver++", "dpmsolver", "sde-dpmsolver++", "sde-dpmsolver", "deis"] as const,
    "dpmsolver++",
  ),
  solver_type: oneOf(["midpoint", "heun", "logrho", "bh1", "bh2"] as const, "midpoint"),
  lower_order_final: boolean(true),
  euler_at_final: boolean(false),
  use_karras_sigmas: boolean(false),
  use_exponential_sigmas: boolean(false),
  use_beta_sigmas: boolean(false),
  use_lu_lambdas: boolean(false),
  use_flow_sigmas: boolean(false),
  flow_shift: number(1.0, { min: 0, exclusiveMin: true }),
  final_sigmas_type: oneOf(["zero", "sigma_min"] as const, "zero"),
  lambda_min_clipped: number(-Infinity, { allowInfinite: true }),
  variance_type: nullable(oneOf(["learned", "learned_range"] as const, "learned")),
  timestep_spacing: oneOf(TIMESTEP_SPACINGS, "linspace"),
  rescale_betas_zero_snr: boolean(false),
  use_dynamic_shifting: boolean(false),
  time_shift_type: oneOf(["exponential"] as const, "exponential"),
} as const;

const RESOLVER = defineConfig(CLASS_NAME, FIELDS);

type Algorithm = "dpmsolver++" | "dpmsolver" | "sde-dpmsolver++" | "sde-dpmsolver";

/** α_t = 1/√(σ²+1) and σ_t = σ·α_t in float32 (diffusers `_sigma_to_alpha_sigma_t`, VP schedules). */
function alphaSigma(sigma: number): [alpha: number, sigmaT: number] {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  return [alpha, f32(sigma * alpha)];
}

/** λ = log α_t − log σ_t in float32 (+∞ for σ = 0). */
function lambdaOf(alpha: number, sigmaT: number): number {
  return f32(f32(Math.log(alpha)) - f32(Math.log(sigmaT)));
}

/** `exp` of a float32 value, rounded to float32 (torch's `exp` on a 0-dim float32 tensor). */
function exp32(x: number): number {
  return f32(Math.exp(x));
}

/**
 * `Σ_k c_k · t_k` element-wise with diffusers' left-to-right float32 accumulation: every product and every partial
 * sum rounded to float32. `signs[k]` is +1 or −1 (python's `a − b` is `a + (−b)` exactly).
 */
function combine(terms: readonly (readonly [number, Float32Array])[], size: number): Float32Array {
  const out = new Float32Array(size);
  const [c0, t0] = terms[0]!;
  for (let i = 0; i < size; i++) out[i] = c0 * t0[i]!;
  for (let k = 1; k < terms.length; k++) {
    const [c, t] = terms[k]!;
    for (let i = 0; i < size; i++) out[i] = out[i]! + f32(c * t[i]!);
  }
  return out;
}

/**
 * Multistep DPM-Solver with diffusers' exact behaviour (float32 arithmetic in torch's order; `exp`/`log` are correctly
 * rounded here while torch uses its own float32 kernels, hence ~1e-6 relative differences).
 *
 * Options: `solver_order` 1–3; `algorithm_type` `dpmsolver++` (default), `dpmsolver`, `sde-dpmsolver++`,
 * `sde-dpmsolver` (`deis` is read as `dpmsolver++`, as diffusers does); `solver_type` `midpoint`/`heun` (`logrho`,
 * `bh1`, `bh2` read as `midpoint`); `prediction_type` `epsilon`/`sample`/`v_prediction`; dynamic `thresholding`;
 * `lower_order_final`, `euler_at_final`, `final_sigmas_type` (`zero` always ends with a first-order step to x̂₀);
 * Karras, exponential, beta σ and `use_lu_lambdas` (uniform log-SNR) re-spacings; `lambda_min_clipped`;
 * `variance_type` (`learned*`: the model output carries extra variance channels, dropped before use);
 * `timestep_spacing`, `steps_offset`, `rescale_betas_zero_snr`.
 *
 * Rejected with a clear error: what diffusers rejects (`dpmsolver`/`sde-dpmsolver` with `final_sigmas_type: "zero"`,
 * two σ re-spacings at once), `sde-dpmsolver` with `solver_order: 3` (diffusers has no third-order SDE-DPM-Solver and
 * fails with `UnboundLocalError` at the first third-order step), and the flow-matching options (`use_flow_sigmas`,
 * `prediction_type: "flow_prediction"`, `use_dynamic_shifting`), which need models this project does not serve.
 *
 * The SDE variants draw one `options.generator.randn(shape)` per step or take `options.varianceNoise`; without either
 * they throw (diffusers would fall back to torch's global generator, which this project does not have). As in
 * diffusers, an unknown timestep maps to the last step on first use; `scaleModelInput` is the identity.
 *
 * Inherited σ-scheduler members (diffusers' step-index bookkeeping, shared with the other σ schedulers): `config`,
 * `order` (1), `timesteps`, `sigmas`, `alphasCumprod`, `stepIndex`, `beginIndex` and `setBeginIndex`. Here
 * `timesteps` are integers (they may repeat for very many steps, as in diffusers) and `sigmas` is empty until
 * `setTimesteps`.
 *
 * @example
 * ```ts
 * import { DPMSolverMultistepScheduler } from "./dpm_solver_multistep.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const scheduler = new DPMSolverMultistepScheduler({ solver_order: 2, use_karras_sigmas: true });
 * scheduler.setTimesteps(20);
 * let latents = new Tensor(new Float32Array(16).fill(0.5), [1, 1, 4, 4]);
 * for (const t of scheduler.timesteps) {
 *   const noisePred = scheduler.scaleModelInput(latents, t); // a UNet call in a real pipeline
 *   latents = scheduler.step(noisePred, t, latents).prevSample;
 * }
 * ```
 */
export class DPMSolverMultistepScheduler extends SigmaScheduler<Int32Array> implements Scheduler {
  /** The diffusers class this reproduces. */
  readonly className = CLASS_NAME;
  /** DPM-Solver works on unscaled samples: the initial noise is N(0, 1). */
  readonly initNoiseSigma = 1.0;

  readonly #values: ResolvedValues<typeof FIELDS>;
  readonly #algorithm: Algorithm;
  readonly #heun: boolean;
  /** λ_t = log √ᾱ − log √(1−ᾱ) per training timestep (float32), for `lambda_min_clipped`. */
  readonly #lambdaT: Float32Array;
  #modelOutputs: (Float32Array | null)[];
  #lowerOrderNums = 0;

  /**
   * Builds the scheduler from a diffusers config (`from_config` semantics: unknown keys are kept but ignored). Its
   * `config` has the `deis`/UniPC aliases remapped.
   *
   * @throws {TypeError} for a wrongly typed field; {@link RangeError} for an out-of-range value, an unknown choice or
   *   an unsupported combination (see the class documentation).
   */
  constructor(config: Record<string, unknown> = {}) {
    const resolved = RESOLVER.resolve(config);
    const v = resolved.values;
    const fail = (message: string): never => {
      throw new RangeError(`${CLASS_NAME} config: ${message}`);
    };
    checkOneSigmaRespacing(v, CLASS_NAME);
    if (v.use_flow_sigmas) fail("use_flow_sigmas = true (flow matching) is not supported");
    if (v.prediction_type === "flow_prediction") {
      fail('prediction_type "flow_prediction" (flow matching) is not supported');
    }
    if (v.use_dynamic_shifting) fail("use_dynamic_shifting = true (flow matching, needs mu) is not supported");
    // diffusers checks the algorithm *as given*: "deis" + final_sigmas_type "zero" is rejected too.
    if (
      !(v.algorithm_type === "dpmsolver++" || v.algorithm_type === "sde-dpmsolver++") && v.final_sigmas_type === "zero"
    ) {
      fail(
        `final_sigmas_type "zero" is not supported for algorithm_type "${v.algorithm_type}": ` +
          'use final_sigmas_type "sigma_min"',
      );
    }
    const algorithm: Algorithm = v.algorithm_type === "deis" ? "dpmsolver++" : v.algorithm_type;
    if (algorithm === "sde-dpmsolver" && v.solver_order === 3) {
      fail('algorithm_type "sde-dpmsolver" has no third-order solver: got solver_order 3 (use 1 or 2)');
    }
    const solverType = v.solver_type === "heun" ? "heun" : "midpoint";
    if (v.use_karras_sigmas || v.use_exponential_sigmas || v.use_beta_sigmas) {
      // Validate now what setTimesteps will read (see hiddenSigmaBound).
      hiddenSigmaBound(resolved.config, "sigma_min", CLASS_NAME);
      hiddenSigmaBound(resolved.config, "sigma_max", CLASS_NAME);
    }
    const remapped = algorithm !== v.algorithm_type || solverType !== v.solver_type
      ? Object.freeze({ ...resolved.config, algorithm_type: algorithm, solver_type: solverType })
      : resolved.config;
    super(CLASS_NAME, remapped, v, { notFound: "last", timesteps: new Int32Array(0), sigmas: "empty" });
    this.#values = v;
    this.#algorithm = algorithm;
    this.#heun = solverType === "heun";
    this.#lambdaT = this.alphasCumprod.map((a) => lambdaOf(f32(Math.sqrt(a)), f32(Math.sqrt(f32(1 - a)))));
    this.#modelOutputs = new Array(v.solver_order).fill(null);
  }

  /** λ_t = log α_t − log σ_t of the training schedule (float32). */
  get lambdas(): Float32Array {
    return this.#lambdaT;
  }

  /**
   * Sets the integer timesteps (`timestep_spacing` over `[0, last)`, `last` = T minus the steps whose λ is below
   * `lambda_min_clipped`) or those of a Karras / Lu / exponential / beta σ re-spacing, their σ plus the final σ, and
   * resets the solver history.
   *
   * @throws {RangeError} when `numInferenceSteps` is not an integer in [1, num_train_timesteps].
   */
  setTimesteps(numInferenceSteps: number): void {
    const v = this.#values;
    const T = v.num_train_timesteps;
    const n = checkNumInferenceSteps(numInferenceSteps, T);
    // torch.searchsorted(flip(λ), lambda_min_clipped): λ decreases with t; the bound is compared in float32.
    const bound = f32(v.lambda_min_clipped);
    let clippedIdx = 0;
    while (clippedIdx < T && this.#lambdaT[T - 1 - clippedIdx]! < bound) clippedIdx++;
    const lastTimestep = T - clippedIdx;
    let timesteps: number[];
    switch (v.timestep_spacing) {
      case "linspace":
        timesteps = Array.from(numpyLinspace(0, lastTimestep - 1, n + 1), roundHalfEven).reverse().slice(0, n);
        break;
      case "leading": {
        const ratio = Math.floor(lastTimestep / (n + 1));
        timesteps = Array.from({ length: n }, (_, k) => (n - k) * ratio + v.steps_offset);
        break;
      }
      case "trailing":
        timesteps = Array.from(numpyArange(lastTimestep, 0, -T / n), (x) => roundHalfEven(x) - 1);
        break;
    }
    const train = this.trainSigmas;
    let sigmas: ArrayLike<number>;
    const respaced = v.use_karras_sigmas || v.use_lu_lambdas || v.use_exponential_sigmas || v.use_beta_sigmas;
    if (respaced) {
      if (T < 2) throw new RangeError(`${CLASS_NAME}: σ re-spacing needs num_train_timesteps >= 2: got ${T}`);
      let round = v.beta_schedule !== "squaredcos_cap_v2";
      if (v.use_karras_sigmas) {
        const lo = hiddenSigmaBound(this.config, "sigma_min", CLASS_NAME) ?? train[0]!;
        const hi = hiddenSigmaBound(this.config, "sigma_max", CLASS_NAME) ?? train[T - 1]!;
        sigmas = karrasSigmas(lo, hi, n);
      } else if (v.use_lu_lambdas) {
        // diffusers ramps log σ linearly from log σ_max to log σ_min (uniform log-SNR), then exponentiates.
        sigmas = luLambdas(this.logSigmas[0]!, this.logSigmas[T - 1]!, n).map(Math.exp);
      } else {
        const lo = hiddenSigmaBound(this.config, "sigma_min", CLASS_NAME) ?? train[0]!;
        const hi = hiddenSigmaBound(this.config, "sigma_max", CLASS_NAME) ?? train[T - 1]!;
        sigmas = v.use_exponential_sigmas ? exponentialSigmas(lo, hi, n) : betaSigmas(lo, hi, n);
        round = false; // diffusers rounds only the Karras and Lu timesteps
      }
      timesteps = Array.from(sigmas, (s) => {
        const t = sigmaToT(s, this.logSigmas);
        return Math.trunc(round ? roundHalfEven(t) : t); // .astype(int64) truncates
      });
    } else {
      sigmas = interpOnIndexGrid(timesteps, train);
    }
    this.startSchedule(
      Int32Array.from(timesteps),
      appendFinalSigma(sigmas, v.final_sigmas_type === "sigma_min" ? train[0]! : 0),
    );
    this.#modelOutputs = new Array(v.solver_order).fill(null);
    this.#lowerOrderNums = 0;
  }

  /** Identity: DPM-Solver needs no input scaling (diffusers returns the sample itself). */
  scaleModelInput(sample: Tensor, _timestep: number): Tensor {
    return sample;
  }

  /**
   * diffusers' `convert_model_output`: x̂₀ for the `++` algorithms, ε̂ for the others, by `prediction_type`, with
   * optional dynamic thresholding and the variance channels of `learned*` models dropped.
   */
  #convertModelOutput(modelOutput: Tensor, sample: Tensor, sigma: number): Tensor {
    const v = this.#values;
    const plusPlus = this.#algorithm === "dpmsolver++" || this.#algorithm === "sde-dpmsolver++";
    let m = modelOutput;
    if (v.prediction_type === "epsilon" && v.variance_type !== null) m = this.#meanChannels(modelOutput, sample);
    assertSameShape(m, sample, ["modelOutput", "sample"]);
    const [alpha, sigmaT] = alphaSigma(sigma);
    const x = sample.data, md = m.data, size = x.length;
    if (plusPlus) {
      let x0: Tensor;
      if (v.prediction_type === "epsilon") {
        const d = new Float32Array(size);
        for (let k = 0; k < size; k++) d[k] = f32(x[k]! - f32(sigmaT * md[k]!)) / alpha;
        x0 = new Tensor(d, sample.shape);
      } else if (v.prediction_type === "sample") {
        x0 = m;
      } else {
        const d = new Float32Array(size);
        for (let k = 0; k < size; k++) d[k] = f32(alpha * x[k]!) - f32(sigmaT * md[k]!);
        x0 = new Tensor(d, sample.shape);
      }
      if (v.thresholding) x0 = dynamicThreshold(x0, v.dynamic_thresholding_ratio, v.sample_max_value);
      return x0;
    }
    let eps: Tensor;
    if (v.prediction_type === "epsilon") {
      eps = m;
    } else if (v.prediction_type === "sample") {
      const d = new Float32Array(size);
      for (let k = 0; k < size; k++) d[k] = f32(x[k]! - f32(alpha * md[k]!)) / sigmaT;
      eps = new Tensor(d, sample.shape);
    } else {
      const d = new Float32Array(size);
      for (let k = 0; k < size; k++) d[k] = f32(alpha * md[k]!) + f32(sigmaT * x[k]!);
      eps = new Tensor(d, sample.shape);
    }
    if (v.thresholding) {
      const x0 = new Float32Array(size);
      for (let k = 0; k < size; k++) x0[k] = f32(x[k]! - f32(sigmaT * eps.data[k]!)) / alpha;
      const th = dynamicThreshold(new Tensor(x0, sample.shape), v.dynamic_thresholding_ratio, v.sample_max_value).data;
      const d = new Float32Array(size);
      for (let k = 0; k < size; k++) d[k] = f32(x[k]! - f32(alpha * th[k]!)) / sigmaT;
      eps = new Tensor(d, sample.shape);
    }
    return eps;
  }

  /**
   * The first `C` channels (dim 1) of a `learned*` model output, `C` being the sample's channel count (diffusers
   * hard-codes 3, the channel count of the models it was written for).
   */
  #meanChannels(modelOutput: Tensor, sample: Tensor): Tensor {
    const ms = modelOutput.shape, ss = sample.shape;
    const ok = ms.length === ss.length && ms.length >= 2 && ms[0] === ss[0] && ms[1]! >= ss[1]! &&
      ms.every((d, k) => k < 2 || d === ss[k]);
    if (!ok) {
      throw new TypeError(
        `modelOutput shape [${ms.join(", ")}] must be the sample shape [${ss.join(", ")}] with at least as many ` +
          `channels (variance_type "${this.#values.variance_type}")`,
      );
    }
    if (ms[1] === ss[1]) return modelOutput;
    const inner = ss.slice(2).reduce((a, b) => a * b, 1);
    const out = new Float32Array(sample.size);
    for (let b = 0; b < ss[0]!; b++) {
      const src = modelOutput.data.subarray(b * ms[1]! * inner, (b * ms[1]! + ss[1]!) * inner);
      out.set(src, b * ss[1]! * inner);
    }
    return new Tensor(out, ss);
  }

  /**
   * One multistep DPM-Solver step: converts the model output (x̂₀ or ε̂), stores it in the history and applies the
   * first-, second- or third-order update (lower orders for the first steps, and at the end per `lower_order_final`,
   * `euler_at_final` and `final_sigmas_type`). SDE variants add `options.generator` noise (or
   * `options.varianceNoise`). For the `++` algorithms `predOriginalSample` is the (thresholded) x̂₀.
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} for mismatched shapes, a non-finite timestep, or an SDE
   *   variant without (or with both) `generator`/`varianceNoise`; {@link RangeError} for a step past the end.
   */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, options?: StepOptions): StepOutput {
    // diffusers' DPM-Solver `index_for_timestep`: a timestep not in the schedule maps to the last step.
    const i = this.locateStep(timestep, "step");
    const n = this.timesteps.length;
    const v = this.#values;
    // "Improve numerical stability for small number of steps" (diffusers): lower orders at the end.
    const lowerOrderFinal = i === n - 1 &&
      (v.euler_at_final || (v.lower_order_final && n < 15) || v.final_sigmas_type === "zero");
    const lowerOrderSecond = i === n - 2 && v.lower_order_final && n < 15;

    const converted = this.#convertModelOutput(modelOutput, sample, this.sigmas[i]!);
    // Drawn before the history changes, so a missing generator leaves the solver state intact (diffusers draws it a
    // few lines later; nothing else consumes random numbers in between).
    const sde = this.#algorithm === "sde-dpmsolver++" || this.#algorithm === "sde-dpmsolver";
    const noise = sde
      ? stepNoise(options, sample.shape, CLASS_NAME, `algorithm_type "${this.#algorithm}" is stochastic`).data
      : null;
    // Keep a private copy when the conversion returned the caller's tensor (ε-prediction): the history must not
    // change if the caller reuses its output buffer.
    const current = converted === modelOutput ? converted.data.slice() : converted.data;
    for (let k = 0; k < v.solver_order - 1; k++) this.#modelOutputs[k] = this.#modelOutputs[k + 1]!;
    this.#modelOutputs[v.solver_order - 1] = current;

    let prev: Float32Array;
    if (v.solver_order === 1 || this.#lowerOrderNums < 1 || lowerOrderFinal) {
      prev = this.#firstOrderUpdate(i, current, sample.data, noise);
    } else if (v.solver_order === 2 || this.#lowerOrderNums < 2 || lowerOrderSecond) {
      prev = this.#secondOrderUpdate(i, sample.data, noise);
    } else {
      prev = this.#thirdOrderUpdate(i, sample.data, noise);
    }
    if (this.#lowerOrderNums < v.solver_order) this.#lowerOrderNums += 1;
    this.advanceStep();
    const plusPlus = this.#algorithm === "dpmsolver++" || this.#algorithm === "sde-dpmsolver++";
    const output: StepOutput = { prevSample: new Tensor(prev, sample.shape) };
    if (plusPlus) output.predOriginalSample = new Tensor(current.slice(), sample.shape);
    return output;
  }

  /** The model output `back` steps ago (0 = current). */
  #history(back: number): Float32Array {
    const m = this.#modelOutputs[this.#values.solver_order - 1 - back];
    if (m === null || m === undefined) throw new Error(`${CLASS_NAME}: missing model output history (${back} back)`);
    return m;
  }

  /** DPM-Solver(++) first order = DDIM (Lu et al. 2022, DPM-Solver++ eq. 5 / DPM-Solver eq. 3.7; SDE: eq. 12–13). */
  #firstOrderUpdate(i: number, m: Float32Array, x: Float32Array, z: Float32Array | null): Float32Array {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]!);
    const [alphaS, sigmaS] = alphaSigma(this.sigmas[i]!);
    const h = f32(lambdaOf(alphaT, sigmaT) - lambdaOf(alphaS, sigmaS));
    const size = x.length;
    switch (this.#algorithm) {
      case "dpmsolver++":
        return combine([[f32(sigmaT / sigmaS), x], [-f32(alphaT * f32(exp32(-h) - 1)), m]], size);
      case "dpmsolver":
        return combine([[f32(alphaT / alphaS), x], [-f32(sigmaT * f32(exp32(h) - 1)), m]], size);
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        return combine([
          [f32(f32(sigmaT / sigmaS) * exp32(-h)), x],
          [f32(alphaT * f32(1 - e2)), m],
          [f32(sigmaT * f32(Math.sqrt(f32(1 - e2)))), z!],
        ], size);
      }
      case "sde-dpmsolver":
        return combine([
          [f32(alphaT / alphaS), x],
          [-f32(2 * f32(sigmaT * f32(exp32(h) - 1))), m],
          [f32(sigmaT * f32(Math.sqrt(f32(exp32(f32(2 * h)) - 1)))), z!],
        ], size);
    }
  }

  /** Multistep second order (DPM-Solver++ Algorithm 2 / DPM-Solver "midpoint" and "heun" forms, diffusers' code). */
  #secondOrderUpdate(i: number, x: Float32Array, z: Float32Array | null): Float32Array {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]!);
    const [alphaS0, sigmaS0] = alphaSigma(this.sigmas[i]!);
    const [alphaS1, sigmaS1] = alphaSigma(this.sigmas[i - 1]!);
    const lambdaT = lambdaOf(alphaT, sigmaT), lambdaS0 = lambdaOf(alphaS0, sigmaS0);
    const lambdaS1 = lambdaOf(alphaS1, sigmaS1);
    const m0 = this.#history(0), m1 = this.#history(1);
    const h = f32(lambdaT - lambdaS0), h0 = f32(lambdaS0 - lambdaS1);
    const r0 = f32(h0 / h);
    const size = x.length;
    const c = f32(1 / r0);
    const d1 = new Float32Array(size);
    for (let k = 0; k < size; k++) d1[k] = c * f32(m0[k]! - m1[k]!);
    const heun = this.#heun;
    switch (this.#algorithm) {
      case "dpmsolver++": {
        const a = f32(alphaT * f32(exp32(-h) - 1));
        const b = heun ? f32(alphaT * f32(f32(f32(exp32(-h) - 1) / h) + 1)) : -f32(0.5 * a);
        return combine([[f32(sigmaT / sigmaS0), x], [-a, m0], [b, d1]], size);
      }
      case "dpmsolver": {
        const a = f32(sigmaT * f32(exp32(h) - 1));
        const b = heun ? f32(sigmaT * f32(f32(f32(exp32(h) - 1) / h) - 1)) : f32(0.5 * a);
        return combine([[f32(alphaT / alphaS0), x], [-a, m0], [-b, d1]], size);
      }
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        const a = f32(alphaT * f32(1 - e2));
        const b = heun ? f32(alphaT * f32(f32(f32(1 - e2) / f32(-2 * h)) + 1)) : f32(0.5 * a);
        return combine([
          [f32(f32(sigmaT / sigmaS0) * exp32(-h)), x],
          [a, m0],
          [b, d1],
          [f32(sigmaT * f32(Math.sqrt(f32(1 - e2)))), z!],
        ], size);
      }
      case "sde-dpmsolver": {
        const em1 = f32(exp32(h) - 1);
        const a = f32(2 * f32(sigmaT * em1));
        const b = heun ? f32(2 * f32(sigmaT * f32(f32(em1 / h) - 1))) : f32(sigmaT * em1);
        return combine([
          [f32(alphaT / alphaS0), x],
          [-a, m0],
          [-b, d1],
          [f32(sigmaT * f32(Math.sqrt(f32(exp32(f32(2 * h)) - 1)))), z!],
        ], size);
      }
    }
  }

  /** Multistep third order (DPM-Solver++ / DPM-Solver, diffusers' `multistep_dpm_solver_third_order_update`). */
  #thirdOrderUpdate(i: number, x: Float32Array, z: Float32Array | null): Float32Array {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]!);
    const [alphaS0, sigmaS0] = alphaSigma(this.sigmas[i]!);
    const [alphaS1, sigmaS1] = alphaSigma(this.sigmas[i - 1]!);
    const [alphaS2, sigmaS2] = alphaSigma(this.sigmas[i - 2]!);
    const lambdaT = lambdaOf(alphaT, sigmaT), lambdaS0 = lambdaOf(alphaS0, sigmaS0);
    const lambdaS1 = lambdaOf(alphaS1, sigmaS1), lambdaS2 = lambdaOf(alphaS2, sigmaS2);
    const m0 = this.#history(0), m1 = this.#history(1), m2 = this.#history(2);
    const h = f32(lambdaT - lambdaS0), h0 = f32(lambdaS0 - lambdaS1), h1 = f32(lambdaS1 - lambdaS2);
    const r0 = f32(h0 / h), r1 = f32(h1 / h);
    const c0 = f32(1 / r0), c1 = f32(1 / r1);
    const r01 = f32(r0 + r1);
    const w = f32(r0 / r01), c2 = f32(1 / r01);
    const size = x.length;
    const d1 = new Float32Array(size), d2 = new Float32Array(size);
    for (let k = 0; k < size; k++) {
      const d10 = f32(c0 * f32(m0[k]! - m1[k]!));
      const d11 = f32(c1 * f32(m1[k]! - m2[k]!));
      const diff = f32(d10 - d11);
      d1[k] = d10 + f32(w * diff);
      d2[k] = c2 * diff;
    }
    const hh = f32(h * h);
    switch (this.#algorithm) {
      case "dpmsolver++": {
        const em1 = f32(exp32(-h) - 1);
        return combine([
          [f32(sigmaT / sigmaS0), x],
          [-f32(alphaT * em1), m0],
          [f32(alphaT * f32(f32(em1 / h) + 1)), d1],
          [-f32(alphaT * f32(f32(f32(em1 + h) / hh) - 0.5)), d2],
        ], size);
      }
      case "dpmsolver": {
        const em1 = f32(exp32(h) - 1);
        return combine([
          [f32(alphaT / alphaS0), x],
          [-f32(sigmaT * em1), m0],
          [-f32(sigmaT * f32(f32(em1 / h) - 1)), d1],
          [-f32(sigmaT * f32(f32(f32(em1 - h) / hh) - 0.5)), d2],
        ], size);
      }
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        const om = f32(1 - e2), h2 = f32(2 * h);
        return combine([
          [f32(f32(sigmaT / sigmaS0) * exp32(-h)), x],
          [f32(alphaT * om), m0],
          [f32(alphaT * f32(f32(om / f32(-2 * h)) + 1)), d1],
          [f32(alphaT * f32(f32(f32(om - h2) / f32(h2 * h2)) - 0.5)), d2],
          [f32(sigmaT * f32(Math.sqrt(om))), z!],
        ], size);
      }
      case "sde-dpmsolver":
        // Rejected in the constructor (diffusers has no third-order SDE-DPM-Solver).
        throw new Error(`${CLASS_NAME}: no third-order update for algorithm_type "sde-dpmsolver"`);
    }
  }

  /**
   * Forward-noises `originalSamples` to the σ of `timesteps` (diffusers `add_noise`): `α_t·x₀ + σ_t·ε` with
   * α_t = 1/√(σ²+1), σ_t = σ·α_t; one timestep for the batch or one per batch item (unknown timesteps map to the last
   * step, as in diffusers).
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} when shapes differ or the count does not fit the batch.
   */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    const sig = this.noiseSigmas(timesteps, originalSamples.shape[0] ?? 1);
    const coef = sig.map(alphaSigma);
    return mapNoised(originalSamples, noise, sig.length, (x, e, g) => f32(coef[g]![0] * x) + f32(coef[g]![1] * e));
  }
}

/**
 * Shared noise-schedule math for all six schedulers, written once instead of diffusers' per-file copies.
 *
 * Everything here reproduces torch/numpy as diffusers calls them (diffusers 0.40, torch 1.13 CPU), bit for bit where
 * the project's reference data can check it:
 * - betas: `torch.linspace(..., dtype=float32)` ({@linkcode torchLinspaceF32}), `scaled_linear`, `squaredcos_cap_v2`
 *   ({@linkcode betasForAlphaBar}) and `trained_betas` ({@linkcode makeBetas});
 * - `alphas_cumprod`: torch's CPU `cumprod` keeps a float64 running product and rounds each output to float32
 *   ({@linkcode cumprodF32});
 * - `rescale_betas_zero_snr` ({@linkcode rescaleZeroTerminalSnr}, Lin et al. 2023, Algorithm 1);
 * - timestep spacing with numpy semantics ({@linkcode numpyLinspace}, {@linkcode numpyArange},
 *   {@linkcode roundHalfEven}, {@linkcode spacedTimesteps});
 * - prediction-type conversions, dynamic thresholding, `clip_sample` and `add_noise` in torch's float32 op order.
 *
 * Private to `core/schedulers` (leading underscore): scheduler files import it, the package does not export it.
 *
 * @module
 */
import { assertSameShape, f32, fma32, quantile, Tensor } from "../tensor/mod.ts";

// ---------------------------------------------------------------------------------------------------------------------
// Betas and cumulative alphas
// ---------------------------------------------------------------------------------------------------------------------

/** The beta schedules diffusers' six schedulers accept (`beta_schedule`). */
export const BETA_SCHEDULES = ["linear", "scaled_linear", "squaredcos_cap_v2"] as const;
/** One of {@linkcode BETA_SCHEDULES}. */
export type BetaSchedule = typeof BETA_SCHEDULES[number];

/**
 * `torch.linspace(start, end, steps, dtype=torch.float32)` bit for bit as torch 1.13's CPU kernel computes it
 * (the build that produced the reference data; other torch builds may differ by 1 ulp in some elements):
 * `step = f32(f32(end − start) / (steps − 1))`; the output is written in chunks of 16 as two 8-wide vectors, each
 * vector from a base `fma32(step, i, start)` (first half) or `fma32(−step, steps−1−i, end)` (second half) plus
 * `f32(k·step)`; the tail (`steps mod 16`) is scalar with the same fma base per element.
 * `start` and `end` are rounded to float32 first, as torch converts the python floats.
 *
 * @throws {RangeError} when `steps` is not a non-negative integer.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  if (!Number.isInteger(steps) || steps < 0) {
    throw new RangeError(`linspace steps must be a non-negative integer: got ${steps}`);
  }
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const s = f32(start), e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const base = (i: number) => i < halfway ? fma32(step, i, s) : fma32(-step, steps - 1 - i, e);
  const VEC = 8;
  let i = 0;
  for (; i + 2 * VEC <= steps; i += 2 * VEC) {
    for (let v0 = i; v0 < i + 2 * VEC; v0 += VEC) {
      const b = base(v0);
      for (let k = 0; k < VEC; k++) out[v0 + k] = b + f32(k * step);
    }
  }
  for (; i < steps; i++) out[i] = base(i);
  return out;
}

/** The `alpha_bar` transforms of diffusers' `betas_for_alpha_bar`. */
export type AlphaTransformType = "cosine" | "exp" | "laplace";

/**
 * diffusers' `betas_for_alpha_bar`: `β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), maxBeta)` in float64, then float32.
 * `"cosine"` is the `squaredcos_cap_v2` schedule, ᾱ(t) = cos²((t + 0.008)/1.008 · π/2) (Nichol & Dhariwal 2021,
 * eq. 17).
 *
 * @throws {RangeError} when `numDiffusionTimesteps` is not a positive integer.
 */
export function betasForAlphaBar(
  numDiffusionTimesteps: number,
  { maxBeta = 0.999, alphaTransformType = "cosine" }: { maxBeta?: number; alphaTransformType?: AlphaTransformType } =
    {},
): Float32Array {
  if (!Number.isInteger(numDiffusionTimesteps) || numDiffusionTimesteps < 1) {
    throw new RangeError(`num_train_timesteps must be a positive integer: got ${numDiffusionTimesteps}`);
  }
  let alphaBar: (t: number) => number;
  if (alphaTransformType === "cosine") {
    alphaBar = (t) => {
      const c = Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2);
      return c * c;
    };
  } else if (alphaTransformType === "exp") {
    alphaBar = (t) => Math.exp(t * -12.0);
  } else if (alphaTransformType === "laplace") {
    alphaBar = (t) => {
      const d = 0.5 - t;
      const sign = d < 0 || Object.is(d, -0) ? -1 : 1; // math.copysign(1, d)
      const lmb = -0.5 * sign * Math.log(1 - 2 * Math.abs(d) + 1e-6);
      const snr = Math.exp(lmb);
      return Math.sqrt(snr / (1 + snr));
    };
  } else {
    throw new RangeError(
      `alphaTransformType must be one of "cosine", "exp", "laplace": got ${JSON.stringify(alphaTransformType)}`,
    );
  }
  const betas = new Float32Array(numDiffusionTimesteps);
  for (let i = 0; i < numDiffusionTimesteps; i++) {
    const t1 = i / numDiffusionTimesteps;
    const t2 = (i + 1) / numDiffusionTimesteps;
    betas[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return betas;
}

/** What {@linkcode makeBetas} needs from a scheduler config (diffusers' key names). */
export interface BetaConfig {
  /** Number of training timesteps T. */
  num_train_timesteps: number;
  /** First beta of `linear`/`scaled_linear`. */
  beta_start: number;
  /** Last beta of `linear`/`scaled_linear`. */
  beta_end: number;
  /** The schedule name; ignored when `trained_betas` is set. */
  beta_schedule: string;
  /** Explicit betas (length T), or `null`. */
  trained_betas: readonly number[] | null;
}

/**
 * The betas every diffusers scheduler builds in `__init__`, as float32:
 * `trained_betas` (rounded to float32) when given, else by `beta_schedule`: `linear` =
 * `torch.linspace(beta_start, beta_end, T)`, `scaled_linear` = `torch.linspace(√beta_start, √beta_end, T) ** 2`
 * (square roots in float64, squaring in float32), `squaredcos_cap_v2` = {@linkcode betasForAlphaBar}.
 *
 * @throws {RangeError} for an unknown `beta_schedule` or `trained_betas` whose length is not T.
 */
export function makeBetas(config: BetaConfig, className = "scheduler"): Float32Array {
  const T = config.num_train_timesteps;
  if (config.trained_betas !== null) {
    if (config.trained_betas.length !== T) {
      throw new RangeError(
        `${className} config: trained_betas must have num_train_timesteps (${T}) entries: got ${config.trained_betas.length}`,
      );
    }
    return Float32Array.from(config.trained_betas);
  }
  switch (config.beta_schedule) {
    case "linear":
      return torchLinspaceF32(config.beta_start, config.beta_end, T);
    case "scaled_linear": {
      const b = torchLinspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), T);
      for (let i = 0; i < b.length; i++) b[i] = b[i]! * b[i]!;
      return b;
    }
    case "squaredcos_cap_v2":
      return betasForAlphaBar(T);
    default:
      throw new RangeError(
        `${className} config: beta_schedule must be one of ${
          BETA_SCHEDULES.map((s) => JSON.stringify(s)).join(", ")
        }: got ${JSON.stringify(config.beta_schedule)}`,
      );
  }
}

/** `1 − β` element-wise in float32 (`alphas = 1.0 - betas`). */
export function alphasFromBetas(betas: Float32Array): Float32Array {
  return betas.map((b) => 1 - b);
}

/**
 * `torch.cumprod(x, dim=0)` for float32 on CPU: the running product is a float64 accumulator and each output is
 * rounded to float32 (a float32 accumulator would differ in ~90% of entries of a 1000-step schedule).
 */
export function cumprodF32(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) {
    acc *= x[i]!;
    out[i] = acc;
  }
  return out;
}

/**
 * diffusers' `rescale_zero_terminal_snr` (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
 * Flawed", Algorithm 1) in torch's float32 order: shift and scale √ᾱ so that √ᾱ_T = 0 while √ᾱ_0 is kept, then undo
 * the cumulative product. The last beta becomes exactly 1.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const sqrtAbar = cumprodF32(alphasFromBetas(betas)).map((a) => Math.sqrt(a));
  const s0 = sqrtAbar[0]!, sT = sqrtAbar[n - 1]!;
  const scale = f32(s0 / f32(s0 - sT));
  for (let i = 0; i < n; i++) sqrtAbar[i] = f32(sqrtAbar[i]! - sT) * scale;
  const abar = sqrtAbar.map((x) => x * x);
  const alphas = new Float32Array(n);
  alphas[0] = abar[0]!;
  for (let i = 1; i < n; i++) alphas[i] = abar[i]! / abar[i - 1]!;
  return alphas.map((a) => 1 - a);
}

/** The float32 tables of a schedule. */
export interface ScheduleTables {
  /** β_t, t = 0…T−1. */
  betas: Float32Array;
  /** α_t = 1 − β_t. */
  alphas: Float32Array;
  /** ᾱ_t = ∏_{s≤t} α_s (float64 running product, float32 outputs). */
  alphasCumprod: Float32Array;
}

/**
 * Betas ({@linkcode makeBetas}), optionally rescaled to zero terminal SNR, then alphas and `alphas_cumprod`: the
 * tables diffusers' `__init__` builds.
 */
export function makeScheduleTables(
  config: BetaConfig & { rescale_betas_zero_snr?: boolean },
  className = "scheduler",
): ScheduleTables {
  let betas = makeBetas(config, className);
  if (config.rescale_betas_zero_snr === true) betas = rescaleZeroTerminalSnr(betas);
  const alphas = alphasFromBetas(betas);
  return { betas, alphas, alphasCumprod: cumprodF32(alphas) };
}

// ---------------------------------------------------------------------------------------------------------------------
// Timesteps (numpy semantics)
// ---------------------------------------------------------------------------------------------------------------------

/** The `timestep_spacing` values (Lin et al. 2023, Table 2). */
export const TIMESTEP_SPACINGS = ["leading", "trailing", "linspace"] as const;
/** One of {@linkcode TIMESTEP_SPACINGS}. */
export type TimestepSpacing = typeof TIMESTEP_SPACINGS[number];

/** numpy's `round` (`np.round`, `ndarray.round`): round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // rounds .5 up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `np.linspace(start, stop, num)` in float64: `i·((stop − start)/(num − 1)) + start`, last element set to `stop`;
 * `num = 1` gives `[start]`.
 *
 * @throws {RangeError} when `num` is not a non-negative integer.
 */
export function numpyLinspace(start: number, stop: number, num: number): Float64Array {
  if (!Number.isInteger(num) || num < 0) {
    throw new RangeError(`linspace num must be a non-negative integer: got ${num}`);
  }
  const out = new Float64Array(num);
  const div = num - 1;
  if (div > 0) {
    const delta = stop - start;
    const step = delta / div;
    for (let i = 0; i < num; i++) out[i] = step === 0 ? (i / div) * delta + start : i * step + start;
    out[num - 1] = stop;
  } else if (num === 1) {
    out[0] = start;
  }
  return out;
}

/**
 * `np.arange(start, stop, step)` for floats: length `ceil((stop − start)/step)`, elements `start + i·δ` with
 * `δ = (start + step) − start` (numpy's fill re-derives the step from the first two elements).
 *
 * @throws {RangeError} when `step` is 0 or not finite.
 */
export function numpyArange(start: number, stop: number, step: number): Float64Array {
  if (step === 0 || !Number.isFinite(step)) {
    throw new RangeError(`arange step must be finite and non-zero: got ${step}`);
  }
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(length);
  if (length > 0) out[0] = start;
  if (length > 1) out[1] = start + step;
  const delta = start + step - start;
  for (let i = 2; i < length; i++) out[i] = start + i * delta;
  return out;
}

/**
 * The integer inference timesteps of DDIM and PNDM (`set_timesteps`), in **descending** order (PNDM's `_timesteps`
 * is this reversed):
 * - `leading`: `arange(n)·(T // n)` reversed, plus `stepsOffset`;
 * - `trailing`: `round(arange(T, 0, −T/n)) − 1`;
 * - `linspace`: `round(linspace(0, T − 1, n))` reversed.
 *
 * `stepsOffset` only applies to `leading`, as in diffusers. Call {@linkcode checkNumInferenceSteps} first.
 */
export function spacedTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): number[] {
  const T = numTrainTimesteps, n = numInferenceSteps;
  switch (spacing) {
    case "leading": {
      const ratio = Math.floor(T / n);
      return Array.from({ length: n }, (_, k) => (n - 1 - k) * ratio + stepsOffset);
    }
    case "trailing":
      return Array.from(numpyArange(T, 0, -T / n), (x) => roundHalfEven(x) - 1);
    case "linspace":
      return Array.from(numpyLinspace(0, T - 1, n), roundHalfEven).reverse();
  }
}

/**
 * Validates `setTimesteps`' argument: an integer in [1, `max`].
 *
 * @throws {TypeError} when it is not a number; {@link RangeError} when it is not an integer in range, e.g.
 * `numInferenceSteps must be an integer in [1, 1000]: got 0`.
 */
export function checkNumInferenceSteps(numInferenceSteps: unknown, max: number): number {
  if (typeof numInferenceSteps !== "number") {
    throw new TypeError(`numInferenceSteps must be a number: got ${typeof numInferenceSteps}`);
  }
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > max) {
    throw new RangeError(`numInferenceSteps must be an integer in [1, ${max}]: got ${numInferenceSteps}`);
  }
  return numInferenceSteps;
}

/**
 * Validates an integer training timestep (DDIM/PNDM index `alphas_cumprod` with it).
 *
 * @throws {RangeError} `timestep must be an integer in [0, 999]: got 1000`.
 */
export function checkIntegerTimestep(timestep: unknown, numTrainTimesteps: number): number {
  if (typeof timestep !== "number" || !Number.isInteger(timestep) || timestep < 0 || timestep >= numTrainTimesteps) {
    throw new RangeError(
      `timestep must be an integer in [0, ${numTrainTimesteps - 1}]: got ${
        typeof timestep === "number" ? timestep : typeof timestep
      }`,
    );
  }
  return timestep;
}

// ---------------------------------------------------------------------------------------------------------------------
// Prediction types, thresholding, clipping, forward noising (torch float32 op order)
// ---------------------------------------------------------------------------------------------------------------------

/** What the denoising network predicts (`prediction_type`). */
export type PredictionType = "epsilon" | "sample" | "v_prediction";

/** x̂₀ and ε̂ from one model output. */
export interface OriginalAndEpsilon {
  /** x̂₀, the predicted clean sample. */
  predOriginalSample: Tensor;
  /** ε̂, the predicted noise (the model output itself for `epsilon`: do not mutate it). */
  predEpsilon: Tensor;
}

/**
 * x̂₀ and ε̂ in ᾱ-space, as DDIM's step computes them (diffusers `scheduling_ddim.py`, DDIM paper eq. 12's
 * "predicted x₀"; v-prediction from Salimans & Ho 2022, §4), each operation rounded to float32 in torch's order:
 * - `epsilon`: x̂₀ = (x − √(1−ᾱ)·ε) / √ᾱ, ε̂ = ε;
 * - `sample`: x̂₀ = output, ε̂ = (x − √ᾱ·x̂₀) / √(1−ᾱ);
 * - `v_prediction`: x̂₀ = √ᾱ·x − √(1−ᾱ)·v, ε̂ = √ᾱ·v + √(1−ᾱ)·x.
 *
 * @param alphaProdT ᾱ_t as a float32 value.
 */
export function originalAndEpsilonFromAlpha(
  predictionType: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  alphaProdT: number,
): OriginalAndEpsilon {
  assertSameShape(modelOutput, sample, ["modelOutput", "sample"]);
  const betaProdT = f32(1 - alphaProdT);
  const sqrtA = f32(Math.sqrt(alphaProdT)), sqrtB = f32(Math.sqrt(betaProdT));
  const m = modelOutput.data, x = sample.data, n = m.length;
  switch (predictionType) {
    case "epsilon": {
      const x0 = new Float32Array(n);
      for (let i = 0; i < n; i++) x0[i] = f32(x[i]! - f32(sqrtB * m[i]!)) / sqrtA;
      return { predOriginalSample: new Tensor(x0, sample.shape), predEpsilon: modelOutput };
    }
    case "sample":
      return {
        predOriginalSample: modelOutput.clone(),
        predEpsilon: epsilonFromOriginal(sample, modelOutput, alphaProdT),
      };
    case "v_prediction": {
      const x0 = new Float32Array(n), eps = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        x0[i] = f32(sqrtA * x[i]!) - f32(sqrtB * m[i]!);
        eps[i] = f32(sqrtA * m[i]!) + f32(sqrtB * x[i]!);
      }
      return { predOriginalSample: new Tensor(x0, sample.shape), predEpsilon: new Tensor(eps, sample.shape) };
    }
  }
}

/** ε̂ = (x − √ᾱ·x̂₀) / √(1−ᾱ) in float32 order (DDIM's `sample` prediction and `use_clipped_model_output`). */
export function epsilonFromOriginal(sample: Tensor, predOriginalSample: Tensor, alphaProdT: number): Tensor {
  assertSameShape(predOriginalSample, sample, ["predOriginalSample", "sample"]);
  const sqrtA = f32(Math.sqrt(alphaProdT)), sqrtB = f32(Math.sqrt(f32(1 - alphaProdT)));
  const x = sample.data, x0 = predOriginalSample.data, n = x.length;
  const eps = new Float32Array(n);
  for (let i = 0; i < n; i++) eps[i] = f32(x[i]! - f32(sqrtA * x0[i]!)) / sqrtB;
  return new Tensor(eps, sample.shape);
}

/**
 * x̂₀ in σ-space (σ² = (1−ᾱ)/ᾱ) as LMS, Euler and Euler-ancestral compute it, in torch's float32 order:
 * - `epsilon`: `x − σ·ε`;
 * - `v_prediction`: `v·(−σ / (σ²+1)^0.5) + x / (σ²+1)`;
 * - `sample`: the model output itself.
 *
 * @param sigma σ as a float32 value (Euler passes σ̂ for `epsilon`, as diffusers does).
 */
export function originalFromSigma(
  predictionType: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  sigma: number,
): Tensor {
  assertSameShape(modelOutput, sample, ["modelOutput", "sample"]);
  const m = modelOutput.data, x = sample.data, n = m.length;
  const out = new Float32Array(n);
  switch (predictionType) {
    case "epsilon":
      for (let i = 0; i < n; i++) out[i] = x[i]! - f32(sigma * m[i]!);
      break;
    case "v_prediction": {
      const s2p1 = f32(f32(sigma * sigma) + 1);
      const c = f32(-sigma / f32(Math.sqrt(s2p1)));
      for (let i = 0; i < n; i++) out[i] = f32(m[i]! * c) + f32(x[i]! / s2p1);
      break;
    }
    case "sample":
      out.set(m);
      break;
  }
  return new Tensor(out, sample.shape);
}

/**
 * Dynamic thresholding (Saharia et al. 2022, "Imagen", §2.3; diffusers `_threshold_sample`): per batch item
 * (first dimension), `s = clamp(quantile(|x̂₀|, ratio), 1, sampleMaxValue)` with torch's linear-interpolation
 * quantile, then `clamp(x̂₀, −s, s) / s`, in float32.
 *
 * @throws {TypeError} when the tensor has fewer than 2 dimensions (diffusers needs batch and channels).
 */
export function dynamicThreshold(
  predOriginalSample: Tensor,
  dynamicThresholdingRatio: number,
  sampleMaxValue: number,
): Tensor {
  const shape = predOriginalSample.shape;
  if (shape.length < 2) {
    throw new TypeError(
      `dynamic thresholding needs a [batch, channels, ...] sample: got shape [${shape.join(", ")}]`,
    );
  }
  const batch = shape[0]!;
  const per = batch === 0 ? 0 : predOriginalSample.size / batch;
  const x = predOriginalSample.data;
  const out = new Float32Array(x.length);
  const absRow = new Float32Array(per);
  const maxV = f32(sampleMaxValue);
  for (let b = 0; b < batch; b++) {
    const row = x.subarray(b * per, (b + 1) * per);
    for (let i = 0; i < per; i++) absRow[i] = Math.abs(row[i]!);
    // torch.clamp(s, min=1, max=sample_max_value): max applied last.
    const s = f32(Math.min(Math.max(quantile(absRow, dynamicThresholdingRatio), 1), maxV));
    for (let i = 0; i < per; i++) out[b * per + i] = Math.min(Math.max(row[i]!, -s), s) / s;
  }
  return new Tensor(out, shape);
}

/** `clip_sample`: `clamp(x̂₀, −range, range)` with the range rounded to float32 (NaN propagates). */
export function clipSample(predOriginalSample: Tensor, clipSampleRange: number): Tensor {
  const r = f32(clipSampleRange);
  return new Tensor(predOriginalSample.data.map((v) => Math.min(Math.max(v, -r), r)), predOriginalSample.shape);
}

/**
 * The forward process q(x_t | x₀) (DDPM eq. 4; diffusers `add_noise` of DDIM/PNDM):
 * `√ᾱ_t·x₀ + √(1−ᾱ_t)·ε` in float32. `timesteps` is one timestep for the whole batch or one per batch item.
 *
 * @throws {TypeError} when shapes differ or the number of timesteps is neither 1 nor the batch size;
 * {@link RangeError} when a timestep is not an integer in [0, T).
 */
export function addNoiseAlphas(
  alphasCumprod: Float32Array,
  originalSamples: Tensor,
  noise: Tensor,
  timesteps: number | readonly number[],
): Tensor {
  assertSameShape(noise, originalSamples, ["noise", "originalSamples"]);
  const ts = typeof timesteps === "number" ? [timesteps] : timesteps;
  const batch = originalSamples.shape[0] ?? 1;
  if (ts.length !== 1 && ts.length !== batch) {
    throw new TypeError(`timesteps must have 1 or ${batch} (batch size) entries: got ${ts.length}`);
  }
  const per = ts.length === 1 ? originalSamples.size : originalSamples.size / batch;
  const x = originalSamples.data, e = noise.data;
  const out = new Float32Array(x.length);
  for (const [k, t] of ts.entries()) {
    const a = alphasCumprod[checkIntegerTimestep(t, alphasCumprod.length)]!;
    const sa = f32(Math.sqrt(a)), sb = f32(Math.sqrt(f32(1 - a)));
    for (let i = k * per; i < (k + 1) * per; i++) out[i] = f32(sa * x[i]!) + f32(sb * e[i]!);
  }
  return new Tensor(out, originalSamples.shape);
}

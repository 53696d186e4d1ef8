/**
 * σ-space machinery shared by the k-diffusion style schedulers (LMS, Euler, Euler-ancestral) and DPM-Solver:
 * the training σ table, numpy's `interp`, the Karras / exponential / beta / Lu re-spacings, `_sigma_to_t`, and the
 * step-index lookup.
 *
 * diffusers computes these tables with numpy in float64 and casts them to float32 at the end; the helpers here
 * return float64 (`Float64Array`, plain numbers) wherever numpy does, so callers round exactly where diffusers does.
 * Sources: `src/diffusers/schedulers/scheduling_euler_discrete.py` (`_sigma_to_t`, `_convert_to_karras`,
 * `_convert_to_exponential`, `_convert_to_beta`, `index_for_timestep`), `scheduling_dpmsolver_multistep.py`
 * (`_convert_to_lu`), numpy `core/src/multiarray/compiled_base.c` (`arr_interp`) and `numpy/_core/function_base.py`
 * (`linspace`).
 *
 * @module
 */

import { assertSameShape, f32, sameShape, Tensor } from "../tensor/mod.ts";
import type { StepOptions } from "./types.ts";
import { numpyArange, numpyLinspace, roundHalfEven, type TimestepSpacing } from "./_betas.ts";

/**
 * `numpy.interp(x, numpy.arange(fp.length), fp)` in float64, as numpy's C loop computes it: `fp[j]` on exact grid
 * hits, `slope * (x - j) + fp[j]` in between, `fp[0]` / `fp[last]` outside the grid, NaN for NaN.
 */
export function interpOnIndexGrid(x: ArrayLike<number>, fp: ArrayLike<number>): Float64Array {
  const n = fp.length;
  if (n === 0) throw new RangeError("interpOnIndexGrid: fp must not be empty");
  const out = new Float64Array(x.length);
  const last = fp[n - 1]!;
  for (let i = 0; i < x.length; i++) {
    const xv = x[i]!;
    if (Number.isNaN(xv)) {
      out[i] = xv;
    } else if (xv < 0) {
      out[i] = fp[0]!;
    } else if (xv >= n - 1) {
      out[i] = last;
    } else {
      const j = Math.floor(xv);
      const y0 = fp[j]!;
      if (j === xv) {
        out[i] = y0;
      } else {
        // numpy: slope = (fp[j+1] - fp[j]) / (xp[j+1] - xp[j]); the grid step is exactly 1.
        const slope = fp[j + 1]! - y0;
        let v = slope * (xv - j) + y0;
        if (Number.isNaN(v)) v = slope * (xv - (j + 1)) + fp[j + 1]!;
        out[i] = v;
      }
    }
  }
  return out;
}

/**
 * The training σ table `((1 - ᾱ) / ᾱ) ** 0.5` in float32 (torch: subtraction, division and `sqrt` each rounded),
 * indexed by training timestep, so ascending for a decreasing `ᾱ`.
 */
export function trainingSigmas(alphasCumprod: Float32Array): Float32Array {
  const out = new Float32Array(alphasCumprod.length);
  for (let i = 0; i < out.length; i++) {
    const a = alphasCumprod[i]!;
    out[i] = Math.sqrt(f32(f32(1 - a) / a));
  }
  return out;
}

/** Element-wise natural log in float32 (`np.log` of a float32 array). */
export function logFloat32(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.log(values[i]!);
  return out;
}

/**
 * diffusers' `_sigma_to_t(sigma, log_sigmas)`: the fractional training timestep whose log-σ interpolates to
 * `log(sigma)` (piecewise-linear in log σ), for one float64 `sigma`.
 *
 * Reproduces numpy 1.x's value-based casting, with which diffusers' reference data was produced: the float64
 * `log(sigma)` meets the float32 `logSigmas` array, so the differences and the weight `w` are float32, while
 * `(1 - w) * low + w * high` is float64 (float32 times an int64 index array). Verified bit-exact against the
 * Karras timesteps of the reference runs (numpy 2's promotion rules differ by up to 5 float32 ulp there).
 *
 * @param sigma σ to convert (clamped below at 1e-10, as diffusers does).
 * @param logSigmas float32 `log` of the training σ table, ascending.
 * @returns the fractional timestep in float64 (callers cast it to float32 or round it).
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array): number {
  const n = logSigmas.length;
  if (n < 2) throw new RangeError(`sigmaToT needs a table of at least 2 log-sigmas: got ${n}`);
  const logSigma32 = f32(Math.log(Math.max(sigma, 1e-10)));
  // low_idx = cumsum(dists >= 0).argmax(): the last index whose log-σ is <= log(sigma), or 0 when there is none.
  let low = 0;
  for (let i = 0; i < n; i++) if (f32(logSigma32 - logSigmas[i]!) >= 0) low = i;
  if (low > n - 2) low = n - 2;
  const lo = logSigmas[low]!;
  const hi = logSigmas[low + 1]!;
  let w = f32(f32(lo - logSigma32) / f32(lo - hi));
  w = w < 0 ? 0 : w > 1 ? 1 : w; // np.clip keeps NaN
  return f32(1 - w) * low + w * (low + 1);
}

/**
 * The Karras et al. (2022, "Elucidating the Design Space of Diffusion-Based Generative Models", eq. 5) σ ramp:
 * `(σmax^(1/ρ) + ramp · (σmin^(1/ρ) − σmax^(1/ρ)))^ρ` over `ramp = linspace(0, 1, n)`, in float64.
 */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number, rho = 7.0): Float64Array {
  const ramp = numpyLinspace(0, 1, n);
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (maxInvRho + ramp[i]! * (minInvRho - maxInvRho)) ** rho;
  return out;
}

/** diffusers' `_convert_to_exponential`: `exp(linspace(log σmax, log σmin, n))`, in float64. */
export function exponentialSigmas(sigmaMin: number, sigmaMax: number, n: number): Float64Array {
  const out = numpyLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n);
  for (let i = 0; i < n; i++) out[i] = Math.exp(out[i]!);
  return out;
}

/**
 * diffusers' `_convert_to_beta` (Lee et al. 2024, "Beta Sampling is All You Need"):
 * `σmin + ppf(1 − linspace(0, 1, n)) · (σmax − σmin)` with `ppf` the quantile function of Beta(α, β)
 * (scipy's `beta.ppf`; here an incomplete-beta inversion accurate to ~1e-14, far below float32 resolution).
 */
export function betaSigmas(sigmaMin: number, sigmaMax: number, n: number, alpha = 0.6, beta = 0.6): Float64Array {
  const ramp = numpyLinspace(0, 1, n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = sigmaMin + betaPpf(1 - ramp[i]!, alpha, beta) * (sigmaMax - sigmaMin);
  return out;
}

/**
 * Lu et al. (2022, "DPM-Solver++", the "uniform logSNR" spacing) as diffusers' `_convert_to_lu` writes it: a linear
 * ramp from `lambdaMax` to `lambdaMin` (ρ = 1), in float64. diffusers feeds it log σ values, not λ = −log σ.
 */
export function luLambdas(lambdaMin: number, lambdaMax: number, n: number): Float64Array {
  const ramp = numpyLinspace(0, 1, n);
  const out = new Float64Array(n);
  // `x ** 1.0` is exact, so the ρ = 1 power diffusers applies is left out.
  for (let i = 0; i < n; i++) out[i] = lambdaMax + ramp[i]! * (lambdaMin - lambdaMax);
  return out;
}

/**
 * diffusers' `index_for_timestep`: the position of `timestep` in `schedule`, compared in float32 (torch casts the
 * Python number to the schedule's float32 dtype); the **second** occurrence when it occurs more than once, so that a
 * run started mid-schedule does not skip a σ.
 *
 * @param notFound what diffusers does for an absent timestep: `"throw"` (LMS, Euler, Euler-ancestral raise an
 *   `IndexError`) or `"last"` (DPM-Solver takes the last index).
 * @throws {TypeError} when `timestep` is not a finite number.
 * @throws {RangeError} when the timestep is absent and `notFound` is `"throw"`.
 */
export function indexForTimestep(
  schedule: ArrayLike<number>,
  timestep: number,
  notFound: "throw" | "last",
  className: string,
): number {
  if (typeof timestep !== "number" || !Number.isFinite(timestep)) {
    throw new TypeError(`${className}: timestep must be a finite number: got ${String(timestep)}`);
  }
  const t = f32(timestep);
  let first = -1;
  for (let i = 0; i < schedule.length; i++) {
    if (schedule[i] === t) {
      if (first >= 0) return i;
      first = i;
    }
  }
  if (first >= 0) return first;
  if (notFound === "last") return schedule.length - 1;
  throw new RangeError(
    `${className}: timestep ${timestep} is not one of the scheduler's timesteps ` +
      `(pass a value of scheduler.timesteps, not a loop index)`,
  );
}

/**
 * diffusers' rule that at most one σ re-spacing is chosen (`use_karras_sigmas`, `use_exponential_sigmas`,
 * `use_beta_sigmas`; LMS, Euler and DPM-Solver `__init__`).
 *
 * @throws {RangeError} `… config: only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas can be true`.
 */
export function checkOneSigmaRespacing(
  values: {
    readonly use_karras_sigmas: boolean;
    readonly use_exponential_sigmas: boolean;
    readonly use_beta_sigmas: boolean;
  },
  className: string,
): void {
  const { use_karras_sigmas: karras, use_exponential_sigmas: exponential, use_beta_sigmas: beta } = values;
  if ([karras, exponential, beta].filter((b) => b).length > 1) {
    throw new RangeError(
      `${className} config: only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas can be true: ` +
        `got ${karras}, ${exponential}, ${beta}`,
    );
  }
}

/**
 * A schedule's σ with the final σ appended, as float32 (`np.concatenate([sigmas, [final]]).astype(np.float32)`):
 * 0, or σ_min for `final_sigmas_type: "sigma_min"`.
 */
export function appendFinalSigma(sigmas: ArrayLike<number>, finalSigma: number): Float32Array {
  const out = new Float32Array(sigmas.length + 1);
  out.set(sigmas);
  out[sigmas.length] = finalSigma;
  return out;
}

/**
 * `init_noise_sigma` of LMS/Euler/Euler-ancestral: `max(σ)` for `"linspace"`/`"trailing"` spacing,
 * `sqrt(max(σ)² + 1)` for `"leading"` (float32 tensor arithmetic, as torch does it).
 */
export function initNoiseSigmaFor(sigmas: Float32Array, timestepSpacing: string): number {
  let max = -Infinity;
  for (const s of sigmas) {
    if (Number.isNaN(s)) return NaN;
    if (s > max) max = s;
  }
  if (timestepSpacing === "linspace" || timestepSpacing === "trailing") return max;
  return f32(Math.sqrt(f32(f32(max * max) + 1)));
}

/**
 * The float32 inference timesteps of LMS, Euler and Euler-ancestral (`set_timesteps`), in the order the loop visits
 * them (descending):
 * - `linspace`: `linspace(0, T − 1, n)` reversed, **not** rounded (fractional, e.g. 832.5);
 * - `leading`: `round(arange(n) · (T // n))` reversed, plus `stepsOffset` (in float32);
 * - `trailing`: `round(arange(T, 0, −T/n)) − 1`. numpy's float `arange` yields n + 1 values for some n (e.g. T = 1000,
 *   n = 61, the last one −1); diffusers keeps them, and so does this port.
 */
export function sigmaTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): Float32Array {
  const T = numTrainTimesteps, n = numInferenceSteps;
  switch (spacing) {
    case "linspace":
      return Float32Array.from(numpyLinspace(0, T - 1, n)).reverse();
    case "leading": {
      const ratio = Math.floor(T / n);
      return Float32Array.from({ length: n }, (_, k) => f32((n - 1 - k) * ratio) + stepsOffset);
    }
    case "trailing":
      return Float32Array.from(numpyArange(T, 0, -T / n), (x) => roundHalfEven(x) - 1);
  }
}

/**
 * `scale_model_input` of LMS/Euler/Euler-ancestral: `sample / (σ² + 1) ** 0.5` in float32 (the divisor rounded after
 * each operation, as torch computes it on a 0-dim tensor). Returns a new tensor.
 */
export function scaleBySigma(sample: Tensor, sigma: number): Tensor {
  const divisor = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
  const x = sample.data;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! / divisor;
  return new Tensor(out, sample.shape);
}

/**
 * The σ of each batch item for `add_noise`: one timestep for the whole batch or one per item (the first dimension).
 * diffusers' rule for the schedule position: `index_for_timestep` while no begin index is set, else the current step
 * index once stepping has started, else the begin index.
 *
 * @throws {TypeError} when the number of timesteps is neither 1 nor the batch size.
 */
export function noiseSigmasFor(
  timesteps: number | readonly number[],
  batch: number,
  sigmas: Float32Array,
  indexOf: (t: number) => number,
  state: { beginIndex: number | null; stepIndex: number | null },
): number[] {
  const ts = typeof timesteps === "number" ? [timesteps] : [...timesteps];
  if (ts.length !== 1 && ts.length !== batch) {
    throw new TypeError(`timesteps must have 1 or ${batch} (batch size) entries: got ${ts.length}`);
  }
  return ts.map((t) => {
    const i = state.beginIndex === null ? indexOf(t) : state.stepIndex ?? state.beginIndex;
    const s = sigmas[i];
    if (s === undefined) throw new RangeError(`no sigma at schedule position ${i} (the schedule has ${sigmas.length})`);
    return s;
  });
}

/**
 * Applies `fn(x, e, itemIndex)` element-wise over `original` and `noise`, with the item index along the first
 * dimension grouped as `groups` equal slices (1 = one group for the whole tensor).
 */
export function mapNoised(
  original: Tensor,
  noise: Tensor,
  groups: number,
  fn: (x: number, e: number, group: number) => number,
): Tensor {
  assertSameShape(noise, original, ["noise", "originalSamples"]);
  const x = original.data, e = noise.data;
  const out = new Float32Array(x.length);
  const per = groups === 0 ? 0 : x.length / groups;
  for (let g = 0; g < groups; g++) {
    for (let i = g * per; i < (g + 1) * per; i++) out[i] = fn(x[i]!, e[i]!, g);
  }
  return new Tensor(out, original.shape);
}

/**
 * The per-step noise of a stochastic step: `options.varianceNoise` when given (it must have `shape`), else one
 * `options.generator.randn(shape)` draw, as diffusers' `randn_tensor(model_output.shape, generator=...)`.
 *
 * There is no global random generator in this project (diffusers falls back to torch's global one), so a step that
 * needs noise without either option is an error rather than a silent non-reproducible draw. Passing both is an error
 * too (as in DDIM's diffusers `step`), so a generator is never silently left unadvanced.
 *
 * @throws {TypeError} when neither or both are given, or `varianceNoise` has another shape.
 */
export function stepNoise(
  options: StepOptions | undefined,
  shape: readonly number[],
  className: string,
  why: string,
): Tensor {
  const noise = options?.varianceNoise;
  const generator = options?.generator;
  if (noise !== undefined && generator !== undefined) {
    throw new TypeError(`${className}.step: pass either options.generator or options.varianceNoise, not both`);
  }
  if (noise !== undefined) {
    if (!(noise instanceof Tensor)) {
      throw new TypeError(`${className}.step: options.varianceNoise must be a Tensor: got ${typeof noise}`);
    }
    if (!sameShape(noise.shape, shape)) {
      throw new TypeError(
        `${className}.step: options.varianceNoise shape [${noise.shape.join(", ")}] does not match ` +
          `the sample shape [${shape.join(", ")}]`,
      );
    }
    return noise;
  }
  if (generator !== undefined) return generator.randn(shape);
  throw new TypeError(
    `${className}.step needs options.generator (or options.varianceNoise): ${why}, ` +
      "and this project has no global random generator",
  );
}

/**
 * A σ bound taken from a config key the class does not declare but diffusers still reads: `from_config` keeps keys of
 * compatible classes (e.g. Euler's `sigma_min`) as attributes of `scheduler.config`, and the `_convert_to_*` helpers
 * of LMS and DPM-Solver use them when present (`hasattr(self.config, "sigma_min")`). `null`/absent → `null`.
 *
 * @throws {TypeError} when the key holds something other than a positive finite number or null.
 */
export function hiddenSigmaBound(
  config: Readonly<Record<string, unknown>>,
  key: "sigma_min" | "sigma_max",
  className: string,
): number | null {
  const v = config[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new TypeError(`${className} config: ${key} must be a positive finite number or null: got ${String(v)}`);
  }
  return v;
}

/**
 * Validates a `setBeginIndex` argument against a schedule of `length` timesteps.
 *
 * @throws {RangeError} `beginIndex must be an integer in [0, 9]: got 10`.
 */
export function checkBeginIndex(beginIndex: unknown, length: number): number {
  if (typeof beginIndex !== "number" || !Number.isInteger(beginIndex) || beginIndex < 0 || beginIndex >= length) {
    throw new RangeError(`beginIndex must be an integer in [0, ${length - 1}]: got ${String(beginIndex)}`);
  }
  return beginIndex;
}

/** Throws the error every scheduler raises when it is used before `setTimesteps`. */
export function notReady(className: string, what: string): never {
  throw new Error(`${className}.${what} called before setTimesteps(): call setTimesteps(numInferenceSteps) first`);
}

// ---------------------------------------------------------------------------------------------------------------
// Beta(α, β) quantile function (for betaSigmas). scipy evaluates it with Boost's ibeta_inv; a bisection on the
// regularised incomplete beta function reaches the same float64 value to ~1e-14, which no float32 σ can resolve.

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15). */
function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz), for x < (a + 1) / (a + b + 2). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/** The regularised incomplete beta function I_x(a, b). */
function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const logFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logFront) * betaContinuedFraction(x, a, b)) / a;
  return 1 - (Math.exp(logFront) * betaContinuedFraction(1 - x, b, a)) / b;
}

/** Quantile function of Beta(a, b): the x in [0, 1] with I_x(a, b) = q (bisection to float64 resolution). */
export function betaPpf(q: number, a: number, b: number): number {
  if (!(q >= 0 && q <= 1)) return NaN;
  if (q === 0) return 0;
  if (q === 1) return 1;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (regularizedIncompleteBeta(mid, a, b) < q) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/**
 * The one interface every scheduler implements (names fixed by the project's issues: tests and pipelines use them).
 *
 * @module
 */
import type { Tensor } from "../tensor/mod.ts";
import type { Generator } from "../random/mod.ts";

/** Options of {@linkcode Scheduler.step}. Every scheduler accepts all of them and ignores what it has no use for. */
export interface StepOptions {
  /** DDIM's η (0 = deterministic DDIM, 1 = DDPM-like). Only DDIM uses it. @default 0 */
  eta?: number;
  /**
   * Where noise is drawn from (DDIM with η > 0, Euler-ancestral, SDE DPM-Solver, Euler with `sChurn > 0`): one `randn`
   * of the sample's shape per step, as diffusers draws it.
   */
  generator?: Generator;
  /**
   * Explicit per-step noise of the sample's shape instead of drawing from `generator` (DDIM η > 0, Euler-ancestral,
   * SDE DPM-Solver, Euler with `sChurn > 0`). Passing both where noise is used is an error.
   */
  varianceNoise?: Tensor;
  /**
   * DDIM only: recompute ε̂ from the clipped/thresholded x̂₀ (diffusers' `use_clipped_model_output`). Has no effect
   * when no clipping or thresholding is configured. @default false
   */
  useClippedModelOutput?: boolean;
}

/** What {@linkcode Scheduler.step} returns. */
export interface StepOutput {
  /** x_{t-1}: the sample for the next step. */
  prevSample: Tensor;
  /** x̂₀, the model's estimate of the clean sample, where the scheduler computes it. */
  predOriginalSample?: Tensor;
}

/** A diffusion sampler with diffusers' contract. Stateful: create one per generation, never share it. */
export interface Scheduler {
  /** The diffusers class this scheduler reproduces, e.g. `"DDIMScheduler"`. */
  readonly className: string;
  /** The resolved configuration (diffusers' defaults filled in), frozen. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Timesteps of the current schedule, in the order the loop visits them. Empty before `setTimesteps`. */
  readonly timesteps: ArrayLike<number>;
  /** Standard deviation of the initial noise: latents are drawn from N(0, 1) and multiplied by it. */
  readonly initNoiseSigma: number;
  /** Model evaluations per step of the underlying solver (diffusers' `order`). */
  readonly order: number;
  /**
   * Prepares the schedule for `numInferenceSteps` denoising steps and resets all per-run state.
   * @throws {RangeError} when the count is not an integer in [1, num_train_timesteps] (or what the solver needs).
   */
  setTimesteps(numInferenceSteps: number): void;
  /** Scales the model input for timestep `timestep` (identity for DDIM, PNDM and DPM-Solver). Never mutates `sample`. */
  scaleModelInput(sample: Tensor, timestep: number): Tensor;
  /** One reverse-diffusion step from `sample` at `timestep` given the model output. Never mutates its inputs. */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, options?: StepOptions): StepOutput;
}

/**
 * `EulerAncestralDiscreteScheduler`: ancestral sampling with Euler steps (k-diffusion `sample_euler_ancestral`,
 * Katherine Crowson; σ-space ODE of Karras et al. 2022), ported from diffusers'
 * `scheduling_euler_ancestral_discrete.py`.
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
  initNoiseSigmaFor,
  interpOnIndexGrid,
  mapNoised,
  scaleBySigma,
  sigmaTimesteps,
  stepNoise,
} from "./_sigmas.ts";

const CLASS_NAME = "EulerAncestralDiscreteScheduler";

/** The config fields of `EulerAncestralDiscreteScheduler` with diffusers' defaults. */
const FIELDS = {
  ...COMMON_FIELDS,
  prediction_type: oneOf(["epsilon", "v_prediction", "sample"] as const, "epsilon"),
  timestep_spacing: oneOf(TIMESTEP_SPACINGS, "linspace"),
  rescale_betas_zero_snr: boolean(false),
} as const;

const RESOLVER = defineConfig(CLASS_NAME, FIELDS);

/**
 * Euler-ancestral sampler with diffusers' exact behaviour. Each step goes deterministically down to
 * `σ_down = sqrt(σ_{i+1}² − σ_up²)` and adds fresh noise `ε·σ_up`, `σ_up = sqrt(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²)`.
 *
 * The noise is one `options.generator.randn(modelOutput.shape)` per step, **including the last step** where σ_up = 0
 * (diffusers draws it anyway, so later draws of a shared generator stay aligned with diffusers). With a generator
 * seeded like diffusers' `torch.Generator().manual_seed(s)` the samples are bit-identical to diffusers on CPU.
 * `options.varianceNoise` may supply that step's noise instead (an extension: diffusers' `step` has no explicit-noise
 * argument, but injecting the same tensors reproduces its output exactly).
 *
 * Deliberate differences from diffusers: noise without `generator`/`varianceNoise` is an error (diffusers would use
 * torch's global generator, which this project does not have); `prediction_type: "sample"` is rejected when the
 * scheduler is built (diffusers raises `NotImplementedError` in the first `step`); `step`/`scaleModelInput` before
 * `setTimesteps` throw; any number is accepted as a timestep (JS has no int/float distinction to reject loop indices
 * with) but must equal (in float32) one of `timesteps` on first use.
 *
 * Inherited σ-scheduler members (diffusers' step-index bookkeeping, shared with the other σ schedulers): `config`,
 * `order` (1), `timesteps`, `sigmas`, `alphasCumprod`, `stepIndex`, `beginIndex` and `setBeginIndex`.
 *
 * @example
 * ```ts
 * import { EulerAncestralDiscreteScheduler } from "./euler_ancestral_discrete.ts";
 * import { Generator } from "../random/mod.ts";
 * const scheduler = new EulerAncestralDiscreteScheduler();
 * scheduler.setTimesteps(20);
 * const generator = new Generator(0);
 * let latents = generator.randn([1, 4, 8, 8]);
 * latents.data.forEach((v, i) => latents.data[i] = v * scheduler.initNoiseSigma);
 * for (const t of scheduler.timesteps) {
 *   const noisePred = scheduler.scaleModelInput(latents, t); // a UNet call in a real pipeline
 *   latents = scheduler.step(noisePred, t, latents, { generator }).prevSample;
 * }
 * ```
 */
export class EulerAncestralDiscreteScheduler extends SigmaScheduler<Float32Array> implements Scheduler {
  /** The diffusers class this reproduces. */
  readonly className = CLASS_NAME;

  readonly #values: ResolvedValues<typeof FIELDS>;

  /**
   * Builds the scheduler from a diffusers config (`from_config` semantics: unknown keys are kept but ignored).
   *
   * @throws {TypeError} for a wrongly typed field; {@link RangeError} for an out-of-range value, an unknown choice,
   *   or `prediction_type: "sample"` (not implemented by diffusers for this class).
   */
  constructor(config: Record<string, unknown> = {}) {
    const { values, config: resolved } = RESOLVER.resolve(config);
    if (values.prediction_type === "sample") {
      throw new RangeError(
        `${CLASS_NAME} config: prediction_type must be "epsilon" or "v_prediction": got "sample" ` +
          "(diffusers does not implement it for this scheduler)",
      );
    }
    super(CLASS_NAME, resolved, values, { notFound: "throw", timesteps: new Float32Array(0), sigmas: "training" });
    this.#values = values;
  }

  /** `max σ` (`linspace`/`trailing` spacing) or `sqrt(max σ² + 1)` (`leading`). */
  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.#values.timestep_spacing);
  }

  /**
   * Sets `numInferenceSteps` timesteps by `timestep_spacing`, their σ interpolated from the training table plus the
   * final 0, and resets the step state.
   *
   * @throws {RangeError} when `numInferenceSteps` is not an integer in [1, num_train_timesteps].
   */
  setTimesteps(numInferenceSteps: number): void {
    const v = this.#values;
    const n = checkNumInferenceSteps(numInferenceSteps, v.num_train_timesteps);
    const timesteps = sigmaTimesteps(v.timestep_spacing, v.num_train_timesteps, n, v.steps_offset);
    this.startSchedule(timesteps, appendFinalSigma(interpOnIndexGrid(timesteps, this.trainSigmas), 0));
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
   * One ancestral Euler step: x̂₀ by `prediction_type`, `x + (x − x̂₀)/σ · (σ_down − σ)`, plus `ε·σ_up` with ε from
   * `options.generator` (or `options.varianceNoise`), drawn on every step.
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} when shapes differ, the timestep is not a finite number,
   *   or neither (or both) of `generator`/`varianceNoise` is given; {@link RangeError} for a timestep not in
   *   `timesteps` or a step past the end.
   */
  step(modelOutput: Tensor, timestep: number, sample: Tensor, options?: StepOptions): StepOutput {
    const i = this.locateStep(timestep, "step");
    const sigma = this.sigmas[i]!;
    // 1. x̂₀ from the σ-scaled prediction (also validates the shapes before any noise is drawn)
    const predOriginalSample = originalFromSigma(this.#values.prediction_type, modelOutput, sample, sigma);
    // 2. split the move to σ_{i+1} into a deterministic part (to σ_down) and fresh noise (σ_up), float32 0-dim math
    const sigmaFrom = sigma, sigmaTo = this.sigmas[i + 1]!;
    const to2 = f32(sigmaTo * sigmaTo), from2 = f32(sigmaFrom * sigmaFrom);
    const sigmaUp = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
    const sigmaDown = f32(Math.sqrt(f32(to2 - f32(sigmaUp * sigmaUp))));
    const dt = f32(sigmaDown - sigma);
    const noise = stepNoise(options, modelOutput.shape, CLASS_NAME, "Euler-ancestral adds fresh noise every step");
    const x = sample.data, x0 = predOriginalSample.data, e = noise.data;
    const prev = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) {
      const deterministic = f32(x[k]! + f32(f32(f32(x[k]! - x0[k]!) / sigma) * dt));
      prev[k] = deterministic + f32(e[k]! * sigmaUp);
    }
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

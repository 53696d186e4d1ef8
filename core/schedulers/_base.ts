/**
 * The bookkeeping two families of schedulers share, written once so that each scheduler file holds only its own
 * algorithm (`setTimesteps` and `step`, with their diffusers/paper citations):
 * - {@linkcode AlphaBarScheduler} (DDIM, PNDM: ᾱ-space at integer timesteps): the ᾱ table and the final ᾱ of
 *   `set_alpha_to_one`, the current schedule, the identity `scale_model_input` and `add_noise` (DDPM eq. 4);
 * - {@linkcode SigmaScheduler} (LMS, Euler, Euler-ancestral, DPM-Solver: σ-space, σ = √((1 − ᾱ)/ᾱ)): the training σ
 *   table, the schedule's σ, and diffusers' `_step_index` / `_begin_index` state with `index_for_timestep`,
 *   `_init_step_index` and `set_begin_index` (`scheduling_euler_discrete.py`, copied into the others there).
 *
 * Private to `core/schedulers` (leading underscore): the public classes extend these, the package does not export them.
 *
 * @module
 */
import type { Tensor } from "../tensor/mod.ts";
import { addNoiseAlphas, type BetaConfig, makeScheduleTables } from "./_betas.ts";
import {
  appendFinalSigma,
  checkBeginIndex,
  indexForTimestep,
  logFloat32,
  noiseSigmasFor,
  notReady,
  trainingSigmas,
} from "./_sigmas.ts";

/** The config values a scheduler's ᾱ table is built from (diffusers' `__init__`). */
export type TableConfig = BetaConfig & {
  /** Lin et al. (2023) zero terminal SNR, for the classes that have the option. */
  readonly rescale_betas_zero_snr?: boolean;
};

// ---------------------------------------------------------------------------------------------------------------------
// DDIM, PNDM
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Base of the ᾱ-space schedulers (DDIM, PNDM): the ᾱ table, the final ᾱ, the current integer schedule, the identity
 * `scaleModelInput` and the forward process `addNoise`. Subclasses write `setTimesteps` (ending in
 * {@linkcode AlphaBarScheduler.startSchedule}) and `step`.
 */
export abstract class AlphaBarScheduler {
  /** The diffusers class this reproduces. */
  abstract readonly className: string;
  /** The resolved config (diffusers' keys), frozen. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Always 1: latents are drawn from N(0, 1) unscaled. */
  readonly initNoiseSigma = 1.0;
  /** diffusers' `order` attribute: 1 (one model evaluation per `timesteps` entry). */
  readonly order = 1;

  readonly #alphasCumprod: Float32Array;
  readonly #finalAlphaCumprod: number;
  #timesteps: readonly number[] = Object.freeze([]);
  #numInferenceSteps: number | null = null;

  /**
   * Builds the ᾱ table from the resolved config values.
   *
   * @param className the diffusers class name, for error messages.
   * @param config the resolved, frozen config the scheduler exposes.
   * @throws {RangeError} for `trained_betas` of the wrong length.
   */
  protected constructor(
    className: string,
    config: Readonly<Record<string, unknown>>,
    values: TableConfig & { readonly set_alpha_to_one: boolean },
  ) {
    this.config = config;
    this.#alphasCumprod = makeScheduleTables(values, className).alphasCumprod;
    // set_alpha_to_one: the step into x₀ uses ᾱ = 1 ("no noise"); otherwise ᾱ_0.
    this.#finalAlphaCumprod = values.set_alpha_to_one ? 1.0 : this.#alphasCumprod[0]!;
  }

  /** Timesteps of the current schedule, in the order the loop visits them. Empty before `setTimesteps`. */
  get timesteps(): readonly number[] {
    return this.#timesteps;
  }

  /** The `numInferenceSteps` of the last `setTimesteps`, or `null`. */
  get numInferenceSteps(): number | null {
    return this.#numInferenceSteps;
  }

  /** ᾱ_t for t = 0…T−1 (a copy). */
  get alphasCumprod(): Float32Array {
    return this.#alphasCumprod.slice();
  }

  /** ᾱ used when the previous timestep is before 0: 1 with `set_alpha_to_one`, else ᾱ_0. */
  get finalAlphaCumprod(): number {
    return this.#finalAlphaCumprod;
  }

  /** Identity (DDIM and PNDM do not scale the model input); returns `sample` itself. */
  scaleModelInput(sample: Tensor, _timestep: number): Tensor {
    return sample;
  }

  /**
   * The forward process q(x_t | x₀) = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε (diffusers `add_noise`), e.g. for img2img.
   * `timesteps`: one for the batch or one per batch item.
   *
   * @throws {TypeError|RangeError} on mismatched shapes or invalid timesteps.
   */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    return addNoiseAlphas(this.#alphasCumprod, originalSamples, noise, timesteps);
  }

  /** ᾱ at a validated training timestep, or {@linkcode finalAlphaCumprod} for one below 0 (diffusers' `prev_t < 0`). */
  protected alphaProd(timestep: number): number {
    return timestep >= 0 ? this.#alphasCumprod[timestep]! : this.#finalAlphaCumprod;
  }

  /** Installs the schedule `setTimesteps` computed (frozen) for `numInferenceSteps` steps. */
  protected startSchedule(timesteps: readonly number[], numInferenceSteps: number): void {
    this.#timesteps = Object.freeze(timesteps);
    this.#numInferenceSteps = numInferenceSteps;
  }

  /**
   * The current `numInferenceSteps`.
   *
   * @throws {Error} `DDIMScheduler.step() called before setTimesteps(): …` before `setTimesteps`.
   */
  protected requireSchedule(what: string): number {
    return this.#numInferenceSteps ?? notReady(this.className, what);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// LMS, Euler, Euler-ancestral, DPM-Solver
// ---------------------------------------------------------------------------------------------------------------------

/** How a {@linkcode SigmaScheduler} subclass's schedule behaves outside `setTimesteps`/`step` proper. */
export interface SigmaScheduleLayout<T extends Float32Array | Int32Array> {
  /**
   * What `index_for_timestep` does with a timestep that is not in the schedule: `"throw"` (LMS, Euler,
   * Euler-ancestral raise an `IndexError`) or `"last"` (DPM-Solver takes the last step).
   */
  notFound: "throw" | "last";
  /** The empty timesteps of the class's dtype, exposed until `setTimesteps`. */
  timesteps: T;
  /**
   * σ until `setTimesteps`: `"training"`, the training table descending plus a final 0 (what LMS/Euler's `__init__`
   * builds, so `initNoiseSigma` is valid at once), or `"empty"` (DPM-Solver).
   */
  sigmas: "training" | "empty";
}

/**
 * Base of the σ-space schedulers (LMS, Euler, Euler-ancestral, DPM-Solver): the ᾱ and training σ tables, the current
 * schedule's timesteps and σ, and diffusers' step-index state. Subclasses write `setTimesteps` (ending in
 * {@linkcode SigmaScheduler.startSchedule}) and `step` (starting with {@linkcode SigmaScheduler.locateStep}, ending
 * with {@linkcode SigmaScheduler.advanceStep}).
 *
 * `T` is the dtype of the timesteps: `Float32Array` (fractional timesteps) or `Int32Array` (DPM-Solver).
 */
export abstract class SigmaScheduler<T extends Float32Array | Int32Array> {
  /** The diffusers class this reproduces. */
  abstract readonly className: string;
  /** The resolved configuration (diffusers' defaults filled in), frozen. */
  readonly config: Readonly<Record<string, unknown>>;
  /** One model evaluation per step (diffusers' `order = 1`). */
  readonly order = 1;

  readonly #alphasCumprod: Float32Array;
  readonly #trainSigmas: Float32Array;
  readonly #logSigmas: Float32Array;
  readonly #notFound: "throw" | "last";
  #timesteps: T;
  #sigmas: Float32Array;
  #ready = false;
  #stepIndex: number | null = null;
  #beginIndex: number | null = null;

  /**
   * Builds the ᾱ and σ tables from the resolved config values.
   *
   * @param className the diffusers class name, for error messages.
   * @param config the resolved, frozen config the scheduler exposes.
   * @throws {RangeError} for `trained_betas` of the wrong length.
   */
  protected constructor(
    className: string,
    config: Readonly<Record<string, unknown>>,
    values: TableConfig,
    layout: SigmaScheduleLayout<T>,
  ) {
    this.config = config;
    this.#notFound = layout.notFound;
    const alphasCumprod = makeScheduleTables(values, className).alphasCumprod;
    // diffusers: "Close to 0 without being 0 so first sigma is not inf" (FP16's smallest subnormal).
    if (values.rescale_betas_zero_snr === true) alphasCumprod[alphasCumprod.length - 1] = 2 ** -24;
    this.#alphasCumprod = alphasCumprod;
    this.#trainSigmas = trainingSigmas(alphasCumprod);
    this.#logSigmas = logFloat32(this.#trainSigmas);
    this.#timesteps = layout.timesteps;
    this.#sigmas = layout.sigmas === "training"
      ? appendFinalSigma(this.#trainSigmas.slice().reverse(), 0)
      : new Float32Array(0);
  }

  /**
   * Timesteps of the current schedule, in the order the loop visits them (float32 and fractional for `linspace`
   * spacing and σ re-spacings; integers for DPM-Solver). Empty before `setTimesteps`. The scheduler's own array: read
   * it, do not modify it.
   */
  get timesteps(): T {
    return this.#timesteps;
  }

  /**
   * σ at each step plus the final σ (0, or σ_min with `final_sigmas_type: "sigma_min"`), float32. Before
   * `setTimesteps`: the training table (LMS, Euler, Euler-ancestral) or empty (DPM-Solver).
   */
  get sigmas(): Float32Array {
    return this.#sigmas;
  }

  /** `ᾱ_t` for t = 0…T−1 (float32, with diffusers' 2⁻²⁴ tail under `rescale_betas_zero_snr`). */
  get alphasCumprod(): Float32Array {
    return this.#alphasCumprod;
  }

  /** Position in `timesteps` of the next step, `null` until the first `scaleModelInput`/`step`. */
  get stepIndex(): number | null {
    return this.#stepIndex;
  }

  /** The position set with {@linkcode SigmaScheduler.setBeginIndex}, or `null`. */
  get beginIndex(): number | null {
    return this.#beginIndex;
  }

  /**
   * Starts the run at `timesteps[beginIndex]` instead of locating the first timestep (diffusers `set_begin_index`,
   * used by image-to-image pipelines). Call it after `setTimesteps`, which clears it.
   *
   * @throws {Error} before `setTimesteps`; {@link RangeError} when `beginIndex` is not an integer in
   *   [0, timesteps.length).
   */
  setBeginIndex(beginIndex = 0): void {
    if (!this.#ready) notReady(this.className, "setBeginIndex");
    this.#beginIndex = checkBeginIndex(beginIndex, this.#timesteps.length);
  }

  /** Training σ table `√((1 − ᾱ)/ᾱ)`, ascending (index = training timestep). */
  protected get trainSigmas(): Float32Array {
    return this.#trainSigmas;
  }

  /** float32 `log` of the training σ table (diffusers' `log_sigmas`, for `_sigma_to_t`). */
  protected get logSigmas(): Float32Array {
    return this.#logSigmas;
  }

  /**
   * Installs the schedule `setTimesteps` computed: its timesteps and σ (the final σ already appended, see
   * {@linkcode appendFinalSigma}), and clears the step and begin index. Per-run solver state is the subclass's.
   */
  protected startSchedule(timesteps: T, sigmas: Float32Array): void {
    this.#timesteps = timesteps;
    this.#sigmas = sigmas;
    this.#ready = true;
    this.#stepIndex = null;
    this.#beginIndex = null;
  }

  /**
   * The position of this call in the schedule (diffusers' `_init_step_index` on first use: the begin index, else
   * `index_for_timestep`), checked to have a step left.
   *
   * @param what the calling method, for error messages.
   * @throws {Error} before `setTimesteps`; {@link TypeError} when `timestep` is not a finite number;
   *   {@link RangeError} for a timestep not in the schedule (unless `notFound` is `"last"`) or when every step is done.
   */
  protected locateStep(timestep: number, what: string): number {
    if (!this.#ready) notReady(this.className, what);
    if (typeof timestep !== "number" || !Number.isFinite(timestep)) {
      throw new TypeError(`${this.className}.${what}: timestep must be a finite number: got ${String(timestep)}`);
    }
    if (this.#stepIndex === null) this.#stepIndex = this.#beginIndex ?? this.#indexOf(timestep);
    const i = this.#stepIndex;
    if (i >= this.#timesteps.length || i + 1 >= this.#sigmas.length) {
      throw new RangeError(
        `${this.className}.${what}: all ${this.#timesteps.length} steps are done; call setTimesteps() to start a new run`,
      );
    }
    return i;
  }

  /** Moves to the next step once `step` has succeeded (diffusers' `self._step_index += 1`). */
  protected advanceStep(): void {
    if (this.#stepIndex !== null) this.#stepIndex += 1;
  }

  /**
   * The σ of each batch item for `addNoise` (one timestep for the batch or one per item), by diffusers' rule:
   * `index_for_timestep` while no begin index is set, else the current step index once stepping has started, else
   * the begin index.
   *
   * @throws {Error} before `setTimesteps`; {@link TypeError} when the count does not fit the batch;
   *   {@link RangeError} for a timestep not in the schedule (unless `notFound` is `"last"`).
   */
  protected noiseSigmas(timesteps: number | readonly number[], batch: number): number[] {
    if (!this.#ready) notReady(this.className, "addNoise");
    return noiseSigmasFor(timesteps, batch, this.#sigmas, (t) => this.#indexOf(t), {
      beginIndex: this.#beginIndex,
      stepIndex: this.#stepIndex,
    });
  }

  #indexOf(timestep: number): number {
    return indexForTimestep(this.#timesteps, timestep, this.#notFound, this.className);
  }
}

/**
 * Test helpers that replay the diffusers scheduler reference runs in `tests/fixtures/schedulers/*.json.gz` against a
 * {@linkcode Scheduler} implementation, and rebuild the inputs of diffusers' own scheduler tests
 * (`diffusers_scheduler_tests.json.gz`). Shared by every scheduler's `*_test.ts`.
 *
 * A fixture file holds `formulas` (how the deterministic sample, model output and noise are made), `configs` (the
 * checkpoint configs by name) and `runs`. {@linkcode replayRun} rebuilds each run's config (the named config JSON plus
 * the run's overrides, through the scheduler's own from_config resolution), checks the resolved config against
 * diffusers' `effective_config`, the timesteps, `init_noise_sigma`, every `scale_model_input` and every step's
 * `prev_sample`, and reports the worst element. Runs diffusers rejected (`status: "error"`) must throw in the
 * constructor or in `setTimesteps` ({@linkcode assertRunRejected}). {@linkcode replaySchedulerFixture} is the whole
 * preamble of a scheduler's reference-run test (load, count, replay, bit-exactness).
 *
 * For diffusers' own full-loop tests, {@linkcode diffusersSigmaLoop} runs the σ schedulers' loop and
 * {@linkcode assertDiffusersResult} checks a final sample against the recomputed result and the test's pinned sum and
 * mean.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssertionError } from "node:assert";
import { absMean, absSum, f32, Tensor } from "../tensor/mod.ts";
import type { Generator } from "../random/mod.ts";
import type { Scheduler, StepOptions } from "./types.ts";

const FIXTURE_DIR = new URL("../../tests/fixtures/schedulers/", import.meta.url);

/** Reads a gzipped JSON file; `name` is relative to `tests/fixtures/schedulers/` unless it is a `URL`. */
export async function loadGzJson<T = unknown>(name: string | URL): Promise<T> {
  const url = typeof name === "string" ? new URL(name, FIXTURE_DIR) : name;
  const bytes = await Deno.readFile(url);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text()) as T;
}

/** One recorded step of a run. */
export interface FixtureStep {
  /** 0-based index of the denoising step (loop counter over `scheduler.timesteps`). */
  k: number;
  /** The timestep passed to `scale_model_input` and `step`. */
  t: number;
  /** What `scale_model_input` divided by (1 for DDIM/PNDM/DPM). */
  scale_model_input_divisor: number;
  /** 1 / divisor. */
  scale_model_input_factor: number;
  /** Σ model_output (float64), a sanity value. */
  model_output_sum: number;
  /** The full `prev_sample` after this step, row-major. */
  prev_sample: number[];
  /** Euler-ancestral only: the noise the generator drew in this step. */
  noise?: number[];
}

/** One reference run: a scheduler, config, step count and step kwargs, and what diffusers produced. */
export interface FixtureRun {
  /** Unique id, `Class|config|variant|steps=n|loop_style`. */
  id: string;
  /** `main`, `extra_spacing`, … */
  group: string;
  /** The diffusers class. */
  scheduler: string;
  /** Key into the fixture's `configs`. */
  config_name: string;
  /** Keyword overrides passed with the config. */
  overrides: Record<string, unknown>;
  /** Short label of the overrides/kwargs. */
  variant: string;
  /** Argument of `set_timesteps`. */
  num_inference_steps: number;
  /** `sr_pipeline` (scale_model_input, init_noise_sigma) or `text2im_pipeline` (neither). */
  loop_style: "sr_pipeline" | "text2im_pipeline";
  /** `ok` or `error` (diffusers raised). */
  status: "ok" | "error";
  /** The error diffusers raised (error runs). */
  error?: string;
  /** Where diffusers raised it (error runs). */
  error_where?: string;
  /** `scheduler.config` after construction (ok runs); python `-inf` is the string `"-Infinity"`. */
  effective_config?: Record<string, unknown>;
  /** `scheduler.timesteps` (ok runs). */
  timesteps?: number[];
  /** `int64` or `float32`. */
  timesteps_dtype?: string;
  /** Number of `step` calls. */
  num_model_evaluations?: number;
  /** `scheduler.sigmas` where the class has them. */
  sigmas?: number[] | null;
  /** `scheduler.init_noise_sigma`. */
  init_noise_sigma?: number;
  /** The sample before the first step. */
  initial_sample?: number[];
  /** Step kwargs, e.g. `{ eta: 1, variance_noise: "noise_k (see formulas.noise)" }`. */
  step_kwargs?: Record<string, unknown> | null;
  /** Every step. */
  steps?: FixtureStep[];
  /** The last `prev_sample`. */
  final_sample?: number[];
  /** Σ|final| (float64). */
  final_abs_sum?: number;
  /** mean |final|. */
  final_abs_mean?: number;
}

/** A whole `<scheduler>.json.gz` file. */
export interface SchedulerFixture {
  /** The diffusers class of every run. */
  scheduler: string;
  /** Exact definitions of the deterministic inputs (prose). */
  formulas: Record<string, string>;
  /** Sample shape, `[1, 4, 8, 8]`. */
  shape: number[];
  /** The deterministic base sample. */
  base_sample: number[];
  /** Named configs: `{ checkpoint, provenance, config }`; `config` null means the class defaults. */
  configs: Record<string, { config: Record<string, unknown> | null; checkpoint?: string | null }>;
  /** The runs. */
  runs: FixtureRun[];
}

/** Loads `<name>.json.gz` from `tests/fixtures/schedulers/` (e.g. `"ddim"`). */
export function loadSchedulerFixture(name: string): Promise<SchedulerFixture> {
  return loadGzJson<SchedulerFixture>(`${name}.json.gz`);
}

// ---------------------------------------------------------------------------------------------------------------------
// The fixtures' deterministic inputs (`formulas`)
// ---------------------------------------------------------------------------------------------------------------------

/** `base[i] = f32(((i·7919) mod 1000)/1000 − 0.5)`, row-major over `shape`. */
export function fixtureBaseSample(shape: readonly number[]): Tensor {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = ((i * 7919) % 1000) / 1000.0 - 0.5;
  return t;
}

/** `model_output[i] = f32(0.1·x_in[i] + ((0.01·t)/1000)·cos(i))`, all in float64 in that order. */
export function fixtureModelOutput(modelInput: Tensor, t: number): Tensor {
  const out = Tensor.zeros(modelInput.shape);
  const x = modelInput.data, y = out.data;
  const c = (0.01 * t) / 1000.0;
  for (let i = 0; i < x.length; i++) y[i] = 0.1 * x[i]! + c * Math.cos(i);
  return out;
}

/** `noise_k[i] = f32(sin(i·12.9898 + k·78.233))`, the explicit noise of step `k` (DDIM η > 0, SDE DPM-Solver). */
export function fixtureNoise(k: number, shape: readonly number[]): Tensor {
  const out = Tensor.zeros(shape);
  for (let i = 0; i < out.size; i++) out.data[i] = Math.sin(i * 12.9898 + k * 78.233);
  return out;
}

/** The config a run's scheduler is built from: the named config JSON (or `{}` for class defaults) plus overrides. */
export function runConfig(fixture: SchedulerFixture, run: FixtureRun): Record<string, unknown> {
  const named = fixture.configs[run.config_name];
  if (named === undefined) throw new Error(`run ${run.id}: unknown config_name ${run.config_name}`);
  return { ...(named.config ?? {}), ...run.overrides };
}

/**
 * The default per-step options from a run's `step_kwargs`: `eta`, and `varianceNoise = noise_k` when the kwargs name
 * `variance_noise`. Runs that need a generator must pass their own `stepOptions` to {@linkcode replayRun}.
 */
export function defaultStepOptions(run: FixtureRun, k: number, shape: readonly number[]): StepOptions {
  const kw = run.step_kwargs ?? {};
  const options: StepOptions = {};
  if (typeof kw["eta"] === "number") options.eta = kw["eta"];
  if (kw["variance_noise"] !== undefined) options.varianceNoise = fixtureNoise(k, shape);
  return options;
}

// ---------------------------------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------------------------------

/** The worst element of a comparison. */
export interface Worst {
  /** |actual − expected| / max(1, |expected|). */
  relError: number;
  /** |actual − expected|. */
  absError: number;
  /** Element index. */
  index: number;
  /** Reference value. */
  expected: number;
  /** Our value. */
  actual: number;
  /** Where (e.g. `step 3 prev_sample`). */
  where: string;
}

/**
 * Compares element-wise with the project's rule `|a − e| ≤ tol·max(1, |e|)`; returns the worst element (NaN only
 * matches NaN). Throws `TypeError` when lengths differ.
 */
export function compareArrays(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  where: string,
): Worst {
  if (actual.length !== expected.length) {
    throw new TypeError(`${where}: length ${actual.length} does not match the reference length ${expected.length}`);
  }
  let worst: Worst = { relError: 0, absError: 0, index: -1, expected: NaN, actual: NaN, where };
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    let abs: number;
    if (Number.isNaN(e) || Number.isNaN(a)) abs = Number.isNaN(e) && Number.isNaN(a) ? 0 : Infinity;
    else abs = a === e ? 0 : Math.abs(a - e);
    const rel = abs === 0 ? 0 : abs / (Number.isNaN(e) ? 1 : Math.max(1, Math.abs(e)));
    if (worst.index < 0 || rel > worst.relError) {
      worst = { relError: rel, absError: abs, index: i, expected: e, actual: a, where };
    }
  }
  return worst;
}

/** Formats a {@linkcode Worst} for messages. */
export function formatWorst(w: Worst): string {
  return `${w.where}: worst element ${w.index}: got ${w.actual}, expected ${w.expected} (abs ${
    w.absError.toExponential(3)
  }, rel ${w.relError.toExponential(3)})`;
}

/** Throws an `AssertionError` describing the worst element when it exceeds `tolerance`. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  where: string,
): Worst {
  const w = compareArrays(actual, expected, where);
  if (!(w.relError <= tolerance)) {
    throw new AssertionError({ message: `${formatWorst(w)} exceeds tolerance ${tolerance}` });
  }
  return w;
}

function sameConfigValue(actual: unknown, expected: unknown): boolean {
  if (expected === "Infinity" || expected === "-Infinity") {
    return actual === expected || actual === (expected === "Infinity" ? Infinity : -Infinity);
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length &&
      expected.every((e, i) => sameConfigValue(actual[i], e));
  }
  return Object.is(actual, expected) || (actual === undefined && expected === null);
}

// ---------------------------------------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------------------------------------

/** Options of {@linkcode replayRun}. */
export interface ReplayOptions {
  /** Builds the scheduler under test from a config (from_config semantics). */
  create: (config: Record<string, unknown>) => Scheduler;
  /**
   * Per-step options; default {@linkcode defaultStepOptions} (η and the fixture noise). Called once per step, after
   * `setTimesteps`, so a generator created on `k === 0` is shared by the whole run.
   */
  stepOptions?: (k: number, run: FixtureRun, step: FixtureStep) => StepOptions;
  /** Relative tolerance on every `prev_sample` element and the model input. @default 1e-6 */
  tolerance?: number;
  /** Relative tolerance on timesteps (0 = exact; fractional Karras timesteps may need ~1e-6). @default 0 */
  timestepTolerance?: number;
  /** Relative tolerance on `initNoiseSigma`. @default 0 */
  initNoiseSigmaTolerance?: number;
  /** When given, the scheduler's sigmas are compared with the run's `sigmas` (same tolerance as timesteps or 1e-6). */
  sigmas?: (scheduler: Scheduler) => ArrayLike<number>;
  /** Relative tolerance on sigmas. @default 1e-6 */
  sigmaTolerance?: number;
  /** Skip the `effective_config` comparison for these keys (documented deviations only). */
  ignoreConfigKeys?: readonly string[];
}

/** What {@linkcode replayRun} measured. */
export interface ReplayReport {
  /** The run's id. */
  id: string;
  /** Worst `prev_sample` element over all steps. */
  worst: Worst;
  /** Number of steps replayed. */
  steps: number;
}

/**
 * Replays one `ok` run and asserts it matches: resolved config ⊇ `effective_config`, timesteps, `initNoiseSigma`,
 * `initial_sample`, each model input (`scaleModelInput` vs the recorded divisor) and each `prev_sample` within
 * `tolerance·max(1, |value|)`. Returns the worst `prev_sample` element.
 *
 * @throws {AssertionError} naming the run, the step and the worst element.
 */
export function replayRun(fixture: SchedulerFixture, run: FixtureRun, options: ReplayOptions): ReplayReport {
  if (run.status !== "ok") throw new Error(`run ${run.id} has status ${run.status}; use assertRunRejected`);
  const tol = options.tolerance ?? 1e-6;
  const fail = (message: string): never => {
    throw new AssertionError({ message: `${run.id}: ${message}` });
  };
  const scheduler = options.create(runConfig(fixture, run));
  if (scheduler.className !== run.scheduler) fail(`className ${scheduler.className}, expected ${run.scheduler}`);

  const ignore = new Set(options.ignoreConfigKeys ?? []);
  for (const [key, expected] of Object.entries(run.effective_config ?? {})) {
    if (ignore.has(key)) continue;
    if (!sameConfigValue(scheduler.config[key], expected)) {
      fail(`config.${key} is ${JSON.stringify(scheduler.config[key])}, diffusers has ${JSON.stringify(expected)}`);
    }
  }

  scheduler.setTimesteps(run.num_inference_steps);
  const timesteps = Array.from(scheduler.timesteps);
  const expectedTimesteps = run.timesteps ?? [];
  const tw = compareArrays(timesteps, expectedTimesteps, "timesteps");
  if (!(tw.relError <= (options.timestepTolerance ?? 0))) {
    fail(`timesteps [${timesteps.join(", ")}] differ from [${expectedTimesteps.join(", ")}] (${formatWorst(tw)})`);
  }
  if (options.sigmas !== undefined && run.sigmas != null) {
    const sw = compareArrays(options.sigmas(scheduler), run.sigmas, "sigmas");
    if (!(sw.relError <= (options.sigmaTolerance ?? 1e-6))) fail(formatWorst(sw));
  }
  const sigmaErr = Math.abs(scheduler.initNoiseSigma - (run.init_noise_sigma ?? NaN)) /
    Math.max(1, Math.abs(run.init_noise_sigma ?? NaN));
  if (!(sigmaErr <= (options.initNoiseSigmaTolerance ?? 0))) {
    fail(`initNoiseSigma ${scheduler.initNoiseSigma}, expected ${run.init_noise_sigma}`);
  }

  const shape = fixture.shape;
  const base = fixtureBaseSample(shape);
  let sample = base;
  if (run.loop_style === "sr_pipeline") {
    const s = f32(scheduler.initNoiseSigma);
    sample = new Tensor(base.data.map((x) => x * s), shape);
  }
  if (run.initial_sample !== undefined) {
    const w = compareArrays(sample.data, run.initial_sample, "initial_sample");
    if (!(w.relError <= tol)) fail(formatWorst(w));
  }

  const steps = run.steps ?? [];
  if (steps.length !== timesteps.length) {
    fail(`${timesteps.length} timesteps but the run recorded ${steps.length} steps`);
  }
  let worst: Worst = { relError: 0, absError: 0, index: -1, expected: NaN, actual: NaN, where: "none" };
  for (const [k, step] of steps.entries()) {
    const t = timesteps[k]!;
    let modelInput = sample;
    if (run.loop_style === "sr_pipeline") {
      const before = sample.data.slice();
      modelInput = scheduler.scaleModelInput(sample, t);
      const w = compareArrays(sample.data, before, `step ${k} sample after scaleModelInput`);
      if (w.absError !== 0) fail(`scaleModelInput mutated its input (${formatWorst(w)})`);
      const divisor = f32(step.scale_model_input_divisor);
      const expectedInput = sample.data.map((x) => x / divisor);
      const wi = compareArrays(modelInput.data, expectedInput, `step ${k} scaleModelInput`);
      if (!(wi.relError <= tol)) fail(formatWorst(wi));
    }
    const modelOutput = fixtureModelOutput(modelInput, step.t);
    const stepOptions = options.stepOptions?.(k, run, step) ?? defaultStepOptions(run, k, shape);
    const { prevSample } = scheduler.step(modelOutput, t, sample, stepOptions);
    const w = compareArrays(prevSample.data, step.prev_sample, `step ${k} (t=${t}) prev_sample`);
    if (!(w.relError <= tol)) fail(`${formatWorst(w)} exceeds tolerance ${tol}`);
    if (w.relError > worst.relError || worst.index < 0) worst = w;
    sample = prevSample;
  }
  if (run.final_sample !== undefined) {
    const w = compareArrays(sample.data, run.final_sample, "final_sample");
    if (!(w.relError <= tol)) fail(formatWorst(w));
  }
  return { id: run.id, worst, steps: steps.length };
}

/**
 * Asserts a run diffusers rejected (`status: "error"`) is rejected too: constructing the scheduler or calling
 * `setTimesteps` must throw a `RangeError` or `TypeError`. Returns the error message.
 */
export function assertRunRejected(
  fixture: SchedulerFixture,
  run: FixtureRun,
  create: (config: Record<string, unknown>) => Scheduler,
): string {
  try {
    const s = create(runConfig(fixture, run));
    s.setTimesteps(run.num_inference_steps);
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) return e.message;
    throw new AssertionError({ message: `${run.id}: expected a RangeError or TypeError, got ${e}` });
  }
  throw new AssertionError({ message: `${run.id}: diffusers rejects this run (${run.error}) but no error was thrown` });
}

/**
 * Replays every run of a fixture as `t.step`s: `ok` runs with {@linkcode replayRun}, `error` runs with
 * {@linkcode assertRunRejected}. Returns the reports of the ok runs (for a summary of the worst errors).
 */
export async function replayFixture(
  t: Deno.TestContext,
  fixture: SchedulerFixture,
  options: ReplayOptions,
): Promise<ReplayReport[]> {
  const reports: ReplayReport[] = [];
  for (const run of fixture.runs) {
    await t.step(run.id, () => {
      if (run.status === "error") assertRunRejected(fixture, run, options.create);
      else reports.push(replayRun(fixture, run, options));
    });
  }
  return reports;
}

/** How many runs a fixture file must hold, for {@linkcode replaySchedulerFixture}. */
export interface ExpectedRuns {
  /** All runs of the file. */
  runs: number;
  /** The runs diffusers rejected (`status: "error"`). @default 0 */
  rejected?: number;
  /** Whether every `ok` run must match diffusers bit for bit (worst absolute error 0). @default false */
  bitExact?: boolean;
}

/**
 * The preamble of every scheduler's reference-run test: loads `<name>.json.gz`, checks its run counts, replays it
 * ({@linkcode replayFixture}) and checks that every `ok` run produced a report (bit-exact ones when `bitExact`).
 * Returns the reports.
 */
export async function replaySchedulerFixture(
  t: Deno.TestContext,
  name: string,
  expected: ExpectedRuns,
  options: ReplayOptions,
): Promise<ReplayReport[]> {
  const fixture = await loadSchedulerFixture(name);
  const rejected = expected.rejected ?? 0;
  assert.equal(fixture.runs.length, expected.runs, `${name}: runs`);
  assert.equal(fixture.runs.filter((r) => r.status === "error").length, rejected, `${name}: rejected runs`);
  const reports = await replayFixture(t, fixture, options);
  assert.equal(reports.length, expected.runs - rejected, `${name}: replayed runs`);
  if (expected.bitExact) assertBitExact(reports);
  return reports;
}

/** Asserts that every replayed run matched diffusers bit for bit (its worst element has absolute error 0). */
export function assertBitExact(reports: readonly ReplayReport[]): void {
  for (const r of reports) assert.equal(r.worst.absError, 0, `${r.id}: ${formatWorst(r.worst)}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// diffusers' own scheduler tests (tests/schedulers/test_schedulers.py)
// ---------------------------------------------------------------------------------------------------------------------

/** One recomputed diffusers test: expected (pinned) and recomputed sums/means plus the final sample. */
export interface DiffusersTestResult {
  /** e.g. `test_scheduler_ddim.py::test_full_loop_no_noise`. */
  test: string;
  /** The value the test pins; `null` where it pins only the mean (most of `test_scheduler_dpm_multi.py`). */
  expected_result_sum: number | null;
  /** The value the test pins. */
  expected_result_mean: number;
  /** What diffusers computed (torch 1.13). */
  result_sum: number;
  /** What diffusers computed. */
  result_mean: number;
  /** The final sample, flattened in logical (permuted) order. */
  final_sample: number[];
}

/** Loads `diffusers_scheduler_tests.json.gz` and returns the result of `test` (`file.py::name`). */
export async function loadDiffusersTest(test: string): Promise<DiffusersTestResult> {
  const d = await loadGzJson<{ results: DiffusersTestResult[] }>("diffusers_scheduler_tests.json.gz");
  const r = d.results.find((x) => x.test === test);
  if (r === undefined) throw new Error(`no recomputed diffusers test named ${test}`);
  return r;
}

/**
 * diffusers' `dummy_sample_deter` (`flip = false`) or `dummy_noise_deter` (`flip = true`):
 * `arange(768)` (flipped) reshaped to [3, 8, 8, 4], divided by 768, permuted to [4, 3, 8, 8]; returned contiguous
 * in that logical order (the recomputed `final_sample`s are flattened in the same order).
 */
export function dummyDeter(flip = false): Tensor {
  const n = 4 * 3 * 8 * 8;
  const out = Tensor.zeros([4, 3, 8, 8]);
  for (let d = 0; d < 4; d++) {
    for (let a = 0; a < 3; a++) {
      for (let b = 0; b < 8; b++) {
        for (let c = 0; c < 8; c++) {
          const src = a * 256 + b * 32 + c * 4 + d; // index into the [3, 8, 8, 4] view
          const v = flip ? n - 1 - src : src;
          out.data[((d * 3 + a) * 8 + b) * 8 + c] = v / n;
        }
      }
    }
  }
  return out;
}

/** diffusers' `dummy_model`: `sample · t / (t + 1)` in float32 (t cast to float32). */
export function dummyModel(sample: Tensor, t: number): Tensor {
  const tf = f32(t);
  const d = f32(tf + 1);
  return new Tensor(sample.data.map((x) => f32(x * tf) / d), sample.shape);
}

/** Options of {@linkcode assertDiffusersResult}. */
export interface DiffusersResultOptions {
  /** Relative tolerance on every element of the final sample ({@linkcode assertClose}). */
  tolerance: number;
  /** Whether the final sample must equal diffusers' bit for bit. @default false */
  bitExact?: boolean;
  /** Allowed |Σ|x| − pinned sum| (the diffusers tests' own check). @default 1e-2 */
  sumTolerance?: number;
  /** Whether the test may pin no sum (`expected_result_sum: null`; then only the mean is checked). @default false */
  sumOptional?: boolean;
}

/**
 * Checks a full loop's final sample against a recomputed diffusers test: element-wise against diffusers' final sample,
 * then the test's own assertions, `|Σ|x| − expected_result_sum| < sumTolerance` and
 * `|mean|x| − expected_result_mean| < 1e-3`.
 *
 * @throws {AssertionError} naming the test and the failing check.
 */
export function assertDiffusersResult(sample: Tensor, ref: DiffusersTestResult, options: DiffusersResultOptions): void {
  const name = ref.test;
  const w = assertClose(sample.data, ref.final_sample, options.tolerance, name);
  if (options.bitExact) assert.equal(w.absError, 0, `${name}: bit-exact against diffusers' final sample`);
  const sum = absSum(sample), mean = absMean(sample);
  if (ref.expected_result_sum !== null || !options.sumOptional) {
    const expected = ref.expected_result_sum ?? NaN;
    assert.ok(Math.abs(sum - expected) < (options.sumTolerance ?? 1e-2), `${name}: sum ${sum} vs ${expected}`);
  }
  assert.ok(Math.abs(mean - ref.expected_result_mean) < 1e-3, `${name}: mean ${mean} vs ${ref.expected_result_mean}`);
}

/** A σ scheduler as diffusers' tests drive it: {@linkcode Scheduler} plus `addNoise`. */
export interface NoisingScheduler extends Scheduler {
  /** diffusers' `add_noise`. */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number): Tensor;
}

/** Options of {@linkcode diffusersSigmaLoop}. */
export interface DiffusersLoopOptions {
  /** Argument of `setTimesteps`. @default 10 */
  numInferenceSteps?: number;
  /**
   * `test_full_loop_with_noise`: start at `timesteps[tStart]` from `add_noise(sample, dummy_noise_deter, t)`.
   * @default 0
   */
  tStart?: number;
  /** Passed to every `step` (Euler, Euler-ancestral). */
  generator?: Generator;
}

/**
 * The full loop of diffusers' LMS, Euler, Euler-ancestral and DPM-Solver tests: `dummy_sample_deter · init_noise_sigma`
 * (noised at `timesteps[tStart]` for `tStart > 0`), then `scale_model_input`, `dummy_model` and `step` per timestep;
 * as in those tests, the scaled sample is also what `step` receives. For DPM-Solver (`init_noise_sigma` 1, identity
 * `scale_model_input`) this is its test's unscaled loop.
 */
export function diffusersSigmaLoop(scheduler: NoisingScheduler, options: DiffusersLoopOptions = {}): Tensor {
  const { numInferenceSteps = 10, tStart = 0, generator } = options;
  scheduler.setTimesteps(numInferenceSteps);
  const sigma0 = f32(scheduler.initNoiseSigma);
  let sample = new Tensor(dummyDeter().data.map((x) => x * sigma0), [4, 3, 8, 8]);
  const timesteps = Array.from(scheduler.timesteps).slice(tStart);
  if (tStart > 0) sample = scheduler.addNoise(sample, dummyDeter(true), timesteps[0]!);
  const stepOptions = generator === undefined ? undefined : { generator };
  for (const t of timesteps) {
    sample = scheduler.scaleModelInput(sample, t);
    sample = scheduler.step(dummyModel(sample, t), t, sample, stepOptions).prevSample;
  }
  return sample;
}

/**
 * A conformance suite every {@linkcode Scheduler} must pass, in the spirit of diffusers' `SchedulerCommonTest` but
 * without per-class special cases: capabilities are declared through options instead.
 *
 * ```ts
 * import { runSchedulerConformance } from "./_conformance_test_utils.ts";
 * import { EulerAncestralDiscreteScheduler } from "./euler_ancestral_discrete.ts";
 * import { Generator } from "../random/mod.ts";
 * Deno.test("EulerAncestralDiscreteScheduler conforms to the Scheduler contract", (t) =>
 *   runSchedulerConformance(t, {
 *     create: (config) => new EulerAncestralDiscreteScheduler(config),
 *     stepOptions: (generator) => ({ generator }),
 *     makeGenerator: (seed) => new Generator(seed),
 *   }));
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import type { Generator } from "../random/mod.ts";
import type { Scheduler, StepOptions } from "./types.ts";

/** Options of {@linkcode runSchedulerConformance}. */
export interface ConformanceOptions {
  /** Builds the scheduler under test; must accept its own `.config` back (from_config round trip). */
  create: (config: Record<string, unknown>) => Scheduler;
  /** The config the suite uses. @default {} (the class defaults) */
  config?: Record<string, unknown>;
  /** Steps of the test loops. @default 10 */
  numInferenceSteps?: number;
  /** Sample shape. @default [2, 4, 8, 8] */
  shape?: readonly number[];
  /**
   * Step options for one run, given that run's generator (or `undefined` without `makeGenerator`). Use it to make
   * the loop stochastic, e.g. `(g) => ({ eta: 1, generator: g })` for DDIM. @default () => ({})
   */
  stepOptions?: (generator: Generator | undefined) => StepOptions;
  /** Creates a seeded generator; enables the same-seed / different-seed checks. */
  makeGenerator?: (seed: number) => Generator;
  /** Whether a different seed must change the output (true for stochastic step options). @default false */
  stochastic?: boolean;
  /** Whether timesteps must be integers. @default false */
  integerTimesteps?: boolean;
}

function deterministicSample(shape: readonly number[]): Tensor {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  return t;
}

/** A smooth stand-in for the UNet: depends on the input and the timestep, never on hidden state. */
function fakeModel(x: Tensor, t: number): Tensor {
  return new Tensor(x.data.map((v, i) => 0.1 * v + ((0.01 * t) / 1000) * Math.cos(i)), x.shape);
}

interface LoopResult {
  final: Tensor;
  timesteps: number[];
}

function loop(scheduler: Scheduler, options: ConformanceOptions, generator: Generator | undefined): LoopResult {
  const shape = options.shape ?? [2, 4, 8, 8];
  scheduler.setTimesteps(options.numInferenceSteps ?? 10);
  const timesteps = Array.from(scheduler.timesteps);
  const stepOptions = options.stepOptions?.(generator) ?? {};
  let sample = new Tensor(deterministicSample(shape).data.map((v) => v * scheduler.initNoiseSigma), shape);
  for (const t of timesteps) {
    const input = scheduler.scaleModelInput(sample, t);
    const out = scheduler.step(fakeModel(input, t), t, sample, stepOptions);
    sample = out.prevSample;
  }
  return { final: sample, timesteps };
}

function assertSameData(a: Tensor, b: Tensor, message: string): void {
  assert.deepEqual(a.shape, b.shape, message);
  for (let i = 0; i < a.size; i++) {
    if (!Object.is(a.data[i], b.data[i])) {
      assert.fail(`${message}: element ${i} differs (${a.data[i]} vs ${b.data[i]})`);
    }
  }
}

/**
 * Runs the contract checks as `t.step`s: identity and config round trip, errors before `setTimesteps` and for bad
 * step counts or shapes, monotonic timesteps, output shapes and finiteness, inputs never mutated, state reset by
 * `setTimesteps`, and reproducibility for the same seed.
 */
export async function runSchedulerConformance(t: Deno.TestContext, options: ConformanceOptions): Promise<void> {
  const config = options.config ?? {};
  const shape = options.shape ?? [2, 4, 8, 8];
  const n = options.numInferenceSteps ?? 10;
  const gen = (seed: number) => options.makeGenerator?.(seed);

  await t.step("identity, constants and config round trip", () => {
    const s = options.create(config);
    assert.equal(typeof s.className, "string");
    assert.ok(s.className.endsWith("Scheduler"), `className ${s.className}`);
    assert.ok(Object.isFrozen(s.config), "config must be frozen");
    assert.equal(s.config["_class_name"], s.className);
    assert.ok(Number.isFinite(s.initNoiseSigma) && s.initNoiseSigma > 0, `initNoiseSigma ${s.initNoiseSigma}`);
    assert.ok(Number.isInteger(s.order) && s.order >= 1, `order ${s.order}`);
    const again = options.create({ ...s.config });
    assert.deepEqual({ ...again.config }, { ...s.config }, "create(scheduler.config) must reproduce the config");
  });

  await t.step("step() before setTimesteps() throws and timesteps start empty", () => {
    const s = options.create(config);
    assert.equal(s.timesteps.length, 0);
    const x = deterministicSample(shape);
    assert.throws(() => s.step(fakeModel(x, 500), 500, x, options.stepOptions?.(gen(0)) ?? {}), /setTimesteps/);
  });

  await t.step("setTimesteps() rejects counts that are not integers in [1, T]", () => {
    const s = options.create(config);
    const T = s.config["num_train_timesteps"];
    assert.equal(typeof T, "number");
    for (const bad of [0, -1, 1.5, NaN, Infinity, (T as number) + 1]) {
      assert.throws(() => s.setTimesteps(bad), RangeError, `setTimesteps(${bad})`);
    }
  });

  await t.step("timesteps are finite, non-increasing and within [0, T)", () => {
    const s = options.create(config);
    const T = s.config["num_train_timesteps"] as number;
    s.setTimesteps(n);
    const ts = Array.from(s.timesteps);
    assert.ok(ts.length >= n, `${ts.length} timesteps for ${n} steps`);
    for (const [i, v] of ts.entries()) {
      assert.ok(Number.isFinite(v) && v >= 0 && v < T, `timesteps[${i}] = ${v}`);
      if (options.integerTimesteps) assert.ok(Number.isInteger(v), `timesteps[${i}] = ${v} is not an integer`);
      if (i > 0) assert.ok(v <= ts[i - 1]!, `timesteps increase at ${i}: ${ts[i - 1]} → ${v}`);
    }
  });

  await t.step("step() keeps shapes, gives finite values and never mutates or aliases its inputs", () => {
    const s = options.create(config);
    s.setTimesteps(n);
    const stepOptions = options.stepOptions?.(gen(0)) ?? {};
    let sample = deterministicSample(shape);
    for (const t of Array.from(s.timesteps)) {
      const sampleCopy = sample.clone();
      const input = s.scaleModelInput(sample, t);
      assertSameData(sample, sampleCopy, "scaleModelInput mutated sample");
      assert.deepEqual(input.shape, sample.shape);
      const modelOutput = fakeModel(input, t);
      const modelCopy = modelOutput.clone();
      const out = s.step(modelOutput, t, sample, stepOptions);
      assertSameData(sample, sampleCopy, `step(t=${t}) mutated sample`);
      assertSameData(modelOutput, modelCopy, `step(t=${t}) mutated modelOutput`);
      assert.deepEqual(out.prevSample.shape, sample.shape);
      assert.notEqual(out.prevSample.data.buffer, sample.data.buffer, "prevSample aliases sample");
      assert.notEqual(out.prevSample.data.buffer, modelOutput.data.buffer, "prevSample aliases modelOutput");
      if (out.predOriginalSample !== undefined) assert.deepEqual(out.predOriginalSample.shape, sample.shape);
      for (const v of out.prevSample.data) assert.ok(Number.isFinite(v), `non-finite prevSample at t=${t}`);
      sample = out.prevSample;
    }
  });

  await t.step("step() rejects a model output whose shape differs from the sample", () => {
    const s = options.create(config);
    s.setTimesteps(n);
    const t0 = s.timesteps[0]!;
    const x = deterministicSample(shape);
    const wrong = Tensor.zeros([...shape.slice(0, -1), shape[shape.length - 1]! + 1]);
    assert.throws(() => s.step(wrong, t0, x, options.stepOptions?.(gen(0)) ?? {}), TypeError);
  });

  await t.step("setTimesteps() resets per-run state: a second run on the same instance is identical", () => {
    const s = options.create(config);
    const first = loop(s, options, gen(0));
    const second = loop(s, options, gen(0));
    assert.deepEqual(second.timesteps, first.timesteps);
    assertSameData(second.final, first.final, "second run differs");
    // A different step count in between must not leak into the next run either.
    s.setTimesteps(Math.max(n - 3, 5));
    const third = loop(s, options, gen(0));
    assertSameData(third.final, first.final, "run after another setTimesteps differs");
  });

  await t.step("two instances with the same seed give identical output", () => {
    const a = loop(options.create(config), options, gen(1234));
    const b = loop(options.create(config), options, gen(1234));
    assertSameData(a.final, b.final, "same seed, different output");
    if (options.stochastic && options.makeGenerator !== undefined) {
      const c = loop(options.create(config), options, gen(4321));
      assert.ok(c.final.data.some((v, i) => v !== a.final.data[i]), "a different seed must change the output");
    }
  });
}

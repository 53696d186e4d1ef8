import assert from "node:assert/strict";
import { f32, Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import { EulerAncestralDiscreteScheduler } from "./euler_ancestral_discrete.ts";
import {
  assertBitExact,
  assertDiffusersResult,
  diffusersSigmaLoop,
  loadDiffusersTest,
  loadSchedulerFixture,
  replayFixture,
  replaySchedulerFixture,
} from "./_fixture_test_utils.ts";
import { runSchedulerConformance } from "./_conformance_test_utils.ts";

Deno.test("EulerAncestralDiscreteScheduler replays every reference run with a seed-0 Generator", async (t) => {
  let generator = new Generator(0);
  await replaySchedulerFixture(t, "euler_ancestral_discrete", { runs: 10, bitExact: true }, {
    create: (c) => new EulerAncestralDiscreteScheduler(c),
    tolerance: 1e-6,
    sigmas: (s) => (s as EulerAncestralDiscreteScheduler).sigmas,
    sigmaTolerance: 0,
    // One torch.Generator().manual_seed(0) per run, shared by all its steps.
    stepOptions: (k) => {
      if (k === 0) generator = new Generator(0);
      return { generator };
    },
  });
});

Deno.test("EulerAncestralDiscreteScheduler replays every reference run with the recorded noise", async (t) => {
  const fixture = await loadSchedulerFixture("euler_ancestral_discrete");
  const reports = await replayFixture(t, fixture, {
    create: (c) => new EulerAncestralDiscreteScheduler(c),
    tolerance: 1e-6,
    stepOptions: (_k, _run, step) => ({ varianceNoise: new Tensor(Float32Array.from(step.noise!), fixture.shape) }),
  });
  assertBitExact(reports);
});

Deno.test("EulerAncestralDiscreteScheduler reproduces diffusers' test_scheduler_euler_ancestral.py", async (t) => {
  const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };
  const cases: [string, Record<string, unknown>, number][] = [
    ["test_full_loop_no_noise", {}, 0],
    ["test_full_loop_with_v_prediction", { prediction_type: "v_prediction" }, 0],
    ["test_full_loop_with_noise", {}, 8],
  ];
  for (const [name, overrides, tStart] of cases) {
    await t.step(name, async () => {
      const ref = await loadDiffusersTest(`test_scheduler_euler_ancestral.py::${name}`);
      const scheduler = new EulerAncestralDiscreteScheduler({ ...base, ...overrides });
      const out = diffusersSigmaLoop(scheduler, { tStart, generator: new Generator(0) });
      assertDiffusersResult(out, ref, { tolerance: 1e-6 });
    });
  }
});

Deno.test("EulerAncestralDiscreteScheduler conforms to the Scheduler contract", (t) =>
  runSchedulerConformance(t, {
    create: (c) => new EulerAncestralDiscreteScheduler(c),
    stepOptions: (generator) => ({ generator }),
    makeGenerator: (seed) => new Generator(seed),
    stochastic: true,
  }));

Deno.test("EulerAncestralDiscreteScheduler draws noise on every step, including the last", () => {
  const s = new EulerAncestralDiscreteScheduler();
  s.setTimesteps(3);
  const shape = [1, 4, 2, 2];
  const x = new Tensor(Float32Array.from({ length: 16 }, (_, i) => i / 16 - 0.5), shape);
  const g = new Generator(7);
  for (const t of s.timesteps) s.step(x, t, x, { generator: g });
  // Three draws of 16 values consumed: the generator is where a fresh one is after three randn([1, 4, 2, 2]).
  const reference = new Generator(7);
  for (let k = 0; k < 3; k++) reference.randn(shape);
  assert.deepEqual(g.randn([4]).data, reference.randn([4]).data);
  // The last step has σ_up = 0: its noise does not change the result, the draw still happens.
  s.setTimesteps(3);
  s.setBeginIndex(2);
  const a = s.step(x, 0, x, { varianceNoise: new Tensor(new Float32Array(16).fill(5), shape) }).prevSample;
  s.setTimesteps(3);
  s.setBeginIndex(2);
  const b = s.step(x, 0, x, { varianceNoise: Tensor.zeros(shape) }).prevSample;
  assert.deepEqual(a.data, b.data);
});

Deno.test("EulerAncestralDiscreteScheduler rejects bad configs and calls", async (t) => {
  await t.step("prediction_type sample is not implemented (as in diffusers)", () => {
    assert.throws(
      () => new EulerAncestralDiscreteScheduler({ prediction_type: "sample" }),
      (e: unknown) => e instanceof RangeError && /prediction_type/.test(e.message),
    );
    assert.throws(() => new EulerAncestralDiscreteScheduler({ timestep_spacing: "even" }), /timestep_spacing/);
  });
  await t.step("noise must come from a generator or explicit noise", () => {
    const s = new EulerAncestralDiscreteScheduler();
    s.setTimesteps(2);
    const x = Tensor.zeros([1, 4, 2, 2]);
    assert.throws(() => s.step(x, 999, x), (e: unknown) => e instanceof TypeError && /generator/.test(e.message));
    assert.throws(
      () => s.step(x, 999, x, { generator: new Generator(0), varianceNoise: x }),
      /either options.generator or options.varianceNoise/,
    );
    assert.throws(() => s.step(x, 999, x, { varianceNoise: Tensor.zeros([4, 4]) }), /varianceNoise shape/);
  });
  await t.step("state and arguments", () => {
    const s = new EulerAncestralDiscreteScheduler();
    const x = Tensor.zeros([1, 4, 2, 2]);
    assert.throws(() => s.step(x, 999, x, { generator: new Generator(0) }), /setTimesteps/);
    assert.throws(() => s.setTimesteps(1001), /got 1001/);
    s.setTimesteps(2);
    assert.throws(() => s.step(x, 998, x, { generator: new Generator(0) }), /timestep 998/);
    assert.throws(() => s.step(Tensor.zeros([2, 4, 2, 2]), 999, x, { generator: new Generator(0) }), TypeError);
  });
});

Deno.test("EulerAncestralDiscreteScheduler rescale_betas_zero_snr and spacing", () => {
  const s = new EulerAncestralDiscreteScheduler({ rescale_betas_zero_snr: true });
  assert.equal(s.alphasCumprod.at(-1), 2 ** -24);
  s.setTimesteps(4);
  assert.equal(s.sigmas[0], f32(Math.sqrt(f32(f32(1 - 2 ** -24) / 2 ** -24))));
  const trailing = new EulerAncestralDiscreteScheduler({ timestep_spacing: "trailing" });
  trailing.setTimesteps(4);
  assert.deepEqual(Array.from(trailing.timesteps), [999, 749, 499, 249]);
  assert.equal(trailing.initNoiseSigma, trailing.sigmas[0]);
});

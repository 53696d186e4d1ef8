import assert from "node:assert/strict";
import { f32, Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import { EulerDiscreteScheduler } from "./euler_discrete.ts";
import {
  assertClose,
  assertDiffusersResult,
  diffusersSigmaLoop,
  loadDiffusersTest,
  loadGzJson,
  replaySchedulerFixture,
} from "./_fixture_test_utils.ts";
import { runSchedulerConformance } from "./_conformance_test_utils.ts";

Deno.test("EulerDiscreteScheduler replays every diffusers reference run in euler_discrete.json.gz", async (t) => {
  // float32 arithmetic in diffusers' order: bit-identical, not merely within 1e-6.
  await replaySchedulerFixture(t, "euler_discrete", { runs: 16, bitExact: true }, {
    create: (c) => new EulerDiscreteScheduler(c),
    tolerance: 1e-6,
    // Karras timesteps go through numpy's float32 log; the fixtures README allows 2 float32 ulp.
    timestepTolerance: 2.4e-7,
    sigmas: (s) => (s as EulerDiscreteScheduler).sigmas,
    sigmaTolerance: 0,
  });
});

Deno.test("EulerDiscreteScheduler reproduces diffusers' test_scheduler_euler.py full loops", async (t) => {
  const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };
  const cases: [string, Record<string, unknown>, number][] = [
    ["test_full_loop_no_noise", {}, 0],
    ["test_full_loop_with_v_prediction", { prediction_type: "v_prediction" }, 0],
    ["test_full_loop_device_karras_sigmas", { use_karras_sigmas: true }, 0],
    ["test_full_loop_with_noise", {}, 8],
  ];
  for (const [name, overrides, tStart] of cases) {
    await t.step(name, async () => {
      const ref = await loadDiffusersTest(`test_scheduler_euler.py::${name}`);
      const scheduler = new EulerDiscreteScheduler({ ...base, ...overrides });
      const out = diffusersSigmaLoop(scheduler, { tStart, generator: new Generator(0) });
      assertDiffusersResult(out, ref, { tolerance: 1e-6 });
    });
  }
});

Deno.test("EulerDiscreteScheduler conforms to the Scheduler contract", async (t) => {
  await t.step("defaults", (t) => runSchedulerConformance(t, { create: (c) => new EulerDiscreteScheduler(c) }));
  await t.step("Karras σ, v-prediction", (t) =>
    runSchedulerConformance(t, {
      create: (c) => new EulerDiscreteScheduler(c),
      config: { use_karras_sigmas: true, prediction_type: "v_prediction" },
    }));
  await t.step("churn with a generator", (t) =>
    runSchedulerConformance(t, {
      create: (c) => new EulerDiscreteScheduler(c),
      stepOptions: (generator) => ({ generator, sChurn: 1 }),
      makeGenerator: (seed) => new Generator(seed),
      stochastic: true,
    }));
});

Deno.test("EulerDiscreteScheduler σ options follow diffusers' set_timesteps", async (t) => {
  const schedules = await loadGzJson<Record<string, { sigmas_train_ascending: number[] }>>("schedules.json.gz");
  const train = schedules["diffusers_defaults"]!.sigmas_train_ascending.map(f32);
  await t.step("known σ_max and initNoiseSigma per spacing", () => {
    const text2im = new EulerDiscreteScheduler({ beta_start: 0.00085, beta_end: 0.012, beta_schedule: "linear" });
    text2im.setTimesteps(50);
    assert.ok(Math.abs(text2im.initNoiseSigma - 25.146116) < 1e-5);
    const sr = new EulerDiscreteScheduler({ beta_start: 0.0015, beta_end: 0.0155, beta_schedule: "scaled_linear" });
    sr.setTimesteps(50);
    assert.ok(Math.abs(sr.initNoiseSigma - 38.658955) < 1e-5);
    const leading = new EulerDiscreteScheduler({ timestep_spacing: "leading" });
    leading.setTimesteps(4); // 750, 500, 250, 0
    assert.deepEqual(Array.from(leading.timesteps), [750, 500, 250, 0]);
    assert.equal(leading.initNoiseSigma, f32(Math.sqrt(f32(f32(train[750]! ** 2) + 1))));
  });
  await t.step("final_sigmas_type sigma_min ends at σ_train[0]", () => {
    const s = new EulerDiscreteScheduler({ final_sigmas_type: "sigma_min" });
    s.setTimesteps(5);
    assert.equal(s.sigmas.at(-1), train[0]);
    assert.equal(s.sigmas.at(-2), train[0]); // the last timestep is 0 as well
  });
  await t.step("Karras with sigma_min / sigma_max (diffusers' test_karras_sigmas config)", () => {
    const s = new EulerDiscreteScheduler({ use_karras_sigmas: true, sigma_min: 0.02, sigma_max: 700.0 });
    s.setTimesteps(10);
    assert.equal(s.sigmas[0], f32(700));
    assert.equal(s.sigmas[9], f32(0.02));
    assert.equal(s.sigmas[10], 0);
    // ρ = 7: σ_i^(1/7) is linear in i.
    const r = Array.from(s.sigmas.subarray(0, 10), (x) => x ** (1 / 7));
    for (let i = 1; i < 9; i++) assert.ok(Math.abs(r[i + 1]! - 2 * r[i]! + r[i - 1]!) < 1e-5);
    // `_sigma_to_t` as numpy 1.x computes it (float32 log table; recomputed with numpy from schedules.json): σ above
    // the training range (σ_max = 157.4) clips to the last timestep. numpy's SIMD float32 log is not correctly
    // rounded, hence the 2-ulp allowance of the fixtures README (937.54877 differs by 1 ulp here).
    const numpy = [
      999,
      999,
      999,
      937.5487670898438,
      841.412841796875,
      716.34326171875,
      538.9533081054688,
      273.2125549316406,
      55.77455139160156,
      2.2878668308258057,
    ];
    assertClose(s.timesteps, numpy, 2.4e-7, "Karras timesteps");
  });
  await t.step("log_linear interpolation: n + 1 log-spaced σ from σ_max to σ_min, then the final σ", () => {
    const s = new EulerDiscreteScheduler({ interpolation_type: "log_linear" });
    s.setTimesteps(4);
    assert.equal(s.timesteps.length, 4);
    assert.equal(s.sigmas.length, 6);
    const last = train.length - 1;
    assert.ok(Math.abs(s.sigmas[0]! / train[last]! - 1) < 3e-7);
    assert.ok(Math.abs(s.sigmas[4]! / train[0]! - 1) < 3e-7);
    const ratio = s.sigmas[1]! / s.sigmas[0]!;
    for (let i = 1; i < 4; i++) assert.ok(Math.abs(s.sigmas[i + 1]! / s.sigmas[i]! / ratio - 1) < 1e-5);
    assert.equal(s.sigmas[5], 0);
  });
  await t.step("continuous timesteps with v-prediction are 0.25·log σ", () => {
    const s = new EulerDiscreteScheduler({ timestep_type: "continuous", prediction_type: "v_prediction" });
    s.setTimesteps(6);
    assert.equal(s.timesteps.length, 6);
    for (let i = 0; i < 6; i++) assert.equal(s.timesteps[i], f32(0.25 * f32(Math.log(s.sigmas[i]!))));
    const x = Tensor.zeros([1, 1, 2, 2]);
    s.step(x, s.timesteps[0]!, x); // found by value
    assert.equal(s.stepIndex, 1);
    // With epsilon prediction `continuous` changes nothing (diffusers only special-cases v-prediction).
    const e = new EulerDiscreteScheduler({ timestep_type: "continuous" });
    e.setTimesteps(3);
    assert.deepEqual(Array.from(e.timesteps), [999, 499.5, 0]);
  });
  await t.step("rescale_betas_zero_snr sets ᾱ_T = 2⁻²⁴", () => {
    const s = new EulerDiscreteScheduler({ rescale_betas_zero_snr: true, beta_schedule: "scaled_linear" });
    assert.equal(s.alphasCumprod.at(-1), 2 ** -24);
    s.setTimesteps(3);
    assert.equal(s.sigmas[0], f32(Math.sqrt(f32(f32(1 - 2 ** -24) / 2 ** -24))));
    assert.ok(s.sigmas[0]! > 4095 && s.sigmas[0]! <= 4096);
  });
});

Deno.test("EulerDiscreteScheduler churn (s_churn) adds √(σ̂² − σ²)·s_noise·ε before the step", () => {
  const s = new EulerDiscreteScheduler();
  s.setTimesteps(10);
  const shape = [1, 2, 2, 2];
  const x = new Tensor(Float32Array.from({ length: 8 }, (_, i) => (i - 3.5) * 10), shape);
  const m = new Tensor(Float32Array.from({ length: 8 }, (_, i) => Math.cos(i)), shape);
  const noise = new Tensor(Float32Array.from({ length: 8 }, (_, i) => Math.sin(i + 1)), shape);
  const t0 = s.timesteps[0]!;
  const out = s.step(m, t0, x, { sChurn: 2, sNoise: 0.5, varianceNoise: noise }).prevSample;
  // Expected, written out from diffusers' formulas in float32.
  const sigma = s.sigmas[0]!, next = s.sigmas[1]!;
  const gamma = Math.min(2 / (s.sigmas.length - 1), 2 ** 0.5 - 1);
  const hat = f32(sigma * f32(gamma + 1));
  const c = f32(Math.sqrt(f32(f32(hat * hat) - f32(sigma * sigma))));
  for (let k = 0; k < 8; k++) {
    const xc = f32(x.data[k]! + f32(f32(noise.data[k]! * 0.5) * c));
    const x0 = f32(xc - f32(hat * m.data[k]!));
    const expected = f32(xc + f32(f32(f32(xc - x0) / hat) * f32(next - hat)));
    assert.equal(out.data[k], expected, `element ${k}`);
  }
  // Outside [sTmin, sTmax] there is no churn, hence no noise is needed.
  s.setTimesteps(10);
  const plain = s.step(m, t0, x).prevSample;
  s.setTimesteps(10);
  assert.deepEqual(s.step(m, t0, x, { sChurn: 2, sTmax: 1 }).prevSample.data, plain.data);
  s.setTimesteps(10);
  assert.throws(
    () => s.step(m, t0, x, { sChurn: 2 }),
    (e: unknown) => e instanceof TypeError && /generator/.test(e.message),
  );
  assert.throws(() => s.step(m, t0, x, { sChurn: -1 }), RangeError);
  assert.throws(() => s.step(m, t0, x, { sNoise: Number.NaN }), RangeError);
  assert.throws(() => s.step(m, t0, x, { sChurn: 2, varianceNoise: Tensor.zeros([1, 8]) }), /varianceNoise shape/);
});

Deno.test("EulerDiscreteScheduler rejects bad configs and calls", async (t) => {
  await t.step("config", () => {
    assert.throws(
      () => new EulerDiscreteScheduler({ use_karras_sigmas: true, use_exponential_sigmas: true }),
      (e: unknown) => e instanceof RangeError && /only one of/.test(e.message),
    );
    assert.throws(() => new EulerDiscreteScheduler({ interpolation_type: "cubic" }), /interpolation_type/);
    assert.throws(() => new EulerDiscreteScheduler({ final_sigmas_type: "one" }), /final_sigmas_type/);
    assert.throws(() => new EulerDiscreteScheduler({ timestep_type: "int" }), /timestep_type/);
    assert.throws(() => new EulerDiscreteScheduler({ sigma_min: -1 }), /sigma_min/);
    assert.throws(() => new EulerDiscreteScheduler({ prediction_type: "flow_prediction" }), /prediction_type/);
    assert.throws(() => new EulerDiscreteScheduler({ use_karras_sigmas: null }), TypeError);
  });
  await t.step("calls", () => {
    const s = new EulerDiscreteScheduler();
    const x = Tensor.zeros([1, 4, 2, 2]);
    assert.throws(() => s.step(x, 999, x), /setTimesteps/);
    assert.throws(() => s.setTimesteps(0), /numInferenceSteps must be an integer in \[1, 1000\]: got 0/);
    s.setTimesteps(3);
    assert.throws(() => s.scaleModelInput(x, 1), /timestep 1 is not one of/);
    assert.throws(() => s.step(Tensor.zeros([1, 4, 2, 1]), 999, x), TypeError);
    s.step(x, 999, x);
    s.step(x, 499.5, x);
    s.step(x, 0, x);
    assert.throws(() => s.step(x, 0, x), /steps are done/);
  });
});

Deno.test("EulerDiscreteScheduler addNoise uses the σ of the timestep, per batch item", () => {
  const s = new EulerDiscreteScheduler();
  s.setTimesteps(5);
  const x = new Tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
  const e = new Tensor(new Float32Array([1, 1, -1, -1]), [2, 2]);
  const ts = s.timesteps;
  const one = s.addNoise(x, e, ts[1]!);
  assert.deepEqual(Array.from(one.data), [1, 2, 3, 4].map((v, i) => f32(v + f32(e.data[i]! * s.sigmas[1]!))));
  const per = s.addNoise(x, e, [ts[0]!, ts[4]!]);
  assert.equal(per.data[0], f32(1 + s.sigmas[0]!));
  assert.equal(per.data[3], f32(4 - s.sigmas[4]!));
  assert.throws(() => s.addNoise(x, e, [ts[0]!, ts[1]!, ts[2]!]), /1 or 2/);
});

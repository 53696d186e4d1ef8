import assert from "node:assert/strict";
import { f32, Tensor } from "../tensor/mod.ts";
import { lmsCoefficient, lmsCoefficientExact, LMSDiscreteScheduler } from "./lms_discrete.ts";
import {
  assertClose,
  assertDiffusersResult,
  diffusersSigmaLoop,
  loadDiffusersTest,
  loadGzJson,
  replaySchedulerFixture,
} from "./_fixture_test_utils.ts";
import { runSchedulerConformance } from "./_conformance_test_utils.ts";

Deno.test("LMSDiscreteScheduler replays every diffusers reference run in lms_discrete.json.gz", async (t) => {
  // The coefficients reproduce scipy's quadrature, so the runs are bit-identical, not merely within 1e-5.
  await replaySchedulerFixture(t, "lms_discrete", { runs: 10, bitExact: true }, {
    create: (c) => new LMSDiscreteScheduler(c),
    tolerance: 1e-5,
    sigmas: (s) => (s as LMSDiscreteScheduler).sigmas,
    sigmaTolerance: 0,
  });
});

Deno.test("LMSDiscreteScheduler reproduces diffusers' test_scheduler_lms.py full loops", async (t) => {
  const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };
  const cases: [string, Record<string, unknown>, number][] = [
    ["test_full_loop_no_noise", {}, 0],
    ["test_full_loop_with_v_prediction", { prediction_type: "v_prediction" }, 0],
    ["test_full_loop_device_karras_sigmas", { use_karras_sigmas: true }, 0],
    ["test_full_loop_with_noise", {}, 8],
  ];
  for (const [name, overrides, tStart] of cases) {
    await t.step(name, async () => {
      const ref = await loadDiffusersTest(`test_scheduler_lms.py::${name}`);
      const out = diffusersSigmaLoop(new LMSDiscreteScheduler({ ...base, ...overrides }), {
        numInferenceSteps: 10,
        tStart,
      });
      assertDiffusersResult(out, ref, { tolerance: 1e-5, sumTolerance: name.includes("karras") ? 2e-2 : 1e-2 });
    });
  }
});

Deno.test("LMSDiscreteScheduler conforms to the Scheduler contract", (t) =>
  runSchedulerConformance(t, { create: (c) => new LMSDiscreteScheduler(c) }));

Deno.test("LMSDiscreteScheduler sigma tables match diffusers' known values", async (t) => {
  const schedules = await loadGzJson<Record<string, { sigmas_train_ascending: number[] }>>("schedules.json.gz");
  await t.step("initNoiseSigma is the largest training σ (and valid before setTimesteps)", () => {
    // ldm-reference.md §3.0: σ_max 25.146116 (text2im config), 38.658955 (SR config), 157.40726 (defaults).
    const text2im = new LMSDiscreteScheduler({ beta_start: 0.00085, beta_end: 0.012, beta_schedule: "linear" });
    assert.ok(Math.abs(text2im.initNoiseSigma - 25.146116) < 1e-5);
    const sr = new LMSDiscreteScheduler({ beta_start: 0.0015, beta_end: 0.0155, beta_schedule: "scaled_linear" });
    assert.ok(Math.abs(sr.initNoiseSigma - 38.658955) < 1e-5);
    const defaults = new LMSDiscreteScheduler();
    assert.ok(Math.abs(defaults.initNoiseSigma - 157.40726) < 1e-4);
    assert.equal(defaults.initNoiseSigma, f32(schedules["diffusers_defaults"]!.sigmas_train_ascending.at(-1)!));
    defaults.setTimesteps(10);
    assert.equal(defaults.initNoiseSigma, f32(schedules["diffusers_defaults"]!.sigmas_train_ascending.at(-1)!));
  });
  await t.step("leading spacing uses sqrt(σ_max² + 1)", () => {
    const s = new LMSDiscreteScheduler({ timestep_spacing: "leading", steps_offset: 1 });
    s.setTimesteps(10);
    assert.deepEqual(Array.from(s.timesteps), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    // The largest σ of the schedule is σ_train[901]; diffusers returns (σ² + 1) ** 0.5 in float32.
    const max = f32(schedules["diffusers_defaults"]!.sigmas_train_ascending[901]!);
    assert.equal(s.sigmas[0], max);
    assert.equal(s.initNoiseSigma, f32(Math.sqrt(f32(f32(max * max) + 1))));
  });
  await t.step("linspace timesteps are fractional float32", () => {
    const s = new LMSDiscreteScheduler();
    s.setTimesteps(7);
    assert.deepEqual(Array.from(s.timesteps), [999, 832.5, 666, 499.5, 333, 166.5, 0]);
    assert.equal(s.sigmas.length, 8);
    assert.equal(s.sigmas[7], 0);
  });
});

Deno.test("LMSDiscreteScheduler exponential and beta σ match numpy/scipy", async (t) => {
  // Recomputed with numpy 2.4 / scipy 1.17 from diffusers' code (numpy 1.x casting in `_sigma_to_t`) on the training
  // σ of schedules.json (diffusers defaults), 10 steps. Timesteps to the fixtures' 2-ulp allowance.
  await t.step("use_exponential_sigmas", () => {
    const s = new LMSDiscreteScheduler({ use_exponential_sigmas: true });
    s.setTimesteps(10);
    const ts = [999, 886.3990478515625, 757.3358154296875, 602.76953125, 409.974365234375, 202.27745056152344];
    assertClose(s.timesteps.subarray(0, 6), ts, 2.4e-7, "timesteps");
    const sig = [157.40725708007812, 53.78919982910156, 18.380842208862305, 6.281100749969482, 2.1463773250579834];
    assertClose(s.sigmas.subarray(0, 5), sig, 1e-7, "sigmas");
    assert.equal(s.sigmas[9], f32(0.010001329705119133));
  });
  await t.step("use_beta_sigmas", () => {
    const s = new LMSDiscreteScheduler({ use_beta_sigmas: true });
    s.setTimesteps(10);
    const ts = [999, 994.216064453125, 983.3079223632812, 966.6002807617188, 942.9896240234375, 909.940673828125];
    assertClose(s.timesteps.subarray(0, 6), ts, 2.4e-7, "timesteps");
    const sig = [157.40725708007812, 149.99513244628906, 134.49005126953125, 114.0579605102539, 90.80071258544922];
    assertClose(s.sigmas.subarray(0, 5), sig, 1e-7, "sigmas");
    assert.equal(s.timesteps[9], 0);
  });
  await t.step("a hidden sigma_max (kept by from_config from an Euler config) bounds the exponential ramp", () => {
    const s = new LMSDiscreteScheduler({ use_exponential_sigmas: true, sigma_max: 50 });
    s.setTimesteps(4);
    assert.equal(s.sigmas[0], 50);
    assert.equal(s.config["sigma_max"], 50);
    assert.throws(() => new LMSDiscreteScheduler({ use_beta_sigmas: true, sigma_min: "x" }), /sigma_min/);
    // Karras ignores them in diffusers' LMS (its `_convert_to_karras` has no config lookup).
    const k = new LMSDiscreteScheduler({ use_karras_sigmas: true, sigma_max: 50 });
    k.setTimesteps(4);
    assert.equal(k.sigmas[0], new LMSDiscreteScheduler().initNoiseSigma);
  });
  await t.step("trained_betas equal to the linear schedule give the same σ", async () => {
    const schedules = await loadGzJson<Record<string, { betas: number[] }>>("schedules.json.gz");
    const s = new LMSDiscreteScheduler({ trained_betas: schedules["diffusers_defaults"]!.betas });
    const d = new LMSDiscreteScheduler();
    s.setTimesteps(13);
    d.setTimesteps(13);
    assert.deepEqual(s.sigmas, d.sigmas);
    assert.throws(() => new LMSDiscreteScheduler({ trained_betas: [0.1, 0.2] }), RangeError);
  });
});

Deno.test("lmsCoefficient matches the exact integral of the Lagrange basis to float32 precision", () => {
  const s = new LMSDiscreteScheduler();
  s.setTimesteps(25);
  const sigmas = s.sigmas;
  let worst = 0;
  for (let i = 0; i < 25; i++) {
    const order = Math.min(i + 1, 4);
    let sum = 0;
    for (let j = 0; j < order; j++) {
      const q = lmsCoefficient(sigmas, order, i, j), e = lmsCoefficientExact(sigmas, order, i, j);
      worst = Math.max(worst, Math.abs(q - e) / Math.max(1e-3, Math.abs(e)));
      sum += e;
    }
    // The Lagrange basis sums to 1, so the coefficients sum to the interval length σ_{i+1} − σ_i.
    assert.ok(Math.abs(sum - (sigmas[i + 1]! - sigmas[i]!)) < 1e-9 * Math.max(1, sigmas[i]!), `step ${i}`);
  }
  assert.ok(worst < 1e-5, `worst relative difference ${worst}`);
  assert.ok(worst > 0, "the float32 integrand should differ from the exact integral somewhere");
});

Deno.test("LMSDiscreteScheduler rejects bad configs, bad calls and states", async (t) => {
  await t.step("more than one σ re-spacing", () => {
    assert.throws(
      () => new LMSDiscreteScheduler({ use_karras_sigmas: true, use_beta_sigmas: true }),
      (e: unknown) => e instanceof RangeError && /use_karras_sigmas/.test(e.message),
    );
  });
  await t.step("unknown choices and wrong types name the field", () => {
    assert.throws(() => new LMSDiscreteScheduler({ prediction_type: "flow" }), /prediction_type/);
    assert.throws(() => new LMSDiscreteScheduler({ timestep_spacing: "log" }), /timestep_spacing/);
    assert.throws(() => new LMSDiscreteScheduler({ beta_schedule: "cosine" }), /beta_schedule/);
    assert.throws(() => new LMSDiscreteScheduler({ use_karras_sigmas: "yes" }), TypeError);
  });
  await t.step("setTimesteps range", () => {
    const s = new LMSDiscreteScheduler();
    assert.throws(() => s.setTimesteps(0), /numInferenceSteps must be an integer in \[1, 1000\]: got 0/);
    assert.throws(() => s.setTimesteps(1001), RangeError);
    assert.throws(() => s.setTimesteps(2.5), RangeError);
  });
  await t.step("step/scaleModelInput/addNoise before setTimesteps", () => {
    const s = new LMSDiscreteScheduler();
    const x = Tensor.zeros([1, 4, 2, 2]);
    assert.equal(s.timesteps.length, 0);
    assert.throws(() => s.step(x, 999, x), /setTimesteps/);
    assert.throws(() => s.scaleModelInput(x, 999), /setTimesteps/);
    assert.throws(() => s.addNoise(x, x, 999), /setTimesteps/);
  });
  await t.step("timesteps not in the schedule, shape mismatch, stepping past the end", () => {
    const s = new LMSDiscreteScheduler();
    s.setTimesteps(2);
    const x = Tensor.zeros([1, 4, 2, 2]);
    assert.throws(() => s.step(x, 3, x), (e: unknown) => e instanceof RangeError && /timestep 3/.test(e.message));
    assert.throws(() => s.step(x, Number.NaN, x), TypeError);
    assert.throws(() => s.step(Tensor.zeros([1, 4, 2, 3]), 999, x), TypeError);
    s.setTimesteps(2);
    s.step(x, 999, x);
    s.step(x, 0, x);
    assert.throws(() => s.step(x, 0, x), /steps are done/);
  });
});

Deno.test("LMSDiscreteScheduler step index follows diffusers (second occurrence, begin index)", () => {
  const s = new LMSDiscreteScheduler({ num_train_timesteps: 10, timestep_spacing: "trailing" });
  // T = 10, n = 4: arange(10, 0, -2.5) = [10, 7.5, 5, 2.5] → round half even − 1 = [9, 7, 4, 1]
  s.setTimesteps(4);
  assert.deepEqual(Array.from(s.timesteps), [9, 7, 4, 1]);
  const x = new Tensor(new Float32Array([1, 2]), [1, 2]);
  s.scaleModelInput(x, 4);
  assert.equal(s.stepIndex, 2);
  s.setTimesteps(4);
  assert.equal(s.stepIndex, null);
  s.setBeginIndex(1);
  s.scaleModelInput(x, 9); // the begin index wins over the lookup
  assert.equal(s.stepIndex, 1);
  assert.throws(() => s.setBeginIndex(4), /beginIndex must be an integer in \[0, 3\]: got 4/);
});

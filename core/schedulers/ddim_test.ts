import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import { DDIMScheduler } from "./ddim.ts";
import { dynamicThreshold } from "./_betas.ts";
import { runSchedulerConformance } from "./_conformance_test_utils.ts";
import {
  assertDiffusersResult,
  dummyDeter,
  dummyModel,
  fixtureBaseSample,
  fixtureModelOutput,
  fixtureNoise,
  loadDiffusersTest,
  loadGzJson,
  loadSchedulerFixture,
  replaySchedulerFixture,
} from "./_fixture_test_utils.ts";

const BASE = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  clip_sample: true,
};

Deno.test("DDIMScheduler replays every run of ddim.json.gz bit for bit", async (t) => {
  // Bit-exact: every prev_sample element of every step equals diffusers' float32 value.
  await replaySchedulerFixture(t, "ddim", { runs: 17, bitExact: true }, {
    create: (c) => new DDIMScheduler(c),
    tolerance: 1e-6,
  });
});

/** diffusers' `full_loop` of tests/schedulers/test_scheduler_ddim.py. */
function fullLoop(config: Record<string, unknown>): Tensor {
  const scheduler = new DDIMScheduler({ ...BASE, ...config });
  scheduler.setTimesteps(10);
  let sample = dummyDeter();
  for (const t of scheduler.timesteps) {
    sample = scheduler.step(dummyModel(sample, t), t, sample, { eta: 0 }).prevSample;
  }
  return sample;
}

Deno.test("DDIMScheduler reproduces diffusers' test_scheduler_ddim.py full loops", async (t) => {
  const cases: [string, Record<string, unknown>][] = [
    ["test_full_loop_no_noise", {}],
    ["test_full_loop_with_v_prediction", { prediction_type: "v_prediction" }],
    ["test_full_loop_with_set_alpha_to_one", { set_alpha_to_one: true, beta_start: 0.01 }],
    ["test_full_loop_with_no_set_alpha_to_one", { set_alpha_to_one: false, beta_start: 0.01 }],
  ];
  for (const [name, config] of cases) {
    await t.step(name, async () => {
      const ref = await loadDiffusersTest(`test_scheduler_ddim.py::${name}`);
      assertDiffusersResult(fullLoop(config), ref, { tolerance: 1e-6, bitExact: true });
    });
  }
  await t.step("test_full_loop_with_noise (add_noise at timesteps[8:])", async () => {
    const ref = await loadDiffusersTest("test_scheduler_ddim.py::test_full_loop_with_noise");
    const scheduler = new DDIMScheduler(BASE);
    scheduler.setTimesteps(10);
    const timesteps = scheduler.timesteps.slice(8 * scheduler.order);
    let sample = scheduler.addNoise(dummyDeter(), dummyDeter(true), timesteps[0]!);
    for (const t of timesteps) sample = scheduler.step(dummyModel(sample, t), t, sample, { eta: 0 }).prevSample;
    assert.deepEqual([ref.expected_result_sum, ref.expected_result_mean], [354.5418, 0.4616]);
    assertDiffusersResult(sample, ref, { tolerance: 1e-6, bitExact: true });
  });
});

Deno.test("DDIMScheduler.getVariance() matches diffusers' _get_variance", async () => {
  const ref = await loadGzJson<{ ddim_get_variance: { values: Record<string, number> } }>(
    "diffusers_scheduler_tests.json.gz",
  );
  const scheduler = new DDIMScheduler(BASE);
  for (const [key, value] of Object.entries(ref.ddim_get_variance.values)) {
    const [t, prev] = key.split(",").map(Number) as [number, number];
    assert.equal(scheduler.getVariance(t, prev), value, key);
  }
});

Deno.test("DDIMScheduler.setTimesteps() follows diffusers' spacing rules", async (t) => {
  await t.step("steps_offset=1, 5 steps gives [801, 601, 401, 201, 1] (test_steps_offset)", () => {
    const s = new DDIMScheduler({ ...BASE, steps_offset: 1 });
    s.setTimesteps(5);
    assert.deepEqual(s.timesteps, [801, 601, 401, 201, 1]);
  });
  await t.step("trailing and linspace round half to even like numpy", () => {
    const trailing = new DDIMScheduler({ timestep_spacing: "trailing" });
    trailing.setTimesteps(3);
    assert.deepEqual(trailing.timesteps, [999, 666, 332]); // round([1000, 666.67, 333.33]) − 1
    const linspace = new DDIMScheduler({ num_train_timesteps: 10, timestep_spacing: "linspace" });
    linspace.setTimesteps(5);
    assert.deepEqual(linspace.timesteps, [9, 7, 4, 2, 0]); // linspace(0, 9, 5) = 0, 2.25, 4.5, 6.75, 9
  });
  await t.step("leading ignores steps_offset only for other spacings", () => {
    const s = new DDIMScheduler({ timestep_spacing: "linspace", steps_offset: 1 });
    s.setTimesteps(4);
    assert.deepEqual(s.timesteps, [999, 666, 333, 0]);
  });
  await t.step("1000 steps visit every training timestep", () => {
    const s = new DDIMScheduler();
    s.setTimesteps(1000);
    assert.equal(s.timesteps.length, 1000);
    assert.equal(s.timesteps[0], 999);
    assert.equal(s.timesteps[999], 0);
  });
});

Deno.test("DDIMScheduler resolves configs with from_config semantics", async (t) => {
  const fixture = await loadSchedulerFixture("ddim");
  await t.step("the text2im checkpoint JSON: absent keys take DDIM defaults, relic keys are kept but unused", () => {
    const json = fixture.configs["ldm_text2im"]!.config!;
    const s = new DDIMScheduler(json);
    assert.equal(s.config["set_alpha_to_one"], true);
    assert.equal(s.config["steps_offset"], 0);
    assert.equal(s.config["beta_schedule"], "linear");
    assert.equal(s.config["clip_sample"], false);
    assert.equal(s.config["timestep_values"], null);
    assert.equal(s.config["_class_name"], "DDIMScheduler");
    const defaults = s.config["_use_default_values"] as string[];
    assert.ok(defaults.includes("set_alpha_to_one") && defaults.includes("steps_offset"));
    assert.ok(!defaults.includes("beta_start"));
    assert.equal(s.finalAlphaCumprod, 1);
  });
  await t.step("set_alpha_to_one=false uses alphas_cumprod[0] for the final step", async () => {
    const tables = await loadGzJson<Record<string, { alphas_cumprod: number[] }>>("schedules.json.gz");
    const s = new DDIMScheduler({ set_alpha_to_one: false });
    assert.equal(s.finalAlphaCumprod, tables["diffusers_defaults"]!.alphas_cumprod[0]);
    assert.deepEqual(Array.from(s.alphasCumprod), tables["diffusers_defaults"]!.alphas_cumprod);
  });
});

Deno.test("DDIMScheduler rejects what diffusers rejects, naming the field and value", async (t) => {
  await t.step("unknown beta_schedule / prediction_type / timestep_spacing", () => {
    assert.throws(() => new DDIMScheduler({ beta_schedule: "cosine" }), /beta_schedule must be one of .*got "cosine"/);
    assert.throws(() => new DDIMScheduler({ prediction_type: "flow" }), /prediction_type must be one of .*got "flow"/);
    assert.throws(() => new DDIMScheduler({ timestep_spacing: "even" }), /timestep_spacing .*got "even"/);
    assert.throws(() => new DDIMScheduler({ num_train_timesteps: 0 }), RangeError);
    assert.throws(() => new DDIMScheduler({ clip_sample: "yes" }), TypeError);
    assert.throws(
      () => new DDIMScheduler({ trained_betas: [0.1, 0.2] }),
      /trained_betas must have num_train_timesteps/,
    );
  });
  await t.step("setTimesteps(0 | 1.5 | 1001)", () => {
    const s = new DDIMScheduler();
    assert.throws(() => s.setTimesteps(0), /numInferenceSteps must be an integer in \[1, 1000\]: got 0/);
    assert.throws(() => s.setTimesteps(1.5), RangeError);
    assert.throws(() => s.setTimesteps(1001), /got 1001/);
  });
  await t.step("step before setTimesteps, bad shapes, bad timesteps, eta", () => {
    const s = new DDIMScheduler();
    const x = fixtureBaseSample([1, 4, 8, 8]);
    assert.throws(() => s.step(x, 500, x), /before setTimesteps/);
    s.setTimesteps(10);
    assert.throws(() => s.step(Tensor.zeros([1, 4, 8, 9]), 900, x), TypeError);
    assert.throws(() => s.step(x, 1000, x), /timestep must be an integer in \[0, 999\]: got 1000/);
    assert.throws(() => s.step(x, 12.5, x), RangeError);
    assert.throws(() => s.step(x, 900, x, { eta: -1 }), /eta must be/);
    assert.throws(() => s.step(x, 900, x, { eta: 1 }), /needs options.generator or options.varianceNoise/);
    const noise = fixtureNoise(0, x.shape);
    const fakeGen = { randn: () => noise } as unknown as NonNullable<Parameters<DDIMScheduler["step"]>[3]>["generator"];
    assert.throws(
      () => s.step(x, 900, x, { eta: 1, varianceNoise: noise, generator: fakeGen }),
      /Cannot pass both generator and varianceNoise/,
    );
    // With eta = 0 diffusers ignores both, and so do we.
    s.step(x, 900, x, { eta: 0, varianceNoise: noise, generator: fakeGen });
    assert.throws(() => s.step(x, 900, x, { eta: 1, varianceNoise: Tensor.zeros([1, 4, 8, 9]) }), TypeError);
  });
});

Deno.test("DDIMScheduler clipping, thresholding and use_clipped_model_output", async (t) => {
  const x = new Tensor(fixtureBaseSample([2, 4, 8, 8]).data.map((v) => v * 6), [2, 4, 8, 8]);
  const eps = fixtureModelOutput(x, 900);
  await t.step("clip_sample clamps x̂₀ to ±clip_sample_range", () => {
    const s = new DDIMScheduler({ clip_sample: true, clip_sample_range: 0.5 });
    s.setTimesteps(10);
    const out = s.step(eps, 900, x);
    assert.ok(out.predOriginalSample!.data.every((v) => Math.abs(v) <= 0.5));
    assert.ok(out.predOriginalSample!.data.some((v) => Math.abs(v) === 0.5));
  });
  await t.step("thresholding replaces clipping by dynamic thresholding of x̂₀", () => {
    const plain = new DDIMScheduler({ clip_sample: false });
    const thr = new DDIMScheduler({ thresholding: true, dynamic_thresholding_ratio: 0.9, sample_max_value: 3 });
    plain.setTimesteps(10);
    thr.setTimesteps(10);
    const raw = plain.step(eps, 900, x).predOriginalSample!;
    const got = thr.step(eps, 900, x).predOriginalSample!;
    assert.deepEqual(got.data, dynamicThreshold(raw, 0.9, 3).data);
    assert.ok(got.data.every((v) => Math.abs(v) <= 1));
  });
  await t.step("use_clipped_model_output recomputes ε̂ from the clipped x̂₀", () => {
    const s = new DDIMScheduler({ clip_sample: true });
    s.setTimesteps(10);
    const a = s.step(eps, 900, x).prevSample;
    const b = s.step(eps, 900, x, { useClippedModelOutput: true }).prevSample;
    assert.ok(a.data.some((v, i) => v !== b.data[i]));
    // With clipped ε̂ the step is exactly the DDIM update of the clipped x̂₀ onto ᾱ_prev.
    const ac = s.alphasCumprod;
    const x0 = s.step(eps, 900, x).predOriginalSample!;
    for (let i = 0; i < 5; i++) {
      const e = (x.data[i]! - Math.sqrt(ac[900]!) * x0.data[i]!) / Math.sqrt(1 - ac[900]!);
      const expected = Math.sqrt(ac[800]!) * x0.data[i]! + Math.sqrt(1 - ac[800]!) * e;
      assert.ok(Math.abs(b.data[i]! - expected) < 1e-5, `element ${i}: ${b.data[i]} vs ${expected}`);
    }
  });
  await t.step("prediction_type sample returns the model output as x̂₀ without aliasing it", () => {
    const s = new DDIMScheduler({ prediction_type: "sample", clip_sample: false });
    s.setTimesteps(10);
    const out = s.step(eps, 900, x);
    assert.deepEqual(out.predOriginalSample!.data, eps.data);
    assert.notEqual(out.predOriginalSample!.data, eps.data);
  });
});

Deno.test("DDIMScheduler conforms to the Scheduler contract (η = 0)", (t) =>
  runSchedulerConformance(t, { create: (c) => new DDIMScheduler(c), integerTimesteps: true }));

Deno.test("DDIMScheduler conforms to the Scheduler contract (η = 1, explicit noise)", (t) =>
  runSchedulerConformance(t, {
    create: (c) => new DDIMScheduler(c),
    config: { beta_schedule: "scaled_linear", beta_start: 0.0015, beta_end: 0.0155, steps_offset: 1 },
    stepOptions: () => ({ eta: 1, varianceNoise: fixtureNoise(3, [2, 4, 8, 8]) }),
    integerTimesteps: true,
  }));

Deno.test("DDIMScheduler conforms to the Scheduler contract (η = 1, seeded generator)", (t) =>
  runSchedulerConformance(t, {
    create: (c) => new DDIMScheduler(c),
    stepOptions: (generator) => ({ eta: 1, generator }),
    makeGenerator: (seed) => new Generator(seed),
    stochastic: true,
    integerTimesteps: true,
  }));

Deno.test("DDIMScheduler η > 0 draws one generator.randn(sample.shape) per step, the last step included", () => {
  const shape = [2, 4, 8, 8];
  const s = new DDIMScheduler({ clip_sample: false });
  s.setTimesteps(4);
  const g = new Generator(7);
  const replay = new Generator(7);
  let a = fixtureBaseSample(shape);
  let b = a;
  for (const t of s.timesteps) {
    const epsA = fixtureModelOutput(a, t), epsB = fixtureModelOutput(b, t);
    a = s.step(epsA, t, a, { eta: 0.5, generator: g }).prevSample;
    b = s.step(epsB, t, b, { eta: 0.5, varianceNoise: replay.randn(shape) }).prevSample;
  }
  assert.deepEqual(a.data, b.data);
  // Both generators have advanced by exactly four draws of the sample's shape.
  assert.deepEqual(g.randn([5]).data, replay.randn([5]).data);
  // And the noise really entered the result.
  const det = new DDIMScheduler({ clip_sample: false });
  det.setTimesteps(4);
  let c = fixtureBaseSample(shape);
  for (const t of det.timesteps) c = det.step(fixtureModelOutput(c, t), t, c).prevSample;
  assert.ok(c.data.some((v, i) => v !== a.data[i]));
});

Deno.test("DDIMScheduler with rescale_betas_zero_snr reaches ᾱ_T = 0 (v-prediction predicts x̂₀ = −v there)", () => {
  const s = new DDIMScheduler({
    rescale_betas_zero_snr: true,
    prediction_type: "v_prediction",
    timestep_spacing: "trailing",
    clip_sample: false,
  });
  assert.equal(s.alphasCumprod[999], 0);
  s.setTimesteps(10);
  assert.equal(s.timesteps[0], 999);
  const x = fixtureBaseSample([1, 4, 8, 8]);
  const v = fixtureModelOutput(x, 999);
  const out = s.step(v, 999, x);
  assert.deepEqual(Array.from(out.predOriginalSample!.data), Array.from(v.data, (e) => -e));
  assert.ok(out.prevSample.data.every(Number.isFinite));
});

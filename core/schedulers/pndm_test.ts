import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { PNDMScheduler } from "./pndm.ts";
import { DDIMScheduler } from "./ddim.ts";
import { runSchedulerConformance } from "./_conformance_test_utils.ts";
import {
  assertClose,
  assertDiffusersResult,
  dummyDeter,
  dummyModel,
  fixtureBaseSample,
  fixtureModelOutput,
  loadDiffusersTest,
  loadGzJson,
  loadSchedulerFixture,
  replaySchedulerFixture,
} from "./_fixture_test_utils.ts";

const BASE = { num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };

Deno.test("PNDMScheduler replays every run of pndm.json.gz bit for bit (and rejects diffusers' failing ones)", async (t) => {
  await replaySchedulerFixture(t, "pndm", { runs: 16, rejected: 2, bitExact: true }, {
    create: (c) => new PNDMScheduler(c),
    tolerance: 1e-6,
  });
});

/** diffusers' `full_loop` of tests/schedulers/test_scheduler_pndm.py: step_prk over prk_timesteps, then step_plms. */
function fullLoop(config: Record<string, unknown>): Tensor {
  const scheduler = new PNDMScheduler({ ...BASE, ...config });
  scheduler.setTimesteps(10);
  let sample = dummyDeter();
  // step() dispatches to PRK for the first prkTimesteps.length calls, exactly as the test's two explicit loops.
  for (const t of [...scheduler.prkTimesteps, ...scheduler.plmsTimesteps]) {
    sample = scheduler.step(dummyModel(sample, t), t, sample).prevSample;
  }
  return sample;
}

Deno.test("PNDMScheduler reproduces diffusers' test_scheduler_pndm.py full loops", async (t) => {
  const cases: [string, Record<string, unknown>][] = [
    ["test_full_loop_no_noise", {}],
    ["test_full_loop_with_v_prediction", { prediction_type: "v_prediction" }],
    ["test_full_loop_with_set_alpha_to_one", { set_alpha_to_one: true, beta_start: 0.01 }],
    ["test_full_loop_with_no_set_alpha_to_one", { set_alpha_to_one: false, beta_start: 0.01 }],
  ];
  for (const [name, config] of cases) {
    await t.step(name, async () => {
      const ref = await loadDiffusersTest(`test_scheduler_pndm.py::${name}`);
      assertDiffusersResult(fullLoop(config), ref, { tolerance: 1e-6, bitExact: true });
    });
  }
});

Deno.test("PNDMScheduler.setTimesteps() builds diffusers' PRK/PLMS sequences", async (t) => {
  await t.step("steps_offset=1, 10 steps (test_steps_offset)", () => {
    const s = new PNDMScheduler({ ...BASE, steps_offset: 1 });
    s.setTimesteps(10);
    assert.deepEqual(
      s.timesteps,
      [901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1],
    );
    assert.equal(s.prkTimesteps.length, 12);
    assert.deepEqual(s.plmsTimesteps, [601, 501, 401, 301, 201, 101, 1]);
  });
  await t.step("7 steps with and without skip_prk_steps (ldm-reference §3.2)", () => {
    const skip = new PNDMScheduler({ skip_prk_steps: true });
    skip.setTimesteps(7);
    assert.deepEqual(skip.timesteps, [852, 710, 710, 568, 426, 284, 142, 0]);
    assert.deepEqual(skip.prkTimesteps, []);
    const prk = new PNDMScheduler();
    prk.setTimesteps(7);
    assert.deepEqual(prk.timesteps, [852, 781, 781, 710, 710, 639, 639, 568, 568, 497, 497, 426, 426, 284, 142, 0]);
  });
  await t.step("skip_prk_steps with 1 and 2 steps, PRK with exactly 4", () => {
    const s = new PNDMScheduler({ skip_prk_steps: true });
    s.setTimesteps(1);
    assert.deepEqual(s.timesteps, [0]);
    s.setTimesteps(2);
    assert.deepEqual(s.timesteps, [500, 0, 0]);
    const p = new PNDMScheduler();
    p.setTimesteps(4);
    assert.deepEqual(p.timesteps, [750, 625, 625, 500, 500, 375, 375, 250, 250, 125, 125, 0, 0]);
  });
});

Deno.test("PNDMScheduler rejects what diffusers rejects, naming the field and value", async (t) => {
  await t.step("fewer than 4 steps without skip_prk_steps (diffusers: numpy broadcast error)", () => {
    const s = new PNDMScheduler();
    for (const n of [1, 2, 3]) {
      assert.throws(() => s.setTimesteps(n), new RegExp(`must be >= 4 when skip_prk_steps is false.*got ${n}`));
    }
    s.setTimesteps(4);
  });
  await t.step("prediction_type 'sample' (diffusers raises in _get_prev_sample) and unknown schedules", () => {
    assert.throws(
      () => new PNDMScheduler({ prediction_type: "sample" }),
      /prediction_type must be one of .*got "sample"/,
    );
    assert.throws(() => new PNDMScheduler({ beta_schedule: "quadratic" }), /beta_schedule .*got "quadratic"/);
  });
  await t.step("setTimesteps out of range, step before setTimesteps, shapes, timesteps", () => {
    const s = new PNDMScheduler({ skip_prk_steps: true });
    const x = fixtureBaseSample([1, 4, 8, 8]);
    assert.throws(() => s.step(x, 500, x), /before setTimesteps/);
    assert.throws(() => s.setTimesteps(0), /got 0/);
    assert.throws(() => s.setTimesteps(1001), /got 1001/);
    assert.throws(() => s.setTimesteps(2.5), RangeError);
    s.setTimesteps(5);
    assert.throws(() => s.step(Tensor.zeros([1, 4, 8, 7]), 800, x), TypeError);
    assert.throws(() => s.step(x, -1, x), /timestep must be an integer in \[0, 999\]: got -1/);
  });
});

Deno.test("PNDMScheduler from_config keeps explicit keys and drops another class's defaults", async (t) => {
  const tables = await loadGzJson<
    Record<
      string,
      {
        config_json: Record<string, unknown> | null;
        effective_config_per_class: Record<string, Record<string, unknown>>;
      }
    >
  >(
    "schedules.json.gz",
  );
  await t.step("from the super-resolution JSON: set_alpha_to_one and steps_offset carry over", () => {
    const sr = tables["ldm_super_resolution"]!;
    const s = new PNDMScheduler(new DDIMScheduler(sr.config_json!).config);
    const expected = sr.effective_config_per_class["PNDMScheduler"]!;
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(s.config[k], v, k);
  });
  await t.step("from a DDIM built from the text2im JSON: DDIM's defaulted set_alpha_to_one does not leak", async () => {
    const fixture = await loadSchedulerFixture("pndm");
    const ddim = new DDIMScheduler(fixture.configs["ldm_text2im"]!.config!);
    assert.equal(ddim.config["set_alpha_to_one"], true);
    const pndm = new PNDMScheduler(ddim.config);
    assert.equal(pndm.config["set_alpha_to_one"], false);
    assert.equal(pndm.config["steps_offset"], 0);
    assert.equal(pndm.config["beta_start"], 0.00085);
    assert.equal(pndm.config["clip_sample"], false); // hidden key kept, unused
    assert.notEqual(pndm.finalAlphaCumprod, 1);
  });
});

Deno.test("PNDMScheduler v_prediction converts v to ε before the transfer", () => {
  // With ᾱ-consistent inputs, v-prediction of the true noise and ε-prediction must agree to float32 precision.
  const shape = [1, 4, 8, 8];
  const x0 = fixtureBaseSample(shape);
  const noise = fixtureModelOutput(x0, 400);
  const eps = new PNDMScheduler({ skip_prk_steps: true });
  const v = new PNDMScheduler({ skip_prk_steps: true, prediction_type: "v_prediction" });
  eps.setTimesteps(10);
  v.setTimesteps(10);
  const t = eps.timesteps[0]!;
  const a = eps.alphasCumprod[t]!;
  const xt = eps.addNoise(x0, noise, t);
  const vel = new Tensor(noise.data.map((e, i) => Math.sqrt(a) * e - Math.sqrt(1 - a) * x0.data[i]!), shape);
  const pe = eps.step(noise, t, xt).prevSample;
  const pv = v.step(vel, t, xt).prevSample;
  assertClose(pv.data, pe.data, 1e-5, "v vs ε");
});

Deno.test("PNDMScheduler conforms to the Scheduler contract (PRK + PLMS)", (t) =>
  runSchedulerConformance(t, { create: (c) => new PNDMScheduler(c), integerTimesteps: true }));

Deno.test("PNDMScheduler conforms to the Scheduler contract (skip_prk_steps, SR config)", (t) =>
  runSchedulerConformance(t, {
    create: (c) => new PNDMScheduler(c),
    config: {
      beta_schedule: "scaled_linear",
      beta_start: 0.0015,
      beta_end: 0.0155,
      steps_offset: 1,
      skip_prk_steps: true,
    },
    integerTimesteps: true,
  }));

import assert from "node:assert/strict";
import { f32, quantile, Tensor } from "../tensor/mod.ts";
import {
  addNoiseAlphas,
  alphasFromBetas,
  betasForAlphaBar,
  checkIntegerTimestep,
  checkNumInferenceSteps,
  clipSample,
  cumprodF32,
  dynamicThreshold,
  epsilonFromOriginal,
  makeBetas,
  makeScheduleTables,
  numpyArange,
  numpyLinspace,
  originalAndEpsilonFromAlpha,
  originalFromSigma,
  rescaleZeroTerminalSnr,
  roundHalfEven,
  spacedTimesteps,
  torchLinspaceF32,
} from "./_betas.ts";
import { fixtureBaseSample, fixtureModelOutput, loadGzJson } from "./_fixture_test_utils.ts";

interface ScheduleTable {
  effective_config_per_class: Record<string, Record<string, unknown>>;
  betas: number[];
  alphas_cumprod: number[];
  ddim_final_alpha_cumprod: number;
  pndm_final_alpha_cumprod: number;
}

Deno.test("makeScheduleTables() reproduces schedules.json.gz bit for bit", async (t) => {
  const tables = await loadGzJson<Record<string, ScheduleTable>>("schedules.json.gz");
  for (const name of ["ldm_super_resolution", "diffusers_defaults"]) {
    await t.step(name, () => {
      const ref = tables[name]!;
      const cfg = ref.effective_config_per_class["DDIMScheduler"]! as unknown as Parameters<typeof makeBetas>[0];
      const { betas, alphasCumprod } = makeScheduleTables(cfg);
      assert.deepEqual(Array.from(betas), ref.betas, "betas");
      assert.deepEqual(Array.from(alphasCumprod), ref.alphas_cumprod, "alphas_cumprod");
      const pndmOne = ref.effective_config_per_class["PNDMScheduler"]!["set_alpha_to_one"];
      assert.equal(ref.pndm_final_alpha_cumprod, pndmOne ? 1 : alphasCumprod[0]);
    });
  }
});

Deno.test("torchLinspaceF32() handles edge sizes and differs from naive float32 linspace", () => {
  assert.deepEqual(Array.from(torchLinspaceF32(0.5, 2, 0)), []);
  assert.deepEqual(Array.from(torchLinspaceF32(0.5, 2, 1)), [0.5]);
  assert.deepEqual(Array.from(torchLinspaceF32(0, 1, 5)), [0, 0.25, 0.5, 0.75, 1]);
  const n = 1000;
  const ours = torchLinspaceF32(0.0001, 0.02, n);
  assert.equal(ours[0], f32(0.0001));
  assert.equal(ours[n - 1], f32(0.02));
  const naive = Float32Array.from({ length: n }, (_, i) => 0.0001 + (i * (0.02 - 0.0001)) / (n - 1));
  assert.ok(ours.some((v, i) => v !== naive[i]), "the vectorised torch kernel rounds differently from float64");
  assert.throws(() => torchLinspaceF32(0, 1, -1), RangeError);
});

Deno.test("makeBetas() covers every beta_schedule and trained_betas", async (t) => {
  const base = { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, trained_betas: null };
  await t.step("scaled_linear squares a linspace of square roots in float32", () => {
    const b = makeBetas({ ...base, beta_schedule: "scaled_linear" });
    const roots = torchLinspaceF32(Math.sqrt(0.00085), Math.sqrt(0.012), 1000);
    assert.equal(b[10], f32(roots[10]! * roots[10]!));
    assert.ok(Math.abs(b[999]! - 0.012) < 1e-9);
  });
  await t.step("squaredcos_cap_v2 (Nichol & Dhariwal): ᾱ follows cos² and betas are capped at 0.999", () => {
    const b = makeBetas({ ...base, beta_schedule: "squaredcos_cap_v2" });
    assert.equal(b.length, 1000);
    assert.equal(b[999], f32(0.999));
    const ac = cumprodF32(alphasFromBetas(b));
    const abar = (x: number) => Math.cos(((x + 0.008) / 1.008) * Math.PI / 2) ** 2;
    for (const i of [0, 100, 500, 900]) {
      assert.ok(Math.abs(ac[i]! - abar((i + 1) / 1000) / abar(0)) < 1e-5, `ᾱ[${i}]`);
    }
    for (let i = 1; i < 1000; i++) assert.ok(b[i]! >= b[i - 1]!, `betas increase at ${i}`);
  });
  await t.step("exp and laplace transforms of betas_for_alpha_bar", () => {
    const e = betasForAlphaBar(10, { alphaTransformType: "exp" });
    assert.equal(e[0], f32(1 - Math.exp(0.1 * -12) / Math.exp(0)));
    const l = betasForAlphaBar(10, { alphaTransformType: "laplace" });
    assert.ok(l.every((v) => v > -1 && v <= 0.999));
    assert.throws(() => betasForAlphaBar(0), RangeError);
  });
  await t.step("trained_betas are rounded to float32 and must have T entries", () => {
    const b = makeBetas({ ...base, num_train_timesteps: 3, beta_schedule: "linear", trained_betas: [0.1, 0.2, 0.3] });
    assert.deepEqual(Array.from(b), [f32(0.1), f32(0.2), f32(0.3)]);
    assert.throws(
      () => makeBetas({ ...base, num_train_timesteps: 4, beta_schedule: "linear", trained_betas: [0.1] }, "X"),
      /X config: trained_betas must have num_train_timesteps \(4\) entries: got 1/,
    );
  });
  await t.step("unknown beta_schedule names the value", () => {
    assert.throws(() => makeBetas({ ...base, beta_schedule: "cosine" }), /beta_schedule must be one of .*got "cosine"/);
  });
});

Deno.test("cumprodF32() keeps a float64 running product", () => {
  const x = new Float32Array(2000).fill(f32(0.999));
  const got = cumprodF32(x);
  let acc32 = 1;
  let differs = 0;
  for (let i = 0; i < x.length; i++) {
    acc32 = f32(acc32 * x[i]!);
    if (acc32 !== got[i]) differs++;
  }
  assert.ok(differs > 100, "a float32 accumulator would differ");
  let acc64 = 1;
  for (let i = 0; i < x.length; i++) {
    acc64 *= x[i]!;
    assert.equal(got[i], f32(acc64));
  }
});

Deno.test("rescaleZeroTerminalSnr() gives zero terminal SNR and keeps ᾱ_0 (Lin et al. 2023, Algorithm 1)", () => {
  const betas = makeBetas({
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    trained_betas: null,
  });
  const rescaled = rescaleZeroTerminalSnr(betas);
  assert.equal(rescaled[999], 1);
  const before = cumprodF32(alphasFromBetas(betas));
  const after = cumprodF32(alphasFromBetas(rescaled));
  assert.equal(after[999], 0);
  assert.ok(Math.abs(Math.sqrt(after[0]!) - Math.sqrt(before[0]!)) < 1e-6);
  // √ᾱ is an affine map of the original √ᾱ: check the midpoint in float64.
  const s0 = Math.sqrt(before[0]!), sT = Math.sqrt(before[999]!);
  const expected = ((Math.sqrt(before[500]!) - sT) * s0) / (s0 - sT);
  assert.ok(Math.abs(Math.sqrt(after[500]!) - expected) < 1e-5);
  const tables = makeScheduleTables({
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    trained_betas: null,
    rescale_betas_zero_snr: true,
  });
  assert.deepEqual(tables.betas, rescaled);
});

Deno.test("numpy helpers: roundHalfEven, linspace, arange", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3]);
  assert.deepEqual(Array.from(numpyLinspace(0, 9, 5)), [0, 2.25, 4.5, 6.75, 9]);
  assert.deepEqual(Array.from(numpyLinspace(3, 7, 1)), [3]);
  assert.deepEqual(Array.from(numpyLinspace(3, 7, 0)), []);
  assert.equal(numpyLinspace(0, 999, 7)[6], 999);
  const a = numpyArange(1000, 0, -1000 / 7);
  assert.equal(a.length, 7);
  assert.equal(a[1], 1000 - 1000 / 7);
  assert.deepEqual(Array.from(numpyArange(0, 1, 0.25)), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(Array.from(numpyArange(0, -1, 0.25)), []);
  assert.throws(() => numpyArange(0, 1, 0), RangeError);
});

Deno.test("spacedTimesteps() implements leading, trailing and linspace", () => {
  assert.deepEqual(spacedTimesteps("leading", 1000, 5, 1), [801, 601, 401, 201, 1]);
  assert.deepEqual(spacedTimesteps("leading", 1000, 7, 0), [852, 710, 568, 426, 284, 142, 0]);
  assert.deepEqual(spacedTimesteps("trailing", 1000, 7, 5), [999, 856, 713, 570, 428, 285, 142]);
  assert.deepEqual(spacedTimesteps("linspace", 1000, 7, 5), [999, 832, 666, 500, 333, 166, 0]);
  assert.deepEqual(spacedTimesteps("linspace", 10, 5, 0), [9, 7, 4, 2, 0]);
  assert.deepEqual(spacedTimesteps("trailing", 1000, 1, 0), [999]);
  assert.deepEqual(spacedTimesteps("linspace", 1000, 1, 0), [0]);
  assert.equal(spacedTimesteps("trailing", 1000, 1000, 0).length, 1000);
  assert.equal(spacedTimesteps("trailing", 1000, 999, 0).length, 999);
});

Deno.test("checkNumInferenceSteps() and checkIntegerTimestep() name the value", () => {
  assert.equal(checkNumInferenceSteps(50, 1000), 50);
  assert.throws(() => checkNumInferenceSteps(0, 1000), /numInferenceSteps must be an integer in \[1, 1000\]: got 0/);
  assert.throws(() => checkNumInferenceSteps(2.5, 1000), RangeError);
  assert.throws(() => checkNumInferenceSteps("5", 1000), TypeError);
  assert.equal(checkIntegerTimestep(999, 1000), 999);
  assert.throws(() => checkIntegerTimestep(1000, 1000), /timestep must be an integer in \[0, 999\]: got 1000/);
  assert.throws(() => checkIntegerTimestep(0.5, 1000), RangeError);
});

Deno.test("prediction-type conversions invert the forward process", async (t) => {
  const shape = [1, 4, 8, 8];
  const x0 = fixtureBaseSample(shape);
  const eps = fixtureModelOutput(x0, 600);
  const a = f32(0.3);
  const x = new Tensor(x0.data.map((v, i) => Math.sqrt(a) * v + Math.sqrt(1 - a) * eps.data[i]!), shape);
  const close = (p: Tensor, q: Tensor, what: string) => {
    for (let i = 0; i < p.size; i++) assert.ok(Math.abs(p.data[i]! - q.data[i]!) < 1e-5, `${what}[${i}]`);
  };
  await t.step("epsilon", () => {
    const r = originalAndEpsilonFromAlpha("epsilon", eps, x, a);
    close(r.predOriginalSample, x0, "x0");
    assert.equal(r.predEpsilon, eps);
    const ba = f32(Math.sqrt(f32(1 - a)));
    assert.equal(r.predOriginalSample.data[3], f32(f32(x.data[3]! - f32(ba * eps.data[3]!)) / f32(Math.sqrt(a))));
  });
  await t.step("v_prediction", () => {
    const v = new Tensor(eps.data.map((e, i) => Math.sqrt(a) * e - Math.sqrt(1 - a) * x0.data[i]!), shape);
    const r = originalAndEpsilonFromAlpha("v_prediction", v, x, a);
    close(r.predOriginalSample, x0, "x0");
    close(r.predEpsilon, eps, "eps");
  });
  await t.step("sample", () => {
    const r = originalAndEpsilonFromAlpha("sample", x0, x, a);
    assert.deepEqual(r.predOriginalSample.data, x0.data);
    close(r.predEpsilon, eps, "eps");
    close(epsilonFromOriginal(x, x0, a), eps, "epsilonFromOriginal");
  });
  await t.step("σ-space (σ² = (1−ᾱ)/ᾱ, x scaled by 1/√ᾱ)", () => {
    const sigma = f32(Math.sqrt((1 - a) / a));
    const xs = new Tensor(x.data.map((v) => v / Math.sqrt(a)), shape);
    close(originalFromSigma("epsilon", eps, xs, sigma), x0, "eps x0");
    const v = new Tensor(eps.data.map((e, i) => Math.sqrt(a) * e - Math.sqrt(1 - a) * x0.data[i]!), shape);
    close(originalFromSigma("v_prediction", v, xs, sigma), x0, "v x0");
    assert.deepEqual(originalFromSigma("sample", x0, xs, sigma).data, x0.data);
  });
  await t.step("shape mismatch", () => {
    assert.throws(() => originalAndEpsilonFromAlpha("epsilon", Tensor.zeros([2]), Tensor.zeros([3]), a), TypeError);
  });
});

Deno.test("dynamicThreshold() and clipSample()", async (t) => {
  await t.step("per batch item: s = clamp(quantile(|x|), 1, max), then clamp(x, ±s)/s", () => {
    const row0 = Array.from({ length: 100 }, (_, i) => (i - 50) / 100); // |x| < 1 → s = 1, unchanged
    const row1 = Array.from({ length: 100 }, (_, i) => (i % 2 ? -1 : 1) * i); // |x| = 0..99 → s = min(98.505, 10)
    const x = new Tensor(Float32Array.from([...row0, ...row1]), [2, 1, 10, 10]);
    const y = dynamicThreshold(x, 0.995, 10);
    assert.deepEqual(Array.from(y.data.slice(0, 100)), Array.from(Float32Array.from(row0)));
    for (let i = 0; i < 100; i++) assert.equal(y.data[100 + i], f32(Math.min(Math.max(row1[i]!, -10), 10) / 10));
    const z = dynamicThreshold(x, 0.995, 200); // s = the quantile itself (≈ 98.505)
    const s = quantile(row1.map(Math.abs), 0.995);
    assert.ok(Math.abs(s - 98.505) < 1e-4);
    assert.equal(z.data[199], -1); // −99 clamped to −s, divided by s
    assert.equal(z.data[198], f32(98 / s));
    assert.throws(() => dynamicThreshold(Tensor.zeros([4]), 0.9, 1), TypeError);
  });
  await t.step("clipSample clamps to ±range", () => {
    assert.deepEqual(Array.from(clipSample(new Tensor(Float32Array.from([-3, 0.2, 3]), [3]), 1).data), [
      -1,
      f32(0.2),
      1,
    ]);
  });
});

Deno.test("addNoiseAlphas() = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε per batch item", () => {
  const ac = Float32Array.from([0.9, 0.5, 0.1]);
  const x0 = new Tensor(Float32Array.from([1, 2, 3, 4]), [2, 2]);
  const e = new Tensor(Float32Array.from([1, 1, 1, 1]), [2, 2]);
  const one = addNoiseAlphas(ac, x0, e, 1);
  assert.equal(one.data[0], f32(f32(f32(Math.sqrt(f32(0.5))) * 1) + f32(f32(Math.sqrt(f32(1 - f32(0.5)))) * 1)));
  const per = addNoiseAlphas(ac, x0, e, [0, 2]);
  assert.equal(per.data[0], f32(f32(f32(Math.sqrt(ac[0]!)) * 1) + f32(f32(Math.sqrt(f32(1 - ac[0]!))) * 1)));
  assert.equal(per.data[3], f32(f32(f32(Math.sqrt(ac[2]!)) * 4) + f32(f32(Math.sqrt(f32(1 - ac[2]!))) * 1)));
  assert.throws(() => addNoiseAlphas(ac, x0, e, [0, 1, 2]), /1 or 2 \(batch size\) entries: got 3/);
  assert.throws(() => addNoiseAlphas(ac, x0, e, 3), RangeError);
  assert.throws(() => addNoiseAlphas(ac, x0, Tensor.zeros([4]), 0), TypeError);
});

import assert from "node:assert/strict";
import { f32, Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import { DPMSolverMultistepScheduler } from "./dpm_solver_multistep.ts";
import {
  assertClose,
  assertDiffusersResult,
  diffusersSigmaLoop,
  dummyModel,
  loadDiffusersTest,
  loadGzJson,
  replaySchedulerFixture,
} from "./_fixture_test_utils.ts";
import { runSchedulerConformance } from "./_conformance_test_utils.ts";

Deno.test("DPMSolverMultistepScheduler replays every diffusers reference run in dpmsolver_multistep.json.gz", async (t) => {
  // 40 ok runs + 2 that diffusers rejects (dpmsolver with final_sigmas_type "zero").
  const reports = await replaySchedulerFixture(t, "dpmsolver_multistep", { runs: 42, rejected: 2 }, {
    create: (c) => new DPMSolverMultistepScheduler(c),
    tolerance: 1e-5,
    sigmas: (s) => (s as DPMSolverMultistepScheduler).sigmas,
    sigmaTolerance: 0,
  });
  // torch's float32 exp/log are not correctly rounded; the differences stay around 1e-6 relative.
  assert.ok(Math.max(...reports.map((r) => r.worst.relError)) < 2e-6);
});

const TEST_CONFIG = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  solver_order: 2,
  prediction_type: "epsilon",
  thresholding: false,
  sample_max_value: 1.0,
  algorithm_type: "dpmsolver++",
  solver_type: "midpoint",
  lower_order_final: false,
  euler_at_final: false,
  lambda_min_clipped: -Infinity,
  variance_type: null,
  final_sigmas_type: "sigma_min",
};

Deno.test("DPMSolverMultistepScheduler reproduces diffusers' test_scheduler_dpm_multi.py", async (t) => {
  const cases: [string, Record<string, unknown>, number][] = [
    ["test_full_loop_no_noise", {}, 0],
    ["test_full_loop_with_noise", {}, 5],
    [
      "test_full_loop_no_noise_thres",
      { thresholding: true, dynamic_thresholding_ratio: 0.87, sample_max_value: 0.5 },
      0,
    ],
    ["test_full_loop_with_v_prediction", { prediction_type: "v_prediction" }, 0],
    ["test_full_loop_with_karras_and_v_prediction", { prediction_type: "v_prediction", use_karras_sigmas: true }, 0],
    ["test_full_loop_with_lu_and_v_prediction", { prediction_type: "v_prediction", use_lu_lambdas: true }, 0],
  ];
  for (const [name, overrides, tStart] of cases) {
    await t.step(name, async () => {
      const ref = await loadDiffusersTest(`test_scheduler_dpm_multi.py::${name}`);
      // diffusers' `full_loop` (10 steps on the unscaled dummy sample: initNoiseSigma is 1, scaleModelInput the
      // identity).
      const out = diffusersSigmaLoop(new DPMSolverMultistepScheduler({ ...TEST_CONFIG, ...overrides }), { tStart });
      assertDiffusersResult(out, ref, { tolerance: 1e-5, sumOptional: true });
    });
  }
});

Deno.test("DPMSolverMultistepScheduler conforms to the Scheduler contract", async (t) => {
  await t.step(
    "defaults",
    (t) => runSchedulerConformance(t, { create: (c) => new DPMSolverMultistepScheduler(c), integerTimesteps: true }),
  );
  await t.step("third order, heun, Karras", (t) =>
    runSchedulerConformance(t, {
      create: (c) => new DPMSolverMultistepScheduler(c),
      config: { solver_order: 3, solver_type: "heun", use_karras_sigmas: true },
      integerTimesteps: true,
    }));
  await t.step("sde-dpmsolver++ with a generator", (t) =>
    runSchedulerConformance(t, {
      create: (c) => new DPMSolverMultistepScheduler(c),
      config: { algorithm_type: "sde-dpmsolver++" },
      stepOptions: (generator) => ({ generator }),
      makeGenerator: (seed) => new Generator(seed),
      stochastic: true,
      integerTimesteps: true,
    }));
});

Deno.test("DPMSolverMultistepScheduler schedule tables and timesteps match numpy/torch", async (t) => {
  const schedules = await loadGzJson<Record<string, Record<string, number[]>>>("schedules.json.gz");
  await t.step("λ_t table (dpm_lambda_t of schedules.json)", () => {
    for (
      const [name, config] of [
        ["diffusers_defaults", {}],
        ["ldm_super_resolution", { beta_start: 0.0015, beta_end: 0.0155, beta_schedule: "scaled_linear" }],
      ] as const
    ) {
      const s = new DPMSolverMultistepScheduler(config);
      // torch's float32 log may differ from a correctly rounded one by an ulp in a few entries.
      assertClose(s.lambdas, schedules[name]!["dpm_lambda_t"]!, 1e-6, `${name} lambda_t`);
    }
  });
  // Expected values below were computed with numpy 2.4 / scipy 1.17 from diffusers' code (numpy 1.x casting for
  // `_sigma_to_t`), on the training σ of schedules.json.
  await t.step("exponential σ (timesteps truncated, not rounded)", () => {
    const s = new DPMSolverMultistepScheduler({ use_exponential_sigmas: true });
    s.setTimesteps(10);
    assert.deepEqual(Array.from(s.timesteps), [999, 886, 757, 602, 409, 202, 72, 21, 4, 0]);
    const sig = [157.40725708007812, 53.78919982910156, 18.380842208862305, 6.281100749969482, 2.1463773250579834];
    assertClose(s.sigmas.subarray(0, 5), sig, 1e-7, "exponential sigmas");
    assert.equal(s.sigmas[10], 0);
  });
  await t.step("beta σ", () => {
    const s = new DPMSolverMultistepScheduler({ use_beta_sigmas: true, final_sigmas_type: "sigma_min" });
    s.setTimesteps(10);
    assert.deepEqual(Array.from(s.timesteps), [999, 994, 983, 966, 942, 909, 862, 785, 629, 0]);
    const sig = [157.40725708007812, 149.99513244628906, 134.49005126953125, 114.0579605102539, 90.80071258544922];
    assertClose(s.sigmas.subarray(0, 5), sig, 1e-7, "beta sigmas");
    assert.equal(s.sigmas[10], s.sigmas[9]); // σ_min twice: the last ramp value and the final σ
  });
  await t.step("lambda_min_clipped with the cosine schedule", () => {
    const s = new DPMSolverMultistepScheduler({ beta_schedule: "squaredcos_cap_v2", lambda_min_clipped: -5.1 });
    s.setTimesteps(10);
    // λ < −5.1 for the last 4 training steps → last_timestep = 996.
    assert.deepEqual(Array.from(s.timesteps), [995, 896, 796, 696, 597, 498, 398, 298, 199, 100]);
    const unclipped = new DPMSolverMultistepScheduler({ beta_schedule: "squaredcos_cap_v2" });
    unclipped.setTimesteps(10);
    assert.equal(unclipped.timesteps[0], 999);
  });
  await t.step("a JSON '-Infinity' string is accepted for lambda_min_clipped", () => {
    const s = new DPMSolverMultistepScheduler({ lambda_min_clipped: "-Infinity" });
    assert.equal(s.config["lambda_min_clipped"], -Infinity);
  });
});

/**
 * Runs two steps (so the second is a second-order multistep update) with model outputs `first`, `second` and returns
 * the second step's result plus the σ/α of the three σ involved.
 */
function secondStep(config: Record<string, unknown>, first: Tensor, second: Tensor, x: Tensor, noise?: Tensor) {
  const s = new DPMSolverMultistepScheduler({ solver_order: 2, ...config });
  s.setTimesteps(20);
  const ts = s.timesteps;
  const opts = noise === undefined ? undefined : { varianceNoise: noise };
  s.step(first, ts[0]!, x, opts);
  const out = s.step(second, ts[1]!, x, opts).prevSample;
  const al = (sigma: number) => {
    const a = 1 / Math.sqrt(sigma * sigma + 1);
    return { a, s: sigma * a, l: Math.log(a) - Math.log(sigma * a) };
  };
  return { out, s1: al(s.sigmas[0]!), s0: al(s.sigmas[1]!), t: al(s.sigmas[2]!) };
}

Deno.test("DPMSolverMultistepScheduler heun updates integrate a model output affine in λ exactly", async (t) => {
  // x̂₀(λ) (or ε̂(λ)) = A + B·(λ − λ_s0): the exact exponential integrators of Lu et al. give closed forms, and the
  // "heun" (first-order divided difference) multistep updates reproduce them for any h.
  const shape = [1, 1, 2, 2];
  const x = new Tensor(new Float32Array([0.5, -1, 2, 0.25]), shape);
  const A = [0.3, -0.2, 0.1, 0.7], B = [1.5, -0.5, 0.25, 2];
  const outputsAt = (lambdaS1: number, lambdaS0: number) => {
    const first = new Tensor(Float32Array.from(A, (a, k) => a + B[k]! * (lambdaS1 - lambdaS0)), shape);
    return { first, second: new Tensor(Float32Array.from(A), shape) };
  };
  const probe = secondStep({}, Tensor.zeros(shape), Tensor.zeros(shape), x);
  const { first, second } = outputsAt(probe.s1.l, probe.s0.l);
  const zero = Tensor.zeros(shape);

  await t.step("dpmsolver++ (data prediction)", () => {
    const r = secondStep({ prediction_type: "sample", solver_type: "heun" }, first, second, x);
    const h = r.t.l - r.s0.l;
    const exact = x.data.map((xv, k) =>
      (r.t.s / r.s0.s) * xv + r.t.a * (1 - Math.exp(-h)) * A[k]! + r.t.a * B[k]! * (Math.exp(-h) - 1 + h)
    );
    assertClose(r.out.data, exact, 1e-5, "heun ++");
  });
  await t.step("sde-dpmsolver++ with zero noise", () => {
    const r = secondStep(
      { prediction_type: "sample", solver_type: "heun", algorithm_type: "sde-dpmsolver++" },
      first,
      second,
      x,
      zero,
    );
    const h = r.t.l - r.s0.l;
    const exact = x.data.map((xv, k) =>
      (r.t.s / r.s0.s) * Math.exp(-h) * xv + r.t.a * (1 - Math.exp(-2 * h)) * A[k]! +
      r.t.a * B[k]! * (h - (1 - Math.exp(-2 * h)) / 2)
    );
    assertClose(r.out.data, exact, 1e-5, "heun sde++");
  });
  await t.step("dpmsolver (noise prediction)", () => {
    const r = secondStep(
      { solver_type: "heun", algorithm_type: "dpmsolver", final_sigmas_type: "sigma_min" },
      first,
      second,
      x,
    );
    const h = r.t.l - r.s0.l;
    const exact = x.data.map((xv, k) =>
      (r.t.a / r.s0.a) * xv - r.t.s * (Math.exp(h) - 1) * A[k]! - r.t.s * B[k]! * (Math.exp(h) - 1 - h)
    );
    assertClose(r.out.data, exact, 1e-5, "heun dpmsolver");
  });
  await t.step("sde-dpmsolver with zero noise", () => {
    const r = secondStep(
      { solver_type: "heun", algorithm_type: "sde-dpmsolver", final_sigmas_type: "sigma_min" },
      first,
      second,
      x,
      zero,
    );
    const h = r.t.l - r.s0.l;
    const exact = x.data.map((xv, k) =>
      (r.t.a / r.s0.a) * xv - 2 * r.t.s * (Math.exp(h) - 1) * A[k]! - 2 * r.t.s * B[k]! * (Math.exp(h) - 1 - h)
    );
    assertClose(r.out.data, exact, 1e-5, "heun sde-dpmsolver");
  });
});

/**
 * Steps a fresh solver through `values.length` steps of a 20-step schedule with model outputs
 * `A + B·(λ_k − λ_last) + C·(λ_k − λ_last)²` (λ_k of step k) on the same sample `x`, returning the last result and
 * h, α, σ of the last interval (float64 from the float32 σ). The scheduler keeps no samples, so only the last step's
 * `x` matters; with outputs polynomial in λ the multistep divided differences are exactly D1 = B·h, D2 = C·h².
 */
function polynomialRun(
  config: Record<string, unknown>,
  steps: number,
  coef: { A: number[]; B: number[]; C: number[] },
  x: Tensor,
  z?: Tensor,
) {
  const s = new DPMSolverMultistepScheduler(config);
  s.setTimesteps(20);
  const lam = (sigma: number) => -Math.log(sigma); // λ = log α − log σα = −log σ
  const lastLambda = lam(s.sigmas[steps - 1]!);
  let out = x;
  for (let k = 0; k < steps; k++) {
    const u = lam(s.sigmas[k]!) - lastLambda;
    const m = Float32Array.from(coef.A, (a, j) => a + coef.B[j]! * u + coef.C[j]! * u * u);
    out = s.step(new Tensor(m, x.shape), s.timesteps[k]!, x, z === undefined ? undefined : { varianceNoise: z })
      .prevSample;
  }
  const sS = s.sigmas[steps - 1]!, sT = s.sigmas[steps]!;
  const aS = 1 / Math.sqrt(sS * sS + 1), aT = 1 / Math.sqrt(sT * sT + 1);
  return { out, h: lam(sT) - lam(sS), aS, sgS: sS * aS, aT, sgT: sT * aT };
}

Deno.test("DPMSolverMultistepScheduler multistep updates match their closed forms for polynomial histories", async (t) => {
  const shape = [1, 1, 2, 2];
  const x = new Tensor(new Float32Array([0.5, -1, 2, 0.25]), shape);
  const zero = Tensor.zeros(shape);
  const A = [0.3, -0.2, 0.1, 0.7], B = [1.5, -0.5, 0.25, 2], C = [0.4, 0.1, -0.3, 0.05];
  const noC = [0, 0, 0, 0];
  const cases: [
    string,
    Record<string, unknown>,
    number,
    boolean,
    boolean,
    (r: ReturnType<typeof polynomialRun>, k: number) => number,
  ][] = [
    [
      "sde-dpmsolver++ midpoint (2nd order)",
      { algorithm_type: "sde-dpmsolver++", prediction_type: "sample" },
      2,
      false,
      true,
      (r, k) => {
        const e2 = Math.exp(-2 * r.h);
        return (r.sgT / r.sgS) * Math.exp(-r.h) * x.data[k]! + r.aT * (1 - e2) * A[k]! +
          0.5 * r.aT * (1 - e2) * B[k]! * r.h;
      },
    ],
    [
      "sde-dpmsolver midpoint (2nd order)",
      { algorithm_type: "sde-dpmsolver", final_sigmas_type: "sigma_min" },
      2,
      false,
      true,
      (r, k) => {
        const em1 = Math.exp(r.h) - 1;
        return (r.aT / r.aS) * x.data[k]! - 2 * r.sgT * em1 * A[k]! - r.sgT * em1 * B[k]! * r.h;
      },
    ],
    ["dpmsolver++ (3rd order)", { solver_order: 3, prediction_type: "sample" }, 3, true, false, (r, k) => {
      const em1 = Math.exp(-r.h) - 1, h = r.h;
      return (r.sgT / r.sgS) * x.data[k]! - r.aT * em1 * A[k]! + r.aT * (em1 / h + 1) * B[k]! * h -
        r.aT * ((em1 + h) / (h * h) - 0.5) * C[k]! * h * h;
    }],
    [
      "dpmsolver (3rd order)",
      { solver_order: 3, algorithm_type: "dpmsolver", final_sigmas_type: "sigma_min" },
      3,
      true,
      false,
      (r, k) => {
        const em1 = Math.exp(r.h) - 1, h = r.h;
        return (r.aT / r.aS) * x.data[k]! - r.sgT * em1 * A[k]! - r.sgT * (em1 / h - 1) * B[k]! * h -
          r.sgT * ((em1 - h) / (h * h) - 0.5) * C[k]! * h * h;
      },
    ],
    [
      "sde-dpmsolver++ (3rd order)",
      { solver_order: 3, algorithm_type: "sde-dpmsolver++", prediction_type: "sample" },
      3,
      true,
      true,
      (r, k) => {
        const om = 1 - Math.exp(-2 * r.h), h = r.h;
        return (r.sgT / r.sgS) * Math.exp(-h) * x.data[k]! + r.aT * om * A[k]! +
          r.aT * (om / (-2 * h) + 1) * B[k]! * h +
          r.aT * ((om - 2 * h) / (4 * h * h) - 0.5) * C[k]! * h * h;
      },
    ],
  ];
  for (const [name, config, steps, curved, sde, closedForm] of cases) {
    await t.step(name, () => {
      const coef = { A, B, C: curved ? C : noC };
      const r = polynomialRun(config, steps, coef, x, sde ? zero : undefined);
      const expected = Array.from(x.data, (_, k) => closedForm(r, k));
      assertClose(r.out.data, expected, 1e-5, name);
    });
  }
});

Deno.test("DPMSolverMultistepScheduler first order is DDIM for every algorithm and prediction type", () => {
  // For an exact model (x = α_s·x₀ + σ_s·ε) the first-order DPM-Solver and DPM-Solver++ updates are algebraically the
  // same DDIM step, whether the model predicts ε, x₀ or v = α_s·ε − σ_s·x₀, and with dynamic thresholding applied
  // to x̂₀ in either parameterisation. This checks every `convert_model_output` branch against the others.
  const shape = [2, 1, 2, 2];
  const x0 = [0.5, -1.8, 1.2, 0.1, -0.3, 2.5, -0.9, 0.7];
  const eps = [1, -0.5, 0.25, 2, -1.5, 0.3, 0.8, -0.1];
  for (const thresholding of [false, true]) {
    const results: [string, Float32Array][] = [];
    for (const algorithm_type of ["dpmsolver++", "dpmsolver"]) {
      for (const prediction_type of ["epsilon", "sample", "v_prediction"]) {
        const s = new DPMSolverMultistepScheduler({
          solver_order: 1,
          algorithm_type,
          prediction_type,
          thresholding,
          sample_max_value: 1.5,
          final_sigmas_type: "sigma_min",
        });
        s.setTimesteps(10);
        s.setBeginIndex(5);
        const sigma = s.sigmas[5]!;
        const a = 1 / Math.sqrt(sigma * sigma + 1), sg = sigma * a;
        const x = new Tensor(Float32Array.from(x0, (v, k) => a * v + sg * eps[k]!), shape);
        const output = prediction_type === "epsilon"
          ? eps
          : prediction_type === "sample"
          ? x0
          : x0.map((v, k) => a * eps[k]! - sg * v);
        const out = s.step(new Tensor(Float32Array.from(output), shape), s.timesteps[5]!, x).prevSample;
        results.push([`${algorithm_type}/${prediction_type}`, out.data]);
      }
    }
    const [, reference] = results[0]!;
    for (const [name, data] of results) assertClose(data, reference, 2e-5, `thresholding=${thresholding} ${name}`);
    if (thresholding) {
      // Thresholding must have had an effect: x₀ values beyond the per-item quantile are clipped.
      const plain = new DPMSolverMultistepScheduler({
        solver_order: 1,
        final_sigmas_type: "sigma_min",
        prediction_type: "sample",
      });
      plain.setTimesteps(10);
      plain.setBeginIndex(5);
      const sigma = plain.sigmas[5]!;
      const a = 1 / Math.sqrt(sigma * sigma + 1), sg = sigma * a;
      const x = new Tensor(Float32Array.from(x0, (v, k) => a * v + sg * eps[k]!), shape);
      const unclipped = plain.step(new Tensor(Float32Array.from(x0), shape), plain.timesteps[5]!, x).prevSample;
      assert.notDeepEqual(unclipped.data, reference);
    }
  }
});

Deno.test("DPMSolverMultistepScheduler SDE variants: first-order marginals and noise handling", async (t) => {
  const shape = [1, 1, 2, 2];
  const x0 = [0.5, -0.25, 1, 0];
  const eps = [1, -1, 0.5, 2];
  const z = new Tensor(new Float32Array([0.3, -0.7, 1.1, -0.2]), shape);
  await t.step("sde-dpmsolver++ step 1 keeps x ~ α_t·x₀ + σ_t·(e^{-h}ε + √(1−e^{-2h}) z) for an exact model", () => {
    const s = new DPMSolverMultistepScheduler({ algorithm_type: "sde-dpmsolver++", prediction_type: "sample" });
    s.setTimesteps(10);
    const sig = s.sigmas;
    const aS = 1 / Math.sqrt(sig[0]! ** 2 + 1), sS = sig[0]! * aS;
    const aT = 1 / Math.sqrt(sig[1]! ** 2 + 1), sT = sig[1]! * aT;
    const x = new Tensor(Float32Array.from(x0, (v, k) => aS * v + sS * eps[k]!), shape);
    const out = s.step(new Tensor(Float32Array.from(x0), shape), s.timesteps[0]!, x, { varianceNoise: z }).prevSample;
    const eh = (aS / sS) / (aT / sT); // e^{-h}
    const expected = x0.map((v, k) => aT * v + sT * (eh * eps[k]! + Math.sqrt(1 - eh * eh) * z.data[k]!));
    assertClose(out.data, expected, 2e-5, "sde++ marginal");
  });
  await t.step("sde-dpmsolver step 1 equals α_t·x₀ + σ_t((2 − e^h)ε + √(e^{2h} − 1) z)", () => {
    const s = new DPMSolverMultistepScheduler({ algorithm_type: "sde-dpmsolver", final_sigmas_type: "sigma_min" });
    s.setTimesteps(10);
    const sig = s.sigmas;
    const aS = 1 / Math.sqrt(sig[0]! ** 2 + 1), sS = sig[0]! * aS;
    const aT = 1 / Math.sqrt(sig[1]! ** 2 + 1), sT = sig[1]! * aT;
    const x = new Tensor(Float32Array.from(x0, (v, k) => aS * v + sS * eps[k]!), shape);
    const out = s.step(new Tensor(Float32Array.from(eps), shape), s.timesteps[0]!, x, { varianceNoise: z }).prevSample;
    const e = (aT / sT) / (aS / sS); // e^{h}
    const expected = x0.map((v, k) => aT * v + sT * ((2 - e) * eps[k]! + Math.sqrt(e * e - 1) * z.data[k]!));
    assertClose(out.data, expected, 2e-5, "sde marginal");
  });
  await t.step("a generator draws one randn per step; explicit noise of the same values gives the same result", () => {
    const run = (options: (k: number) => { generator?: Generator; varianceNoise?: Tensor }) => {
      const s = new DPMSolverMultistepScheduler({ algorithm_type: "sde-dpmsolver++", solver_order: 3 });
      s.setTimesteps(6);
      let x = new Tensor(Float32Array.from({ length: 8 }, (_, i) => Math.sin(i)), [2, 1, 2, 2]);
      for (const [k, t] of s.timesteps.entries()) x = s.step(dummyModel(x, t), t, x, options(k)).prevSample;
      return x;
    };
    const g = new Generator(3);
    const a = run(() => ({ generator: g }));
    const replay = new Generator(3);
    const draws = Array.from({ length: 6 }, () => replay.randn([2, 1, 2, 2]));
    const b = run((k) => ({ varianceNoise: draws[k]! }));
    assert.deepEqual(a.data, b.data);
    assert.deepEqual(g.randn([3]).data, replay.randn([3]).data); // both consumed exactly six draws
  });
  await t.step("missing or doubled noise sources are errors", () => {
    const s = new DPMSolverMultistepScheduler({ algorithm_type: "sde-dpmsolver++" });
    s.setTimesteps(4);
    const x = Tensor.zeros(shape);
    assert.throws(
      () => s.step(x, s.timesteps[0]!, x),
      (e: unknown) => e instanceof TypeError && /generator/.test(e.message),
    );
    assert.throws(() => s.step(x, s.timesteps[0]!, x, { generator: new Generator(0), varianceNoise: x }), /not both/);
    // A failed call leaves the solver history untouched: retrying gives what a fresh scheduler gives.
    const m = new Tensor(new Float32Array([0.1, 0.2, 0.3, 0.4]), shape);
    const retried = s.step(m, s.timesteps[0]!, x, { generator: new Generator(5) }).prevSample;
    const fresh = new DPMSolverMultistepScheduler({ algorithm_type: "sde-dpmsolver++" });
    fresh.setTimesteps(4);
    assert.deepEqual(
      retried.data,
      fresh.step(m, fresh.timesteps[0]!, x, { generator: new Generator(5) }).prevSample.data,
    );
  });
});

Deno.test("DPMSolverMultistepScheduler final steps and solver order follow diffusers", async (t) => {
  const shape = [1, 1, 1, 2];
  await t.step('final_sigmas_type "zero": the last step returns x̂₀ exactly (dpmsolver++)', () => {
    const s = new DPMSolverMultistepScheduler({ solver_order: 3, prediction_type: "sample" });
    s.setTimesteps(5);
    let x = new Tensor(new Float32Array([3, -2]), shape);
    let last: Tensor = x;
    for (const t of s.timesteps) {
      last = new Tensor(new Float32Array([t / 1000, 0.125]), shape);
      x = s.step(last, t, x).prevSample;
    }
    assert.deepEqual(x.data, last.data);
    assert.equal(s.sigmas.at(-1), 0);
  });
  await t.step("euler_at_final makes the last step first order", () => {
    const outputs = [0.9, 0.5, 0.1].map((v) => new Tensor(new Float32Array([v, -v]), shape));
    const base = { final_sigmas_type: "sigma_min", lower_order_final: false };
    const run = (config: Record<string, unknown>) => {
      const s = new DPMSolverMultistepScheduler({ ...base, ...config });
      s.setTimesteps(3);
      let x = new Tensor(new Float32Array([1, 2]), shape);
      let beforeLast = x;
      for (const [k, t] of s.timesteps.entries()) {
        beforeLast = x;
        x = s.step(outputs[k]!, t, x).prevSample;
      }
      return { final: x, beforeLast, timesteps: s.timesteps };
    };
    const second = run({});
    const euler = run({ euler_at_final: true });
    assert.deepEqual(euler.beforeLast.data, second.beforeLast.data); // identical until the last step
    assert.notDeepEqual(euler.final.data, second.final.data);
    // The last step of `euler` equals a first-order solver's step from the same sample.
    const first = new DPMSolverMultistepScheduler({ ...base, solver_order: 1 });
    first.setTimesteps(3);
    first.setBeginIndex(2);
    const expected = first.step(outputs[2]!, euler.timesteps[2]!, euler.beforeLast).prevSample;
    assert.deepEqual(euler.final.data, expected.data);
  });
  await t.step("a mid-schedule start (begin index) uses first order first, like diffusers' img2img", () => {
    const s = new DPMSolverMultistepScheduler({ solver_order: 3 });
    s.setTimesteps(10);
    s.setBeginIndex(4);
    const x = new Tensor(new Float32Array([1, -1]), shape);
    const y = s.step(x, s.timesteps[4]!, x).prevSample;
    assert.equal(s.stepIndex, 5);
    const ref = new DPMSolverMultistepScheduler({ solver_order: 1 });
    ref.setTimesteps(10);
    ref.setBeginIndex(4);
    assert.deepEqual(y.data, ref.step(x, ref.timesteps[4]!, x).prevSample.data);
  });
  await t.step("an unknown timestep maps to the last step (diffusers' DPM rule)", () => {
    const s = new DPMSolverMultistepScheduler();
    s.setTimesteps(10);
    const x = new Tensor(new Float32Array([1, -1]), shape);
    s.step(x, 12345, x);
    assert.equal(s.stepIndex, 10);
    assert.throws(() => s.step(x, 0, x), /steps are done/);
  });
});

Deno.test("DPMSolverMultistepScheduler learned variance keeps the mean channels", () => {
  const s = new DPMSolverMultistepScheduler({ variance_type: "learned_range" });
  s.setTimesteps(4);
  const x = new Tensor(new Float32Array([1, 2, 3, 4]), [1, 2, 1, 2]);
  const withVariance = new Tensor(new Float32Array([0.1, 0.2, 0.3, 0.4, 9, 9, 9, 9]), [1, 4, 1, 2]);
  const mean = new Tensor(new Float32Array([0.1, 0.2, 0.3, 0.4]), [1, 2, 1, 2]);
  const a = s.step(withVariance, s.timesteps[0]!, x).prevSample;
  const r = new DPMSolverMultistepScheduler();
  r.setTimesteps(4);
  assert.deepEqual(a.data, r.step(mean, r.timesteps[0]!, x).prevSample.data);
  assert.throws(() => s.step(Tensor.zeros([1, 1, 1, 2]), s.timesteps[1]!, x), TypeError);
});

Deno.test("DPMSolverMultistepScheduler config aliases and rejections", async (t) => {
  await t.step("deis → dpmsolver++ and logrho/bh1/bh2 → midpoint, as diffusers registers them", () => {
    const s = new DPMSolverMultistepScheduler({
      algorithm_type: "deis",
      solver_type: "bh2",
      final_sigmas_type: "sigma_min",
    });
    assert.equal(s.config["algorithm_type"], "dpmsolver++");
    assert.equal(s.config["solver_type"], "midpoint");
    const ref = new DPMSolverMultistepScheduler({ final_sigmas_type: "sigma_min" });
    s.setTimesteps(5);
    ref.setTimesteps(5);
    let x = new Tensor(new Float32Array([1, -1]), [1, 2]), y = x;
    for (const t of s.timesteps) {
      x = s.step(dummyModel(x, t), t, x).prevSample;
      y = ref.step(dummyModel(y, t), t, y).prevSample;
    }
    assert.deepEqual(x.data, y.data);
    assert.ok(Object.isFrozen(s.config));
  });
  await t.step("combinations diffusers rejects, and unsupported ones", () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ algorithm_type: "dpmsolver" }, /final_sigmas_type "zero" is not supported for algorithm_type "dpmsolver"/],
      [{ algorithm_type: "sde-dpmsolver" }, /final_sigmas_type/],
      [{ algorithm_type: "deis" }, /final_sigmas_type/],
      [{ algorithm_type: "sde-dpmsolver", final_sigmas_type: "sigma_min", solver_order: 3 }, /third-order/],
      [{ solver_order: 4 }, /solver_order/],
      [{ solver_order: 0 }, /solver_order/],
      [{ algorithm_type: "unipc" }, /algorithm_type/],
      [{ solver_type: "rk4" }, /solver_type/],
      [{ use_karras_sigmas: true, use_beta_sigmas: true }, /only one of/],
      [{ use_flow_sigmas: true }, /use_flow_sigmas/],
      [{ prediction_type: "flow_prediction" }, /flow_prediction/],
      [{ use_dynamic_shifting: true }, /use_dynamic_shifting/],
      [{ variance_type: "fixed_small" }, /variance_type/],
      [{ final_sigmas_type: "min" }, /final_sigmas_type/],
      [{ lambda_min_clipped: "low" }, /lambda_min_clipped/],
    ];
    for (const [config, re] of bad) {
      assert.throws(
        () => new DPMSolverMultistepScheduler(config),
        (e: unknown) => (e instanceof RangeError || e instanceof TypeError) && re.test(e.message),
        JSON.stringify(config),
      );
    }
  });
  await t.step("calls", () => {
    const s = new DPMSolverMultistepScheduler();
    const x = Tensor.zeros([1, 2]);
    assert.equal(s.initNoiseSigma, 1);
    assert.equal(s.scaleModelInput(x, 999), x);
    assert.throws(() => s.step(x, 999, x), /setTimesteps/);
    assert.throws(() => s.setTimesteps(1001), /\[1, 1000\]: got 1001/);
    s.setTimesteps(3);
    assert.throws(() => s.step(Tensor.zeros([1, 3]), 999, x), TypeError);
    assert.throws(() => s.step(x, Number.NaN, x), TypeError);
  });
});

Deno.test("DPMSolverMultistepScheduler addNoise is α_t·x₀ + σ_t·ε", () => {
  const s = new DPMSolverMultistepScheduler();
  s.setTimesteps(10);
  const x = new Tensor(new Float32Array([1, -2]), [1, 2]);
  const e = new Tensor(new Float32Array([0.5, 0.25]), [1, 2]);
  const t = s.timesteps[3]!;
  const sigma = s.sigmas[3]!;
  const a = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1)))), st = f32(sigma * a);
  assert.deepEqual(Array.from(s.addNoise(x, e, t).data), [
    f32(f32(a * 1) + f32(st * 0.5)),
    f32(f32(a * -2) + f32(st * 0.25)),
  ]);
});

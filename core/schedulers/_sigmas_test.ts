import assert from "node:assert/strict";
import { f32, Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import {
  betaPpf,
  betaSigmas,
  checkBeginIndex,
  exponentialSigmas,
  hiddenSigmaBound,
  indexForTimestep,
  initNoiseSigmaFor,
  interpOnIndexGrid,
  karrasSigmas,
  logFloat32,
  luLambdas,
  sigmaTimesteps,
  sigmaToT,
  stepNoise,
  trainingSigmas,
} from "./_sigmas.ts";
import { loadGzJson } from "./_fixture_test_utils.ts";

Deno.test("interpOnIndexGrid follows numpy.interp on an integer grid", () => {
  const fp = new Float32Array([1, 2, 4, 8]);
  const out = interpOnIndexGrid([0, 0.5, 1, 2.25, 3, -1, 7, Number.NaN], fp);
  assert.deepEqual(Array.from(out.subarray(0, 7)), [1, 1.5, 2, 5, 8, 1, 8]);
  assert.ok(Number.isNaN(out[7]!));
  // slope·(x − j) + fp[j] in float64, not a float32 lerp
  const g = new Float32Array([f32(0.1), f32(0.7)]);
  assert.equal(interpOnIndexGrid([0.3], g)[0], (g[1]! - g[0]!) * 0.3 + g[0]!);
});

Deno.test("trainingSigmas and logFloat32 reproduce schedules.json", async () => {
  const schedules = await loadGzJson<Record<string, Record<string, number[]>>>("schedules.json.gz");
  for (const name of ["diffusers_defaults", "ldm_super_resolution"]) {
    const ac = Float32Array.from(schedules[name]!["alphas_cumprod"]!);
    assert.deepEqual(Array.from(trainingSigmas(ac)), schedules[name]!["sigmas_train_ascending"]!);
  }
  assert.deepEqual(Array.from(logFloat32(new Float32Array([1, Math.E]))), [0, f32(Math.log(f32(Math.E)))]);
});

Deno.test("sigmaTimesteps: spacings of LMS/Euler/Euler-ancestral, including numpy's arange quirk", () => {
  assert.deepEqual(Array.from(sigmaTimesteps("linspace", 1000, 4, 0)), [999, 666, 333, 0]);
  assert.deepEqual(Array.from(sigmaTimesteps("linspace", 1000, 3, 0)), [999, 499.5, 0]);
  assert.deepEqual(Array.from(sigmaTimesteps("leading", 1000, 4, 1)), [751, 501, 251, 1]);
  assert.deepEqual(Array.from(sigmaTimesteps("trailing", 1000, 4, 0)), [999, 749, 499, 249]);
  // np.arange(1000, 0, -1000/61) has 62 elements in numpy (float rounding of the length); diffusers keeps them all.
  const t = sigmaTimesteps("trailing", 1000, 61, 0);
  assert.equal(t.length, 62);
  assert.equal(t[61], -1);
});

Deno.test("sigmaToT inverts the log-σ table (numpy 1.x float32 weights)", async () => {
  const schedules = await loadGzJson<Record<string, Record<string, number[]>>>("schedules.json.gz");
  const sig = Float32Array.from(schedules["diffusers_defaults"]!["sigmas_train_ascending"]!);
  const logs = logFloat32(sig);
  // Exact table values map to their index; beyond the ends the weight is clipped.
  for (const i of [0, 1, 500, 998, 999]) assert.equal(f32(sigmaToT(sig[i]!, logs)), i);
  assert.equal(sigmaToT(1e6, logs), 999);
  assert.equal(sigmaToT(1e-3, logs), 0);
  assert.equal(sigmaToT(0, logs), 0); // log(max(σ, 1e-10))
  // Between two entries the result is fractional and monotone.
  const mid = Math.sqrt(sig[400]! * sig[401]!);
  const t = sigmaToT(mid, logs);
  assert.ok(t > 400 && t < 401, `${t}`);
  assert.throws(() => sigmaToT(1, new Float32Array([0])), RangeError);
});

Deno.test("Karras, exponential, beta and Lu ramps", () => {
  const k = karrasSigmas(0.1, 10, 5);
  assert.ok(Math.abs(k[0]! - 10) < 1e-12 && Math.abs(k[4]! - 0.1) < 1e-13);
  const r = Array.from(k, (s) => s ** (1 / 7));
  for (let i = 1; i < 4; i++) assert.ok(Math.abs(r[i + 1]! - 2 * r[i]! + r[i - 1]!) < 1e-12);
  const e = exponentialSigmas(0.1, 10, 5);
  assert.deepEqual(Array.from(e, (s) => Math.round(Math.log10(s) * 1e12) / 1e12), [1, 0.5, 0, -0.5, -1]);
  assert.deepEqual(Array.from(luLambdas(-2, 2, 5)), [2, 1, 0, -1, -2]);
  const one = karrasSigmas(1, 2, 1); // linspace(0, 1, 1) = [0]: only σ_max, as (2^(1/7))^7
  assert.equal(one.length, 1);
  assert.ok(Math.abs(one[0]! - 2) < 1e-14);
  // scipy.stats.beta.ppf(q, 0.6, 0.6) (scipy 1.17)
  const scipy: [number, number][] = [
    [0.999, 0.9999814412614826],
    [0.9, 0.9604155944112192],
    [0.75, 0.824319621347305],
    [0.5, 0.5],
    [0.1, 0.03958440558878085],
    [1e-5, 8.614243295846627e-9],
  ];
  for (const [q, p] of scipy) assert.ok(Math.abs(betaPpf(q, 0.6, 0.6) - p) <= 1e-13 + 1e-12 * p, `ppf(${q})`);
  assert.equal(betaPpf(0, 0.6, 0.6), 0);
  assert.equal(betaPpf(1, 0.6, 0.6), 1);
  assert.ok(Number.isNaN(betaPpf(1.5, 0.6, 0.6)));
  const b = betaSigmas(0.0291675, 25.146116, 7);
  const scipySigmas = [25.146116, 22.848246867739487, 18.228574559322908, 12.587641750000003, 6.946708940677094];
  for (const [i, v] of scipySigmas.entries()) assert.ok(Math.abs(b[i]! - v) < 1e-12 * v, `beta σ ${i}`);
});

Deno.test("indexForTimestep: float32 comparison, second occurrence, absent timesteps", () => {
  const schedule = new Float32Array([999, 832.5, 500, 500, 0]);
  assert.equal(indexForTimestep(schedule, 832.5, "throw", "X"), 1);
  assert.equal(indexForTimestep(schedule, 832.5000000001, "throw", "X"), 1); // torch casts the number to float32
  assert.equal(indexForTimestep(schedule, 500, "throw", "X"), 3);
  assert.equal(indexForTimestep(schedule, 7, "last", "X"), 4);
  assert.throws(() => indexForTimestep(schedule, 7, "throw", "X"), /X: timestep 7 is not one of/);
  assert.throws(() => indexForTimestep(schedule, Number.POSITIVE_INFINITY, "last", "X"), TypeError);
  assert.throws(() => checkBeginIndex(5, 5), /beginIndex must be an integer in \[0, 4\]: got 5/);
  assert.equal(checkBeginIndex(4, 5), 4);
});

Deno.test("initNoiseSigmaFor per spacing", () => {
  const sigmas = new Float32Array([3, 2, 0]);
  assert.equal(initNoiseSigmaFor(sigmas, "linspace"), 3);
  assert.equal(initNoiseSigmaFor(sigmas, "trailing"), 3);
  assert.equal(initNoiseSigmaFor(sigmas, "leading"), f32(Math.sqrt(10)));
  assert.ok(Number.isNaN(initNoiseSigmaFor(new Float32Array([1, Number.NaN]), "linspace")));
});

Deno.test("stepNoise and hiddenSigmaBound validate their inputs", () => {
  const shape = [1, 2];
  const noise = new Tensor(new Float32Array([1, 2]), shape);
  assert.equal(stepNoise({ varianceNoise: noise }, shape, "X", "why"), noise);
  assert.deepEqual(
    stepNoise({ generator: new Generator(0) }, shape, "X", "why").data,
    new Generator(0).randn(shape).data,
  );
  assert.throws(() => stepNoise({}, shape, "X", "it adds noise"), /X.step needs options.generator .*it adds noise/);
  assert.throws(() => stepNoise(undefined, shape, "X", "w"), TypeError);
  assert.throws(() => stepNoise({ varianceNoise: noise, generator: new Generator(0) }, shape, "X", "w"), /not both/);
  assert.throws(() => stepNoise({ varianceNoise: Tensor.zeros([2, 1]) }, shape, "X", "w"), /shape \[2, 1\]/);
  assert.equal(hiddenSigmaBound({}, "sigma_min", "X"), null);
  assert.equal(hiddenSigmaBound({ sigma_min: null }, "sigma_min", "X"), null);
  assert.equal(hiddenSigmaBound({ sigma_max: 80 }, "sigma_max", "X"), 80);
  assert.throws(() => hiddenSigmaBound({ sigma_max: -1 }, "sigma_max", "X"), /X config: sigma_max/);
});

import assert from "node:assert/strict";
import { AssertionError } from "node:assert";
import { Tensor } from "../tensor/mod.ts";
import { DDIMScheduler } from "./ddim.ts";
import type { Scheduler, StepOptions, StepOutput } from "./types.ts";
import {
  assertBitExact,
  assertDiffusersResult,
  assertRunRejected,
  compareArrays,
  dummyDeter,
  fixtureBaseSample,
  fixtureModelOutput,
  fixtureNoise,
  loadDiffusersTest,
  loadSchedulerFixture,
  replayRun,
  runConfig,
} from "./_fixture_test_utils.ts";

/** Wraps a scheduler and lets a test tamper with one aspect of it. */
class Tampered implements Scheduler {
  constructor(
    readonly inner: Scheduler,
    readonly tamper: { output?: (out: StepOutput, k: number) => void; timesteps?: (ts: number[]) => number[] },
  ) {}
  #k = 0;
  get className() {
    return this.inner.className;
  }
  get config() {
    return this.inner.config;
  }
  get timesteps() {
    const ts = Array.from(this.inner.timesteps);
    return this.tamper.timesteps?.(ts) ?? ts;
  }
  get initNoiseSigma() {
    return this.inner.initNoiseSigma;
  }
  get order() {
    return this.inner.order;
  }
  setTimesteps(n: number) {
    this.#k = 0;
    this.inner.setTimesteps(n);
  }
  scaleModelInput(sample: Tensor, t: number) {
    return this.inner.scaleModelInput(sample, t);
  }
  step(m: Tensor, t: number, x: Tensor, o?: StepOptions) {
    const out = this.inner.step(m, t, x, o);
    this.tamper.output?.(out, this.#k++);
    return out;
  }
}

Deno.test("fixture formulas rebuild the recorded inputs", async () => {
  const fixture = await loadSchedulerFixture("ddim");
  assert.deepEqual(Array.from(fixtureBaseSample(fixture.shape).data), fixture.base_sample);
  const run = fixture.runs.find((r) => r.id.includes("diffusers_defaults|eta=1.0|steps=7"))!;
  assert.deepEqual(Array.from(fixtureBaseSample(fixture.shape).data), run.initial_sample);
  // Σ model_output of step 0 matches the recorded sanity value.
  const out = fixtureModelOutput(fixtureBaseSample(fixture.shape), run.steps![0]!.t);
  const sum = out.data.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - run.steps![0]!.model_output_sum) < 1e-5, `${sum} vs ${run.steps![0]!.model_output_sum}`);
  assert.equal(fixtureNoise(2, [4]).data[1], Math.fround(Math.sin(12.9898 + 2 * 78.233)));
  assert.deepEqual(runConfig(fixture, run), { ...run.overrides });
});

Deno.test("replayRun() reports a single perturbed element with run, step and index", async () => {
  const fixture = await loadSchedulerFixture("ddim");
  const run = fixture.runs.find((r) => r.id.includes("ldm_super_resolution|eta=1.0|steps=7"))!;
  // The untampered scheduler passes…
  const ok = replayRun(fixture, run, { create: (c) => new DDIMScheduler(c) });
  assert.equal(ok.worst.absError, 0);
  assert.equal(ok.steps, 7);
  // …and a 2e-6 relative error in one element of step 4 fails with a precise message.
  assert.throws(
    () =>
      replayRun(fixture, run, {
        create: (c) =>
          new Tampered(new DDIMScheduler(c), {
            output: (out, k) => {
              if (k === 4) out.prevSample.data[37] = out.prevSample.data[37]! * (1 + 2e-6) + 2e-6;
            },
          }),
      }),
    (e: unknown) => {
      assert.ok(e instanceof AssertionError);
      assert.match(e.message, /eta=1\.0\|steps=7.*step 4 \(t=285\) prev_sample: worst element 37/);
      return true;
    },
  );
});

Deno.test("replayRun() rejects wrong timesteps, a wrong config and missing noise", async () => {
  const fixture = await loadSchedulerFixture("ddim");
  const run = fixture.runs.find((r) => r.id.includes("diffusers_defaults|eta=1.0|steps=7"))!;
  assert.throws(
    () =>
      replayRun(fixture, run, {
        create: (c) => new Tampered(new DDIMScheduler(c), { timesteps: (ts) => ts.map((t) => t + 1) }),
      }),
    /timesteps \[853, 711.*differ/,
  );
  assert.throws(
    () => replayRun(fixture, run, { create: (c) => new DDIMScheduler({ ...c, steps_offset: 1 }) }),
    /config.steps_offset is 1, diffusers has 0/,
  );
  assert.throws(
    () => replayRun(fixture, run, { create: (c) => new DDIMScheduler(c), stepOptions: () => ({ eta: 0 }) }),
    /step 0 .*exceeds tolerance/,
  );
});

Deno.test("assertRunRejected() fails when the implementation accepts what diffusers rejected", async () => {
  const fixture = await loadSchedulerFixture("pndm");
  const run = fixture.runs.find((r) => r.status === "error")!;
  assert.throws(() => assertRunRejected(fixture, run, (c) => new DDIMScheduler(c)), /no error was thrown/);
});

Deno.test("compareArrays() uses |a − e| ≤ tol·max(1, |e|) and treats NaN strictly", () => {
  const w = compareArrays([1, 100.001, 3], [1, 100, 3], "x");
  assert.equal(w.index, 1);
  assert.ok(Math.abs(w.relError - 1e-5) < 1e-9);
  assert.equal(compareArrays([NaN], [NaN], "n").relError, 0);
  assert.equal(compareArrays([0], [NaN], "n").relError, Infinity);
  assert.throws(() => compareArrays([1], [1, 2], "len"), TypeError);
});

Deno.test("dummyDeter() is diffusers' permuted arange(768)/768", () => {
  const s = dummyDeter();
  assert.deepEqual(s.shape, [4, 3, 8, 8]);
  // s[d, a, b, c] = x[a, b, c, d] with x = arange(768).reshape(3, 8, 8, 4) / 768
  const at = (t: Tensor, d: number, a: number, b: number, c: number) => t.data[((d * 3 + a) * 8 + b) * 8 + c]!;
  assert.equal(at(s, 1, 0, 0, 0), Math.fround(1 / 768));
  assert.equal(at(s, 0, 0, 0, 1), Math.fround(4 / 768));
  assert.equal(at(s, 0, 1, 0, 0), Math.fround(256 / 768));
  assert.equal(at(dummyDeter(true), 0, 0, 0, 0), Math.fround(767 / 768));
});

Deno.test("assertDiffusersResult() checks the final sample, the pinned sum and mean; assertBitExact() any error", async () => {
  const ref = await loadDiffusersTest("test_scheduler_ddim.py::test_full_loop_no_noise");
  const exact = new Tensor(Float32Array.from(ref.final_sample), [4, 3, 8, 8]);
  assertDiffusersResult(exact, ref, { tolerance: 1e-6, bitExact: true });
  const nudged = exact.clone();
  nudged.data[5] = nudged.data[5]! * (1 + 2 ** -20);
  assertDiffusersResult(nudged, ref, { tolerance: 1e-6 });
  assert.throws(() => assertDiffusersResult(nudged, ref, { tolerance: 1e-6, bitExact: true }), /bit-exact/);
  assert.throws(() => assertDiffusersResult(nudged, ref, { tolerance: 1e-9 }), /exceeds tolerance/);
  const offSum = { ...ref, expected_result_sum: ref.expected_result_sum! + 0.02 };
  assert.throws(() => assertDiffusersResult(exact, offSum, { tolerance: 1e-6 }), /sum/);
  assertDiffusersResult(exact, offSum, { tolerance: 1e-6, sumTolerance: 0.03 });
  const noSum = { ...ref, expected_result_sum: null };
  assert.throws(() => assertDiffusersResult(exact, noSum, { tolerance: 1e-6 }), /sum/);
  assertDiffusersResult(exact, noSum, { tolerance: 1e-6, sumOptional: true });
  const offMean = { ...ref, expected_result_mean: ref.expected_result_mean + 2e-3 };
  assert.throws(() => assertDiffusersResult(exact, offMean, { tolerance: 1e-6 }), /mean/);
  const worst = compareArrays(nudged.data, exact.data, "final");
  assertBitExact([{ id: "a", worst: compareArrays(exact.data, exact.data, "final"), steps: 1 }]);
  assert.throws(() => assertBitExact([{ id: "b", worst, steps: 1 }]), /b: final: worst element 5/);
});

/**
 * Scheduler benchmark: µs per `step()` of each of the six schedulers on a [2, 4, 32, 32] sample (the latent batch of
 * a guided 256×256 text-to-image run), and µs per `Generator.randn([1, 4, 32, 32])` (one initial-latent draw).
 *
 * Each timing runs a whole 20-step loop (the model output is a fixed tensor, so only scheduler math is measured) and
 * divides by the number of `step` calls, because PNDM, LMS and DPM-Solver carry state between steps. Ratios are
 * against `DDIMScheduler.step` measured in the same run.
 *
 * @module
 */
import type { BenchRow, BenchSuite } from "./_harness.ts";
import { timeMedianMs } from "./_harness.ts";
import { Generator } from "@ldm/core/random";
import { createSchedulerByName, type Scheduler, SCHEDULER_NAMES, type StepOptions } from "@ldm/core/schedulers";
import { Tensor } from "@ldm/core/tensor";

const SHAPE = [2, 4, 32, 32] as const;
const STEPS = 20;

function deterministic(shape: readonly number[], salt: number): Tensor {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sin(i * 12.9898 + salt * 78.233);
  return t;
}

/** Runs one full loop; returns the number of `step` calls. */
function runLoop(scheduler: Scheduler, modelOutput: Tensor, start: Tensor, options: () => StepOptions): number {
  scheduler.setTimesteps(STEPS);
  const stepOptions = options();
  let sample = start;
  let calls = 0;
  for (const t of Array.from(scheduler.timesteps)) {
    sample = scheduler.step(modelOutput, t, sample, stepOptions).prevSample;
    calls++;
  }
  return calls;
}

/** Runs the suite (see the module doc). */
export async function run(): Promise<BenchSuite> {
  const rows: BenchRow[] = [];
  const modelOutput = deterministic(SHAPE, 1);
  const start = deterministic(SHAPE, 2);
  const variants: { label: string; name: keyof typeof SCHEDULER_NAMES; options: () => StepOptions }[] = [
    { label: "DDIMScheduler.step", name: "ddim", options: () => ({}) },
    {
      label: "DDIMScheduler.step η=1 (generator)",
      name: "ddim",
      options: () => ({ eta: 1, generator: new Generator(0) }),
    },
    { label: "PNDMScheduler.step", name: "pndm", options: () => ({}) },
    { label: "LMSDiscreteScheduler.step", name: "lms", options: () => ({}) },
    { label: "EulerDiscreteScheduler.step", name: "euler", options: () => ({}) },
    {
      label: "EulerAncestralDiscreteScheduler.step (generator)",
      name: "euler-ancestral",
      options: () => ({ generator: new Generator(0) }),
    },
    { label: "DPMSolverMultistepScheduler.step", name: "dpm-multistep", options: () => ({}) },
  ];
  let baseline: number | undefined;
  for (const v of variants) {
    const scheduler = createSchedulerByName(v.name, { clip_sample: false });
    let calls = 1;
    const ms = await timeMedianMs(() => {
      calls = runLoop(scheduler, modelOutput, start, v.options);
    }, { warmup: 2, iterations: 10 });
    const us = (ms * 1000) / calls;
    baseline ??= us;
    rows.push({
      name: `${v.label} [${SHAPE.join(",")}]`,
      value: us,
      unit: "µs",
      ...(v.label === variants[0]!.label ? {} : { ratio: us / baseline, baseline: variants[0]!.label }),
      notes: `${STEPS} steps, ${calls} step calls per loop`,
    });
  }
  const g = new Generator(0);
  const randnMs = await timeMedianMs(() => {
    for (let i = 0; i < 100; i++) g.randn([1, 4, 32, 32]);
  }, { warmup: 2, iterations: 10 });
  rows.push({
    name: "Generator.randn [1,4,32,32]",
    value: (randnMs * 1000) / 100,
    unit: "µs",
    notes: "100 draws per timing",
  });
  return { name: "schedulers", rows };
}

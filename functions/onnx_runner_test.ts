import assert from "node:assert/strict";
import { SCHEDULER_NAME_LIST } from "@ldm/core/pipelines";
import { SCHEDULER_NAMES } from "@ldm/sdk/schemas";
import { createRunner, schedulerNameOf } from "./onnx_runner.ts";

Deno.test("the API's scheduler names are exactly the pipelines' names", () => {
  assert.deepEqual([...SCHEDULER_NAMES].sort(), [...SCHEDULER_NAME_LIST].sort());
});

Deno.test("schedulerNameOf() maps diffusers classes to the short names", () => {
  assert.equal(schedulerNameOf("DDIMScheduler"), "ddim");
  assert.equal(schedulerNameOf("DPMSolverMultistepScheduler"), "dpm-multistep");
  assert.equal(schedulerNameOf("HeunDiscreteScheduler"), null);
});

Deno.test("createRunner() names the repository that could not be loaded", async () => {
  await assert.rejects(
    () =>
      createRunner({
        functions: ["super-resolution"],
        textToImageModelDir: "",
        superResolutionModelDir: "/nonexistent/sr-model",
        executionProviders: ["cpu"],
        intraOpThreads: 1,
        maxInputPixels: 1024,
      }),
    /super-resolution model \/nonexistent\/sr-model: /,
  );
});

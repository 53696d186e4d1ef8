import assert from "node:assert/strict";
import {
  createScheduler,
  createSchedulerByName,
  DDIMScheduler,
  DPMSolverMultistepScheduler,
  EulerAncestralDiscreteScheduler,
  EulerDiscreteScheduler,
  isSchedulerName,
  LMSDiscreteScheduler,
  PNDMScheduler,
  SCHEDULER_CLASSES,
  SCHEDULER_NAMES,
  type SchedulerName,
} from "./mod.ts";
import { loadGzJson } from "./_fixture_test_utils.ts";

const CLASSES = {
  DDIMScheduler,
  PNDMScheduler,
  LMSDiscreteScheduler,
  EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler,
  DPMSolverMultistepScheduler,
};

interface ScheduleEntry {
  config_json: Record<string, unknown> | null;
  effective_config_per_class: Record<string, Record<string, unknown>>;
}

function sameValue(actual: unknown, expected: unknown): boolean {
  if (expected === "-Infinity" || expected === "Infinity") {
    return actual === (expected === "Infinity" ? Infinity : -Infinity);
  }
  return Object.is(actual, expected);
}

Deno.test("createScheduler() builds the class named by _class_name", () => {
  for (const [name, Cls] of Object.entries(CLASSES)) {
    const s = createScheduler({ _class_name: name, beta_start: 0.0015 });
    assert.ok(s instanceof Cls, name);
    assert.equal(s.className, name);
    assert.equal(s.config["beta_start"], 0.0015);
    assert.equal(SCHEDULER_CLASSES[name as keyof typeof SCHEDULER_CLASSES], Cls);
  }
});

Deno.test("createScheduler() errors list the supported classes", () => {
  const supported =
    /DDIMScheduler, PNDMScheduler, LMSDiscreteScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler/;
  assert.throws(() => createScheduler({ _class_name: "DDPMScheduler" }), (e: unknown) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, supported);
    assert.match(e.message, /got "DDPMScheduler"/);
    return true;
  });
  assert.throws(() => createScheduler({}), (e: unknown) => e instanceof TypeError && supported.test(e.message));
  assert.throws(() => createScheduler({ _class_name: 7 }), /got 7/);
  assert.throws(() => createScheduler(null as unknown as Record<string, unknown>), TypeError);
  // invalid fields surface from the class
  assert.throws(() => createScheduler({ _class_name: "DDIMScheduler", beta_schedule: "x" }), /beta_schedule/);
});

Deno.test("createSchedulerByName() maps the CLI/API short names", () => {
  assert.deepEqual(Object.keys(SCHEDULER_NAMES), ["ddim", "pndm", "lms", "euler", "euler-ancestral", "dpm-multistep"]);
  for (const [short, cls] of Object.entries(SCHEDULER_NAMES)) {
    assert.ok(isSchedulerName(short));
    const s = createSchedulerByName(short);
    assert.ok(s instanceof CLASSES[cls], short);
  }
  assert.ok(!isSchedulerName("heun") && !isSchedulerName(3) && !isSchedulerName("toString"));
  assert.throws(
    () => createSchedulerByName("heun"),
    /scheduler name must be one of ddim, pndm, lms, euler, euler-ancestral, dpm-multistep: got "heun"/,
  );
});

Deno.test("createSchedulerByName() = from_config: every class resolves diffusers' effective config", async (t) => {
  const tables = await loadGzJson<Record<string, ScheduleEntry>>("schedules.json.gz");
  for (const source of ["ldm_super_resolution", "diffusers_defaults"]) {
    const entry = tables[source]!;
    for (const [short, cls] of Object.entries(SCHEDULER_NAMES) as [SchedulerName, keyof typeof CLASSES][]) {
      await t.step(`${source} → ${cls}`, () => {
        const s = createSchedulerByName(short, entry.config_json ?? {});
        const expected = entry.effective_config_per_class[cls]!;
        for (const [key, value] of Object.entries(expected)) {
          assert.ok(sameValue(s.config[key], value), `${cls}.config.${key}: ${s.config[key]} vs diffusers ${value}`);
        }
      });
    }
  }
});

Deno.test("swapping schedulers drops the source's defaults (ldm-reference §3.0)", async () => {
  const fixture = await loadGzJson<{ configs: Record<string, { config: Record<string, unknown> }> }>("ddim.json.gz");
  const t2i = createScheduler(fixture.configs["ldm_text2im"]!.config);
  assert.equal(t2i.config["timestep_spacing"], "leading");
  const euler = createSchedulerByName("euler", t2i.config);
  assert.equal(euler.config["timestep_spacing"], "linspace"); // Euler's own default, not DDIM's "leading"
  assert.equal(euler.config["beta_end"], 0.012);
  const pndm = createSchedulerByName("pndm", t2i.config, { skip_prk_steps: true });
  assert.equal(pndm.config["set_alpha_to_one"], false);
  pndm.setTimesteps(5);
  assert.deepEqual(Array.from(pndm.timesteps), [800, 600, 600, 400, 200, 0]);
  // An override wins even over a key the source took as a default.
  const forced = createSchedulerByName("pndm", t2i.config, { set_alpha_to_one: true });
  assert.equal(forced.config["set_alpha_to_one"], true);
  // Round trip back to DDIM keeps the checkpoint's explicit keys.
  const back = createSchedulerByName("ddim", euler.config);
  assert.equal(back.config["beta_start"], 0.00085);
  assert.equal(back.config["clip_sample"], false);
});

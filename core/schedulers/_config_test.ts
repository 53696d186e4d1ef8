import assert from "node:assert/strict";
import {
  boolean,
  COMMON_FIELDS,
  defineConfig,
  integer,
  nullable,
  number,
  numberArray,
  oneOf,
  withOverrides,
} from "./_config.ts";

const RESOLVER = defineConfig("TestScheduler", {
  ...COMMON_FIELDS,
  clip_sample: boolean(true),
  set_alpha_to_one: boolean(false),
  solver_order: integer(2, { min: 1, max: 3 }),
  prediction_type: oneOf(["epsilon", "v_prediction"] as const, "epsilon"),
  sigma_min: nullable(number(0, { min: 0 })),
  lambda_min_clipped: number(-Infinity, { allowInfinite: true }),
  ratio: number(0.5, { min: 0, exclusiveMin: true, max: 1 }),
});

Deno.test("defineConfig().resolve() fills diffusers defaults and types the values", () => {
  const { values, config } = RESOLVER.resolve();
  assert.equal(values.num_train_timesteps, 1000);
  assert.equal(values.beta_start, 0.0001);
  assert.equal(values.beta_end, 0.02);
  assert.equal(values.beta_schedule, "linear");
  assert.equal(values.trained_betas, null);
  assert.equal(values.steps_offset, 0);
  assert.equal(values.solver_order, 2);
  assert.equal(values.sigma_min, null);
  assert.equal(values.lambda_min_clipped, -Infinity);
  assert.ok(Object.isFrozen(values) && Object.isFrozen(config));
  assert.equal(config["_class_name"], "TestScheduler");
  assert.deepEqual(config["_use_default_values"], Object.keys(RESOLVER.fields));
});

Deno.test("resolve() ignores keys the class does not declare but keeps them in config (hidden keys)", () => {
  const { values, config } = RESOLVER.resolve({
    _class_name: "DDIMScheduler",
    _diffusers_version: "0.7.0",
    timestep_values: null,
    thresholding: true,
    beta_start: 0.0015,
  });
  assert.equal(values.beta_start, 0.0015);
  assert.ok(!("thresholding" in values));
  assert.equal(config["thresholding"], true);
  assert.equal(config["timestep_values"], null);
  assert.equal(config["_diffusers_version"], "0.7.0");
  assert.equal(config["_class_name"], "TestScheduler");
  assert.ok(!(config["_use_default_values"] as string[]).includes("beta_start"));
});

Deno.test("resolve() drops keys listed in _use_default_values so the class applies its own defaults", () => {
  const other = {
    set_alpha_to_one: true,
    clip_sample: false,
    steps_offset: 1,
    _use_default_values: ["set_alpha_to_one"],
  };
  const { values, config } = RESOLVER.resolve(other);
  assert.equal(values.set_alpha_to_one, false); // this class's default, not the other class's
  assert.equal(values.clip_sample, false); // explicitly present: carried over
  assert.equal(values.steps_offset, 1);
  assert.ok((config["_use_default_values"] as string[]).includes("set_alpha_to_one"));
  assert.ok(!("set_alpha_to_one" in config) || config["set_alpha_to_one"] === false);
  // the resolved config round-trips
  assert.deepEqual({ ...RESOLVER.resolve(config).config }, { ...config });
});

Deno.test("withOverrides() lets an override win over _use_default_values (from_config(**kwargs))", () => {
  const base = { a: 1, set_alpha_to_one: true, _use_default_values: ["set_alpha_to_one", "clip_sample"] };
  const merged = withOverrides(base, { set_alpha_to_one: true });
  assert.deepEqual(merged["_use_default_values"], ["clip_sample"]);
  assert.equal(RESOLVER.resolve(merged).values.set_alpha_to_one, true);
  assert.deepEqual(base._use_default_values, ["set_alpha_to_one", "clip_sample"], "input not modified");
  assert.deepEqual(withOverrides({ x: 1 }), { x: 1 });
});

Deno.test("resolve() errors name the class, field and value", async (t) => {
  const cases: [Record<string, unknown>, RegExp, typeof TypeError | typeof RangeError][] = [
    [
      { num_train_timesteps: 0 },
      /TestScheduler config: num_train_timesteps must be an integer >= 1: got 0/,
      RangeError,
    ],
    [{ num_train_timesteps: 10.5 }, /num_train_timesteps .*got 10.5/, RangeError],
    [{ num_train_timesteps: "1000" }, /num_train_timesteps must be an integer >= 1: got "1000"/, TypeError],
    [
      { beta_schedule: "cosine" },
      /beta_schedule must be one of "linear", "scaled_linear", "squaredcos_cap_v2": got "cosine"/,
      RangeError,
    ],
    [{ beta_schedule: 3 }, /beta_schedule .*got 3/, TypeError],
    [{ beta_start: -1 }, /beta_start must be a finite number >= 0 and <= 1: got -1/, RangeError],
    [{ beta_end: NaN }, /beta_end .*got NaN/, RangeError],
    [{ beta_end: Infinity }, /beta_end .*got Infinity/, RangeError],
    [{ clip_sample: 1 }, /clip_sample must be a boolean: got 1/, TypeError],
    [{ solver_order: 4 }, /solver_order must be an integer >= 1 and <= 3: got 4/, RangeError],
    [
      { prediction_type: "sample" },
      /prediction_type must be one of "epsilon", "v_prediction": got "sample"/,
      RangeError,
    ],
    [{ sigma_min: "small" }, /sigma_min must be a finite number >= 0 or null: got "small"/, TypeError],
    [{ sigma_min: -1 }, /sigma_min must be a finite number >= 0: got -1/, RangeError],
    [{ ratio: 0 }, /ratio must be a finite number > 0 and <= 1: got 0/, RangeError],
    [{ trained_betas: [0.1, "x"] }, /trained_betas\[1\] must be a finite number: got "x"/, TypeError],
    [{ trained_betas: [] }, /trained_betas must be an array of at least 1 finite numbers: got \[\]/, RangeError],
    [{ trained_betas: 0.1 }, /trained_betas must be an array .* or null: got 0.1/, TypeError],
    [{ _use_default_values: "x" }, /_use_default_values must be an array of strings/, TypeError],
  ];
  for (const [config, message, kind] of cases) {
    await t.step(JSON.stringify(config), () => {
      assert.throws(() => RESOLVER.resolve(config), (e: unknown) => {
        assert.ok(e instanceof kind, `${e} should be a ${kind.name}`);
        assert.match((e as Error).message, message);
        return true;
      });
    });
  }
  await t.step("non-object configs", () => {
    assert.throws(
      () => RESOLVER.resolve(null as unknown as Record<string, unknown>),
      /config must be an object: got null/,
    );
    assert.throws(() => RESOLVER.resolve([] as unknown as Record<string, unknown>), TypeError);
  });
});

Deno.test("number(allowInfinite) accepts python's infinities as JSON strings; nullable accepts null", () => {
  assert.equal(RESOLVER.resolve({ lambda_min_clipped: "-Infinity" }).values.lambda_min_clipped, -Infinity);
  assert.equal(RESOLVER.resolve({ lambda_min_clipped: -5.1 }).values.lambda_min_clipped, -5.1);
  assert.equal(RESOLVER.resolve({ sigma_min: null }).values.sigma_min, null);
  assert.equal(RESOLVER.resolve({ sigma_min: 0.03 }).values.sigma_min, 0.03);
  const arr = RESOLVER.resolve({ trained_betas: [0.1, 0.2] }).values.trained_betas!;
  assert.deepEqual(arr, [0.1, 0.2]);
  assert.ok(Object.isFrozen(arr));
  assert.equal(numberArray([1], { minLength: 0 }).parse([], "x").length, 0);
});

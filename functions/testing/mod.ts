/**
 * Test doubles for the functions: a fake pipeline runner (in-process, or hosted by a worker through its
 * `createRunner` module entry) that produces real encoded images.
 *
 * @module
 */
export { createRunner, FakeLoadedRunner, fakeModels, FakeRunner } from "./fake_runner.ts";
export type { FakeCall, FakeRunnerOptions } from "./fake_runner.ts";

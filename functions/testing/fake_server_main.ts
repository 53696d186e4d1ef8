/**
 * A real server process (signals, graceful shutdown, worker pool) hosting the fake runner instead of the ONNX
 * pipelines, for the shutdown tests. `FAKE_RUNNER_OPTIONS` holds the fake's options as JSON.
 *
 * @module
 */
import { runFromEnv } from "../server.ts";

if (import.meta.main) {
  await runFromEnv({
    runnerModule: new URL("./fake_runner.ts", import.meta.url),
    runnerOptions: JSON.parse(Deno.env.get("FAKE_RUNNER_OPTIONS") ?? "{}"),
  });
}

/**
 * The SDK under Node.js: bundle `sdk/mod.ts` (zod included) to one ES module with `deno bundle`, start the real
 * server on loopback, and run `node tests/sdk_node/run.mjs <url> <bundle> <key>`, which must exit 0.
 */
import assert from "node:assert/strict";
import { API_KEY, loopbackServer } from "./sdk_node/harness.ts";

const ROOT = new URL("../", import.meta.url);
const SDK_ENTRY = new URL("sdk/mod.ts", ROOT);
const NODE_SCRIPT = new URL("tests/sdk_node/run.mjs", ROOT);

async function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(command, { args, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    throw new Error(`could not start ${command} (is it installed and on PATH?): ${e}`);
  }
  const decoder = new TextDecoder();
  return { code: result.code, output: decoder.decode(result.stdout) + decoder.decode(result.stderr) };
}

Deno.test("the SDK bundled for Node.js passes tests/sdk_node/run.mjs against a running server", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ldm-sdk-node-" });
  try {
    const bundle = `${dir}/ldm-sdk.mjs`;
    const built = await run(Deno.execPath(), [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--output",
      bundle,
      SDK_ENTRY.pathname,
    ]);
    assert.equal(built.code, 0, `deno bundle failed:\n${built.output}`);
    // The bundle keeps JSDoc, whose examples may show Deno calls; only the code counts.
    const code = (await Deno.readTextFile(bundle)).replace(/\/\*[\s\S]*?\*\//g, "");
    // Web APIs only: the bundle must not reach for Deno's namespace nor import anything it does not carry.
    assert.doesNotMatch(code, /\bDeno\.[a-z]/);
    assert.doesNotMatch(code, /^import .* from ["'](?!\.)/m);

    const srv = loopbackServer({ fake: { stepMs: 5 } });
    try {
      const node = await run("node", [NODE_SCRIPT.pathname, srv.url, bundle, API_KEY]);
      assert.equal(node.code, 0, `node tests/sdk_node/run.mjs failed:\n${node.output}`);
      assert.match(node.output, /: 9 passed, 0 failed$/m, node.output);
    } finally {
      await srv.server.queue.whenIdle();
      await srv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

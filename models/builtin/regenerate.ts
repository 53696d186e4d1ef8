/**
 * `deno task convert-builtin [source-dir]`: re-converts the built-in models from their diffusers checkpoints (default
 * `/work/shared/models`, or `$LDM_BUILTIN_SOURCES`) into `models/builtin/<name>/` (fp32), replacing what is there
 * only once each new repository is complete. Converting is deterministic: unchanged sources and converter give
 * byte-identical files (`builtin_test.ts` checks that when the sources are present).
 *
 * @module
 */
import { join } from "node:path";
import { convertPipeline } from "../convert/mod.ts";
import { BUILTIN_MODELS, builtinModelDir } from "./mod.ts";

/** Where the source checkpoints are looked for when no argument is given. */
export const DEFAULT_BUILTIN_SOURCES = "/work/shared/models";

/** Converts every built-in model from `sourceDir/<name>` into `outRoot/<name>` (default: this folder). */
export async function regenerateBuiltins(
  sourceDir: string,
  { outRoot, log = () => {} }: { outRoot?: string; log?: (msg: string) => void } = {},
): Promise<void> {
  for (const m of BUILTIN_MODELS) {
    const out = outRoot ? join(outRoot, m.name) : builtinModelDir(m.name);
    const r = await convertPipeline(join(sourceDir, m.name), out, { dtype: "fp32", overwrite: true });
    log(`${m.name}: ${r.parameters} parameters, ${r.bytes} bytes → ${r.outDir} (${r.seconds.toFixed(1)} s)`);
  }
}

if (import.meta.main) {
  const source = Deno.args[0] ?? Deno.env.get("LDM_BUILTIN_SOURCES") ?? DEFAULT_BUILTIN_SOURCES;
  try {
    await regenerateBuiltins(source, { log: (m) => console.log(m) });
  } catch (e) {
    console.error(`convert-builtin failed: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}

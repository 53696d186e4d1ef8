/**
 * Sessions for the components of a converted repository, created together: one provider probe shared by all of
 * them, one log line per component saying which provider it got, and everything released again if any fails.
 *
 * @module
 */
import { join } from "node:path";
import { loadOnnxModel, type LoadOnnxModelOptions, type OnnxModel } from "./session.ts";

/** Options for {@linkcode loadOnnxComponents}. */
export type LoadOnnxComponentsOptions = Omit<LoadOnnxModelOptions, "name" | "knownFailures" | "optimizedFor">;

/** The converter's manifest at a repository's root (see `@ldm/models/convert`). */
const MANIFEST_FILE = "ldm_onnx.json";

/**
 * `optimizations.target` of every graph the repository's `ldm_onnx.json` lists, by graph path (e.g.
 * `"unet/model.onnx" → "cuda"`); empty when there is no manifest (a hand-made repository) or no graph records a
 * target. Only the fields read here are checked; `verifyRepository` in `@ldm/models/convert` checks the rest.
 *
 * @throws {TypeError} naming the file when the manifest is not JSON or its `components` is not an object.
 */
export async function readGraphTargets(dir: string): Promise<Map<string, string>> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return new Map();
    throw e;
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`${path} is not valid JSON: ${e instanceof Error ? e.message : e}`);
  }
  const components = (manifest as { components?: unknown } | null)?.components;
  if (typeof components !== "object" || components === null) {
    throw new TypeError(`${path}: components must be an object: got ${JSON.stringify(components)}`);
  }
  const targets = new Map<string, string>();
  for (const component of Object.values(components as Record<string, unknown>)) {
    const graphs = (component as { graphs?: unknown } | null)?.graphs;
    if (typeof graphs !== "object" || graphs === null) continue;
    for (const graph of Object.values(graphs as Record<string, unknown>)) {
      const g = graph as { file?: unknown; optimizations?: { target?: unknown } } | null;
      const target = g?.optimizations?.target;
      if (typeof g?.file === "string" && typeof target === "string") targets.set(g.file, target);
    }
  }
  return targets;
}

/** Sessions keyed by component name, plus a `dispose()` that releases all of them. */
export type OnnxComponents<K extends string> = { readonly [P in K]: OnnxModel } & {
  /** Releases every session (idempotent). */
  dispose(): Promise<void>;
};

/**
 * Creates one session per component from paths relative to `dir`, in order. Graphs that `dir/ldm_onnx.json` records
 * as optimised for a GPU provider (`optimizations.target` `"cuda"` / `"webgpu"`) fail with an error naming that
 * target and the provider they got when that provider lacks their fused operators (see
 * {@linkcode LoadOnnxModelOptions.optimizedFor}).
 *
 * @param dir the repository directory.
 * @param files component name → graph path inside `dir` (e.g. `{ unet: "unet/model.onnx" }`).
 * @throws {TypeError} naming the file when a graph is missing or the manifest is malformed.
 * @throws {Error} when no provider can run a component (sessions created so far are released first).
 */
export async function loadOnnxComponents<K extends string>(
  dir: string,
  files: Readonly<Record<K, string>>,
  options: LoadOnnxComponentsOptions = {},
): Promise<OnnxComponents<K>> {
  const knownFailures = new Map<string, string>();
  const targets = await readGraphTargets(dir);
  const loaded: [K, OnnxModel][] = [];
  const disposeAll = async () => {
    for (const [, m] of loaded) await m.dispose();
  };
  try {
    for (const [name, rel] of Object.entries(files) as [K, string][]) {
      const path = join(dir, rel);
      try {
        const stat = await Deno.stat(path);
        if (!stat.isFile) throw new TypeError(`${path} is not a file`);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new TypeError(`${name}: ONNX graph not found at ${path} (is ${dir} a converted repository?)`);
        }
        throw e;
      }
      const optimizedFor = targets.get(rel.replaceAll("\\", "/").replace(/^\.\//, "")) ?? null;
      loaded.push([name, await loadOnnxModel(path, { ...options, name, knownFailures, optimizedFor })]);
    }
  } catch (e) {
    await disposeAll();
    throw e;
  }
  const out = Object.fromEntries(loaded) as Record<K, OnnxModel>;
  return Object.assign(out, { dispose: disposeAll }) as OnnxComponents<K>;
}

/**
 * Sessions for the components of a converted repository, created together: one provider probe shared by all of
 * them, one log line per component saying which provider it got, and everything released again if any fails.
 *
 * @module
 */
import { join } from "node:path";
import { loadOnnxModel, type LoadOnnxModelOptions, type OnnxModel } from "./session.ts";

/** Options for {@linkcode loadOnnxComponents}. */
export type LoadOnnxComponentsOptions = Omit<LoadOnnxModelOptions, "name" | "knownFailures">;

/** Sessions keyed by component name, plus a `dispose()` that releases all of them. */
export type OnnxComponents<K extends string> = { readonly [P in K]: OnnxModel } & {
  /** Releases every session (idempotent). */
  dispose(): Promise<void>;
};

/**
 * Creates one session per component from paths relative to `dir`, in order.
 *
 * @param dir the repository directory.
 * @param files component name → graph path inside `dir` (e.g. `{ unet: "unet/model.onnx" }`).
 * @throws {TypeError} naming the file when a graph is missing.
 * @throws {Error} when no provider can run a component (sessions created so far are released first).
 */
export async function loadOnnxComponents<K extends string>(
  dir: string,
  files: Readonly<Record<K, string>>,
  options: LoadOnnxComponentsOptions = {},
): Promise<OnnxComponents<K>> {
  const knownFailures = new Map<string, string>();
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
      loaded.push([name, await loadOnnxModel(path, { ...options, name, knownFailures })]);
    }
  } catch (e) {
    await disposeAll();
    throw e;
  }
  const out = Object.fromEntries(loaded) as Record<K, OnnxModel>;
  return Object.assign(out, { dispose: disposeAll }) as OnnxComponents<K>;
}

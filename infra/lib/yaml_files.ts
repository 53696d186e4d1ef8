/**
 * Reading the infra YAML files: every document of a file, with its position, parsed as YAML 1.2 with merge keys
 * (`<<: *anchor`, used by compose.yaml).
 *
 * @module
 */
import { parseAllDocuments } from "yaml";

/** A plain JSON-like object. */
export type JsonObject = Record<string, unknown>;

/** One YAML document of a file. */
export interface YamlDocument {
  /** Repository-relative path, `/`-separated. */
  file: string;
  /** 0-based index of the document in the file. */
  index: number;
  /** The document's value (an object for every file here). */
  value: JsonObject;
}

/**
 * Parses every document of `text`.
 *
 * @throws {SyntaxError} naming the file, the line and the parser's message on the first YAML error, and when a
 * document is not a mapping.
 */
export function parseYamlDocuments(file: string, text: string): YamlDocument[] {
  const out: YamlDocument[] = [];
  const docs = parseAllDocuments(text, { merge: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new SyntaxError(`${file}: not a YAML stream`);
  docs.forEach((doc, index) => {
    const error = doc.errors[0];
    if (error) throw new SyntaxError(`${file}: ${error.message}`);
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // an empty document (e.g. a trailing ---)
    if (typeof value !== "object" || Array.isArray(value)) {
      throw new SyntaxError(
        `${file}: document ${index} must be a mapping, got ${Array.isArray(value) ? "a list" : typeof value}`,
      );
    }
    out.push({ file, index, value: value as JsonObject });
  });
  return out;
}

/** Reads and parses every document of `root/file`. */
export async function readYamlDocuments(root: string, file: string): Promise<YamlDocument[]> {
  return parseYamlDocuments(file, await Deno.readTextFile(`${root}/${file}`));
}

/** Every file under `root/dir` whose name ends in one of `extensions`, as sorted repository-relative paths. */
export async function listFiles(root: string, dir: string, extensions: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(`${root}/${rel}`)) {
      const path = `${rel}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile && extensions.some((x) => e.name.endsWith(x))) out.push(path);
    }
  };
  await walk(dir);
  return out.sort();
}

/** `value` as an object, or `undefined` when it is not one. */
export function asObject(value: unknown): JsonObject | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value as JsonObject : undefined;
}

/** `value` as an array of objects (non-objects dropped), or `[]`. */
export function asObjects(value: unknown): JsonObject[] {
  return Array.isArray(value) ? value.map(asObject).filter((v): v is JsonObject => v !== undefined) : [];
}

/** The value at a dotted path (`"spec.template.spec"`), or `undefined`. */
export function at(value: unknown, path: string): unknown {
  let v: unknown = value;
  for (const key of path.split(".")) {
    const o = asObject(v);
    if (!o) return undefined;
    v = o[key];
  }
  return v;
}

/**
 * `openWeights()`: one entry point for a single weights file (safetensors or torch `.bin`), a sharded checkpoint's
 * `*.index.json`, or several files merged into one store.
 *
 * @module
 */
import { dirname, isAbsolute, join } from "node:path";
import { RangeFile } from "./_range_file.ts";
import { type StoredTensor, TensorMapStore } from "./_store.ts";
import { readSafetensorsHeader } from "./safetensors.ts";
import { readTorchBin } from "./torch_bin.ts";
import type { CheckpointWeights } from "./types.ts";

interface Opened {
  entries: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

/** Detects the format from the first bytes: a zip is a torch.save archive, anything else is tried as safetensors. */
async function openOne(file: RangeFile): Promise<Opened> {
  const head = file.size >= 2 ? await file.read(0, 2) : new Uint8Array(0);
  const isZip = head[0] === 0x50 && head[1] === 0x4b;
  const isLegacyPickle = head[0] === 0x80 && file.path.match(/\.(bin|pt|pth|ckpt)$/) !== null;
  if (isZip || isLegacyPickle) return { entries: await readTorchBin(file), metadata: {} };
  return await readSafetensorsHeader(file);
}

async function readIndex(
  path: string,
): Promise<{ shards: string[]; map: Map<string, string>; metadata: Record<string, string> }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Deno.errors.NotFound(`weights index not found: ${path}`);
    throw new RangeError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const wm = (raw as { weight_map?: unknown })?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new RangeError(`${path}: weight_map must be an object mapping tensor names to shard files`);
  }
  const map = new Map<string, string>();
  const shards: string[] = [];
  const dir = dirname(path);
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== "string" || shard === "" || isAbsolute(shard) || shard.split(/[\\/]/).includes("..")) {
      throw new RangeError(
        `${path}: weight_map['${name}'] must be a file name beside the index: got ${JSON.stringify(shard)}`,
      );
    }
    const full = join(dir, shard);
    if (!shards.includes(full)) shards.push(full);
    map.set(name, full);
  }
  const md = (raw as { metadata?: unknown }).metadata;
  const metadata: Record<string, string> = {};
  if (typeof md === "object" && md !== null) {
    for (const [k, v] of Object.entries(md)) metadata[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return { shards, map, metadata };
}

/**
 * Opens checkpoint weights for ranged, lazy reads.
 *
 * - a `.safetensors` file, or a torch `.bin` zip (the format is detected from the file's first bytes);
 * - a sharded checkpoint's `*.safetensors.index.json` / `*.bin.index.json`: every shard in `weight_map` is opened and
 *   every mapped tensor must be in the shard the index names;
 * - an array of any of these, merged (a tensor name may appear only once across them).
 *
 * Only headers and the pickle are read here; tensors are read when asked for.
 *
 * @example Reading the tiny test UNet
 * ```ts ignore
 * import { openWeights } from "@ldm/models/checkpoint";
 * const w = await openWeights("tests/fixtures/diffusers-tiny/ldm-text2im/unet/diffusion_pytorch_model.safetensors");
 * try {
 *   console.log(w.info("conv_in.weight")); // { dtype: "F32", shape: [32, 4, 3, 3], byteLength: 4608 }
 * } finally {
 *   w.close();
 * }
 * ```
 *
 * @throws {Deno.errors.NotFound} naming the missing file or shard.
 * @throws {RangeError} for truncated files, inconsistent headers or indexes, unknown dtypes, duplicate tensor names.
 * @throws {Error} for a torch pickle that is not a plain state dict or names a global outside the allow-list.
 */
export async function openWeights(paths: string | readonly string[]): Promise<CheckpointWeights> {
  const list = typeof paths === "string" ? [paths] : [...paths];
  if (list.length === 0) throw new RangeError("openWeights: paths must name at least one file: got []");
  const handles: RangeFile[] = [];
  const merged = new Map<string, StoredTensor>();
  const metadata: Record<string, string> = {};
  const add = (name: string, t: StoredTensor) => {
    const prev = merged.get(name);
    if (prev) throw new RangeError(`tensor '${name}' appears twice: in ${prev.file} and in ${t.file}`);
    merged.set(name, t);
  };
  try {
    for (const p of list) {
      if (p.endsWith(".index.json")) {
        const index = await readIndex(p);
        Object.assign(metadata, index.metadata);
        const shardEntries = new Map<string, Map<string, StoredTensor>>();
        for (const shard of index.shards) {
          const f = await RangeFile.open(shard);
          handles.push(f);
          const opened = await openOne(f);
          Object.assign(metadata, opened.metadata);
          shardEntries.set(shard, opened.entries);
        }
        for (const [name, shard] of index.map) {
          const t = shardEntries.get(shard)!.get(name);
          if (!t) throw new RangeError(`${p}: the index places tensor '${name}' in ${shard}, which does not hold it`);
          add(name, t);
        }
      } else {
        const f = await RangeFile.open(p);
        handles.push(f);
        const opened = await openOne(f);
        Object.assign(metadata, opened.metadata);
        for (const [name, t] of opened.entries) add(name, t);
      }
    }
  } catch (e) {
    for (const h of handles) h.close();
    throw e;
  }
  return new TensorMapStore(merged, handles, metadata);
}

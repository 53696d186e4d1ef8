/**
 * Test helpers for the graph builders (shared with the UNet graphs' tests): an in-memory weight source, seeded random
 * tensors, running a {@linkcode GraphBuilder} through onnxruntime via `loadOnnxModel`, the fixtures, and comparisons.
 *
 * @module
 */
import assert from "node:assert/strict";
import { loadOnnxModel, type OnnxFeed } from "@ldm/core/onnx";
import { Tensor } from "@ldm/core/tensor";
import { type CheckpointWeights, openWeights } from "../checkpoint/mod.ts";
import type { GraphBuilder, WeightInfo, WeightSource } from "./builder.ts";
import { onnx } from "./_proto.ts";

/** Folder of the tiny diffusers checkpoints and their references. */
export const TINY_DIR: string = new URL("../../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;

/** Reads a `config.json` of a tiny checkpoint, e.g. `readTinyConfig("ldm-text2im/vqvae")`. */
export function readTinyConfig(component: string): Record<string, unknown> {
  return JSON.parse(Deno.readTextFileSync(`${TINY_DIR}${component}/config.json`));
}

/** Opens the tiny checkpoint's weights of `component` (`"ldm-text2im/vqvae"`). Close it when done. */
export async function openTinyWeights(component: string): Promise<CheckpointWeights> {
  const dir = `${TINY_DIR}${component}/`;
  const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".safetensors"));
  if (!file) throw new Error(`no .safetensors file in ${dir}`);
  return await openWeights(`${dir}${file.name}`);
}

/** Opens `references.safetensors` (inputs and outputs computed by diffusers). Close it when done. */
export async function openReferences(): Promise<CheckpointWeights> {
  return await openWeights(`${TINY_DIR}references.safetensors`);
}

/** Reads reference tensor `name` as a float32 {@linkcode Tensor}. */
export async function referenceTensor(refs: CheckpointWeights, name: string): Promise<Tensor> {
  return new Tensor(await refs.readFloat32(name), refs.info(name).shape);
}

/** A {@linkcode WeightSource} over tensors held in memory; counts reads. */
export class MemoryWeights implements WeightSource {
  readonly #tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  /** Number of `readFloat32` calls so far. */
  reads = 0;

  /** Adds or replaces a tensor. @throws {TypeError} when `data` does not fill `shape`. */
  set(name: string, shape: readonly number[], data: Float32Array): this {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new TypeError(`${name}: ${data.length} values for shape [${shape}]`);
    this.#tensors.set(name, { shape: [...shape], data });
    return this;
  }

  /** Removes a tensor. */
  delete(name: string): void {
    this.#tensors.delete(name);
  }

  /** Every tensor name, in insertion order. */
  names(): string[] {
    return [...this.#tensors.keys()];
  }

  /** Whether `name` is held. */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /** Shape of `name` (dtype always "F32"). @throws {RangeError} for an unknown name. */
  info(name: string): WeightInfo {
    const t = this.#tensors.get(name);
    if (!t) throw new RangeError(`no tensor '${name}'`);
    return { dtype: "F32", shape: t.shape, byteLength: t.data.length * 4 };
  }

  /** A copy of `name`'s values; rejects with a RangeError for an unknown name. */
  readFloat32(name: string): Promise<Float32Array> {
    const t = this.#tensors.get(name);
    if (!t) return Promise.reject(new RangeError(`no tensor '${name}'`));
    this.reads++;
    return Promise.resolve(t.data.slice());
  }

  /** Copies every tensor of another store (e.g. a checkpoint) into memory. */
  static async from(store: WeightSource & { names(): string[] }): Promise<MemoryWeights> {
    const m = new MemoryWeights();
    for (const name of store.names()) m.set(name, store.info(name).shape, await store.readFloat32(name));
    return m;
  }
}

/** A seeded uniform generator in [0, 1) (mulberry32): deterministic test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` values uniform in [-scale, scale) from `rand`. */
export function randomValues(n: number, rand: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

/** A random tensor, uniform in [-scale, scale). */
export function randomTensor(shape: readonly number[], rand: () => number, scale = 1): Tensor {
  return new Tensor(randomValues(shape.reduce((a, b) => a * b, 1), rand, scale), shape);
}

/**
 * Fills `weights` with random tensors for the given (name, shape) list. Names ending in `norm*.weight`-like scale
 * parameters are drawn around 1 so that normalisation layers stay well conditioned; the rest uniform in ±scale/√fanIn.
 */
export function addRandomWeights(
  weights: MemoryWeights,
  spec: readonly (readonly [string, readonly number[]])[],
  rand: () => number,
): MemoryWeights {
  for (const [name, shape] of spec) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNormScale = /norm[^.]*\.weight$/.test(name) || /layer_norm\.weight$/.test(name);
    if (isNormScale) {
      weights.set(name, shape, Float32Array.from({ length: n }, () => 1 + (rand() * 2 - 1) * 0.2));
    } else {
      const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 4;
      weights.set(name, shape, randomValues(n, rand, 1 / Math.sqrt(fanIn)));
    }
  }
  return weights;
}

/** Serialises `b` in memory, runs it once on onnxruntime's CPU provider and disposes the session. */
export async function runGraph(
  b: GraphBuilder,
  feeds: Readonly<Record<string, OnnxFeed>>,
): Promise<Record<string, Tensor>> {
  const model = await loadOnnxModel(await b.toBytes());
  try {
    return await model.run(feeds);
  } finally {
    await model.dispose();
  }
}

/** Largest absolute element-wise difference; throws when the lengths differ. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "maxAbsDiff: lengths differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Largest absolute value. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Asserts every element is finite (no NaN, no ±Infinity). */
export function assertFinite(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) assert.fail(`${what}[${i}] is ${a[i]}`);
  }
}

/**
 * Asserts `actual` matches `expected` (same shape) within `tolerance × max(1, max|expected|)` and returns the
 * maximum absolute error, for reporting.
 */
export function assertClose(actual: Tensor, expected: Tensor, tolerance: number, what: string): number {
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  assertFinite(actual.data, what);
  const err = maxAbsDiff(actual.data, expected.data);
  const bound = tolerance * Math.max(1, maxAbs(expected.data));
  assert.ok(err <= bound, `${what}: max abs error ${err} > ${bound}`);
  return err;
}

/** A plain view of a serialised model, for structural assertions. */
export interface DecodedModel {
  opset: number;
  nodes: { name: string; opType: string; inputs: string[]; outputs: string[]; attributes: Map<string, number> }[];
  initializers: {
    name: string;
    dims: number[];
    dataType: number;
    rawLength: number;
    external: boolean;
    externalData: [string, string][];
  }[];
  inputs: { name: string; elemType: number; dims: (number | string)[] }[];
  outputs: { name: string; elemType: number; dims: (number | string)[] }[];
}

/** Decodes ONNX model bytes into a {@linkcode DecodedModel} (attributes map name → AttributeType). */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph;
  if (!g) throw new Error("model has no graph");
  const io = (
    v: {
      name?: string | null;
      type?: {
        tensorType?: {
          elemType?: number | null;
          shape?: { dim?: { dimValue?: unknown; dimParam?: string | null }[] | null } | null;
        } | null;
      } | null;
    },
  ) => ({
    name: v.name ?? "",
    elemType: v.type?.tensorType?.elemType ?? 0,
    dims: (v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam ? d.dimParam : Number(d.dimValue)),
  });
  return {
    opset: Number(m.opsetImport?.[0]?.version ?? 0),
    nodes: (g.node ?? []).map((n) => ({
      name: n.name ?? "",
      opType: n.opType ?? "",
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attributes: new Map((n.attribute ?? []).map((a) => [a.name ?? "", a.type ?? 0])),
    })),
    initializers: (g.initializer ?? []).map((t) => ({
      name: t.name ?? "",
      dims: (t.dims ?? []).map(Number),
      dataType: t.dataType ?? 0,
      rawLength: t.rawData?.length ?? 0,
      external: t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: (t.externalData ?? []).map((e) => [e.key ?? "", e.value ?? ""] as [string, string]),
    })),
    inputs: (g.input ?? []).map(io),
    outputs: (g.output ?? []).map(io),
  };
}

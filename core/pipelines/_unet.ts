/**
 * Running a converted UNet or decoder graph: resolving its input/output names and the `timestep` feed's shape from
 * the graph's metadata (allocated once per run by {@linkcode TimestepFeed}), and timing the calls.
 *
 * @module
 */
import { Tensor } from "../tensor/mod.ts";
import type { OnnxFeed, OnnxModel } from "../onnx/mod.ts";
import { checkFinite } from "./_checks.ts";

/** Picks an output by name, or the only output, with a clear error otherwise. */
export function pickOutput(model: OnnxModel, out: Record<string, Tensor>, name: string): Tensor {
  const t = out[name] ?? (Object.keys(out).length === 1 ? Object.values(out)[0] : undefined);
  if (t === undefined) {
    throw new Error(`${model.name} returned no output '${name}' (outputs: ${Object.keys(out).join(", ")})`);
  }
  return t;
}

/** Checks that a graph has the inputs a pipeline feeds. */
export function requireInputs(model: OnnxModel, names: readonly string[]): void {
  for (const n of names) {
    if (!model.inputs.some((i) => i.name === n)) {
      throw new TypeError(
        `${model.name} graph has no input '${n}' (inputs: ${model.inputs.map((i) => i.name).join(", ")})`,
      );
    }
  }
}

/**
 * The `timestep` feed for a batch of `batch`: shaped as the graph declares it (a scalar, `[1]` or `[batch]`), as
 * float32; the session converts it to int64 when the graph was exported with an integer timestep.
 */
export function timestepFeed(model: OnnxModel, t: number, batch: number): Tensor {
  const info = model.inputs.find((i) => i.name === "timestep");
  const shape = info === undefined || info.shape.length === 1 && info.shape[0] !== 1
    ? [batch]
    : info.shape.length === 0
    ? []
    : [1];
  return new Tensor(new Float32Array(shape.length === 0 ? 1 : shape[0]!).fill(t), shape);
}

/**
 * A `timestep` feed for one batch size, allocated once per run (and again only when the batch changes) and refilled
 * with each step's timestep, so the loop allocates nothing for it. Shaped as {@linkcode timestepFeed}.
 */
export class TimestepFeed {
  /** The batch size the feed was built for. */
  readonly batch: number;
  readonly #tensor: Tensor;

  /** @param model the graph whose `timestep` input this feeds. */
  constructor(model: OnnxModel, batch: number) {
    this.batch = batch;
    this.#tensor = timestepFeed(model, 0, batch);
  }

  /** The feed holding `t` (the same tensor every call: valid until the next call). */
  at(t: number): Tensor {
    this.#tensor.data.fill(t);
    return this.#tensor;
  }
}

/** Accumulates wall-clock time and call counts of one kind of model call. */
export class CallTimer {
  ms = 0;
  calls = 0;

  /** Runs `model` with `feeds`, returns output `name`, adds the time, and rejects NaN/Inf outputs. */
  async run(model: OnnxModel, feeds: Record<string, OnnxFeed>, name: string): Promise<Tensor> {
    const t0 = performance.now();
    const out = pickOutput(model, await model.run(feeds), name);
    this.ms += performance.now() - t0;
    this.calls++;
    checkFinite(out, model.name);
    return out;
  }
}

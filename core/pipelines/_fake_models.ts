/**
 * Fake {@linkcode OnnxModel}s for the pipelines' unit tests: small deterministic functions with the real graphs'
 * input/output names, that record every call. Each is row-independent (batch rows never mix) and the UNet/decoder
 * fakes are pixel-local, so batching and tiling must reproduce unbatched, untiled results exactly.
 *
 * @module
 */
import { Tensor } from "../tensor/mod.ts";
import type { Int64Feed, OnnxFeed, OnnxModel, OnnxValueInfo } from "../onnx/mod.ts";
import type { PromptTokenizer } from "./text_to_image.ts";

/** One recorded call: input name → shape, plus the timestep values seen. */
export interface FakeCall {
  shapes: Record<string, readonly number[]>;
  timestep?: number[];
}

/** A fake model plus its call log. */
export interface FakeModel extends OnnxModel {
  calls: FakeCall[];
  disposed: boolean;
}

function fake(
  name: string,
  inputs: OnnxValueInfo[],
  outputName: string,
  fn: (feeds: Readonly<Record<string, OnnxFeed>>) => Tensor,
): FakeModel {
  const model: FakeModel = {
    name,
    inputs,
    outputs: [{ name: outputName, type: "float32", shape: [] }],
    executionProvider: "fake",
    calls: [],
    disposed: false,
    run(feeds) {
      if (model.disposed) return Promise.reject(new Error(`${name}: run after dispose`));
      const shapes: Record<string, readonly number[]> = {};
      for (const [k, v] of Object.entries(feeds)) shapes[k] = v.shape;
      const ts = feeds["timestep"];
      model.calls.push({ shapes, ...(ts instanceof Tensor ? { timestep: [...ts.data] } : {}) });
      return Promise.resolve({ [outputName]: fn(feeds) });
    },
    dispose() {
      model.disposed = true;
      return Promise.resolve();
    },
  };
  return model;
}

const f32 = Math.fround;

/** LDMBert stand-in: `h[b, i, d] = sin(0.37 · id[b, i] + 0.11 · d + 0.05 · i)`. */
export function fakeBert(dim = 8): FakeModel {
  return fake("bert", [{ name: "input_ids", type: "int64", shape: ["batch", 77] }], "last_hidden_state", (feeds) => {
    const ids = feeds["input_ids"] as Int64Feed;
    const [b, l] = ids.shape as [number, number];
    const out = new Float32Array(b * l * dim);
    for (let r = 0; r < b; r++) {
      for (let i = 0; i < l; i++) {
        const id = Number(ids.int64[r * l + i]);
        for (let d = 0; d < dim; d++) out[(r * l + i) * dim + d] = Math.sin(0.37 * id + 0.11 * d + 0.05 * i);
      }
    }
    return new Tensor(out, [b, l, dim]);
  });
}

/**
 * UNet2DConditionModel stand-in: `ε = 0.3·x + c_b + 1e-4·t` with `c_b` the mean of row b's text states (so prompts,
 * negative prompts and guidance change the result), pixel-local.
 */
export function fakeUNet(): FakeModel {
  return fake(
    "unet",
    [
      { name: "sample", type: "float32", shape: ["batch", 4, "h", "w"] },
      { name: "timestep", type: "float32", shape: ["batch"] },
      { name: "encoder_hidden_states", type: "float32", shape: ["batch", 77, "d"] },
    ],
    "out_sample",
    (feeds) => {
      const x = feeds["sample"] as Tensor,
        t = feeds["timestep"] as Tensor,
        ctx = feeds["encoder_hidden_states"] as Tensor;
      const b = x.shape[0]!, per = x.size / b, cper = ctx.size / b;
      const out = new Float32Array(x.size);
      for (let r = 0; r < b; r++) {
        let c = 0;
        for (let j = 0; j < cper; j++) c += ctx.data[r * cper + j]!;
        c = c / cper;
        for (let j = 0; j < per; j++) out[r * per + j] = f32(0.3 * x.data[r * per + j]! + c + 1e-4 * t.data[r]!);
      }
      return new Tensor(out, x.shape);
    },
  );
}

/** UNet2DModel (super-resolution) stand-in: `ε[c] = 0.3·x[c] − 0.2·image[c] + 1e-4·t`, 6 → 3 channels, pixel-local. */
export function fakeSrUNet(): FakeModel {
  return fake(
    "unet",
    [
      { name: "sample", type: "float32", shape: ["batch", 6, "h", "w"] },
      { name: "timestep", type: "float32", shape: ["batch"] },
    ],
    "out_sample",
    (feeds) => {
      const x = feeds["sample"] as Tensor, t = feeds["timestep"] as Tensor;
      const [b, , h, w] = x.shape as [number, number, number, number];
      const plane = h * w;
      const out = new Float32Array(b * 3 * plane);
      for (let r = 0; r < b; r++) {
        for (let c = 0; c < 3; c++) {
          for (let p = 0; p < plane; p++) {
            out[(r * 3 + c) * plane + p] = f32(
              0.3 * x.data[(r * 6 + c) * plane + p]! - 0.2 * x.data[(r * 6 + c + 3) * plane + p]! + 1e-4 * t.data[r]!,
            );
          }
        }
      }
      return new Tensor(out, [b, 3, h, w]);
    },
  );
}

/** Decoder stand-in: nearest-neighbour ×`factor` of `tanh` of the first 3 channels, pixel-local. */
export function fakeDecoder(factor: number, name = "vaeDecoder"): FakeModel {
  return fake(
    name,
    [{ name: "latent_sample", type: "float32", shape: ["batch", "c", "h", "w"] }],
    "sample",
    (feeds) => {
      const z = feeds["latent_sample"] as Tensor;
      const [b, c, h, w] = z.shape as [number, number, number, number];
      const H = h * factor, W = w * factor;
      const out = new Float32Array(b * 3 * H * W);
      for (let r = 0; r < b; r++) {
        for (let ch = 0; ch < 3; ch++) {
          for (let y = 0; y < H; y++) {
            for (let x = 0; x < W; x++) {
              const v = z.data[((r * c + (ch % c)) * h + Math.floor(y / factor)) * w + Math.floor(x / factor)]!;
              out[((r * 3 + ch) * H + y) * W + x] = Math.tanh(v);
            }
          }
        }
      }
      return new Tensor(out, [b, 3, H, W]);
    },
  );
}

/** A tokenizer stand-in: char codes of the lower-cased text, `[101 …, 102, 0 …]` to `maxLength`. */
export const fakeTokenizer: PromptTokenizer = {
  encodeBatch(texts, { maxLength }) {
    const int64 = new BigInt64Array(texts.length * maxLength);
    texts.forEach((text, b) => {
      const ids = [101, ...[...text.toLowerCase()].slice(0, maxLength - 2).map((ch) => ch.codePointAt(0)! % 1000), 102];
      ids.forEach((id, i) => (int64[b * maxLength + i] = BigInt(id)));
    });
    return { int64, shape: [texts.length, maxLength] };
  },
};

/** The fixture's text-to-image configs (tests/fixtures/diffusers-tiny/ldm-text2im), trimmed to what the loop reads. */
export const T2I_CONFIGS = {
  schedulerConfig: {
    _class_name: "DDIMScheduler",
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    beta_start: 0.00085,
    clip_sample: false,
    num_train_timesteps: 1000,
    set_alpha_to_one: false,
    steps_offset: 0,
  },
  unetConfig: { in_channels: 4, sample_size: 16, block_out_channels: [32, 64] },
  vaeConfig: { block_out_channels: [32, 64], scaling_factor: 0.18215 },
};

/** The fixture's super-resolution configs. */
export const SR_CONFIGS = {
  schedulerConfig: {
    _class_name: "DDIMScheduler",
    beta_end: 0.0155,
    beta_schedule: "scaled_linear",
    beta_start: 0.0015,
    clip_sample: false,
    num_train_timesteps: 1000,
    set_alpha_to_one: true,
    steps_offset: 1,
  },
  unetConfig: { in_channels: 6, block_out_channels: [32, 64] },
  vqvaeConfig: { block_out_channels: [32, 64] },
};

/**
 * Overlapping tiles for inputs too large to run at once (super-resolution).
 *
 * A tile grid covers each axis with windows of `tile` pixels whose starts are multiples of `align` (the UNet's
 * down-sampling factor, so every tile sees the same stride grid as the whole image) and that overlap by at least
 * `overlap`. Outputs are blended with a separable window: inside the overlap with a neighbour a tile's weight is 0 on
 * the quarter next to its edge (where zero padding distorts a network's output), rises as a raised cosine over the
 * middle half and is 1 on the last quarter, and the neighbour's weight is the mirror image, so the two sum to 1
 * there; at the image border there is no taper. The blend is normalised by the summed weight, which also covers the
 * uneven overlap of the last tile. This is the MultiDiffusion scheme (Bar-Tal et al. 2023, "MultiDiffusion: Fusing
 * Diffusion Paths for Controlled Image Generation", eq. 5) with a smooth window instead of a box, applied to the
 * noise prediction at every step, so the scheduler steps one consistent latent.
 *
 * @module
 */
import { Tensor } from "../tensor/mod.ts";
import { cropInto } from "./_layout.ts";

/** One axis of a tile grid: window starts and the common window length. */
export interface AxisPlan {
  starts: number[];
  size: number;
}

/** A 2-D tile grid over an `height × width` input. */
export interface TilePlan {
  rows: AxisPlan;
  cols: AxisPlan;
  /** Number of tiles. */
  count: number;
}

/**
 * Window starts covering `[0, length)` with windows of `tile` (≤ length) overlapping by ≥ `overlap`, starts aligned
 * to `align`. The last window ends exactly at `length` (which must be a multiple of `align`).
 */
export function planAxis(length: number, tile: number, overlap: number, align: number): AxisPlan {
  if (tile >= length) return { starts: [0], size: length };
  // As few windows as give every neighbour pair ≥ `overlap`, spread evenly (so overlaps are similar), starts aligned.
  for (let n = Math.max(2, Math.ceil((length - overlap) / (tile - overlap)));; n++) {
    const starts = Array.from({ length: n }, (_, i) => Math.floor((i * (length - tile)) / (n - 1) / align) * align);
    starts[n - 1] = length - tile;
    if (starts.every((s, i) => i === 0 || (s > starts[i - 1]! && starts[i - 1]! + tile - s >= overlap))) {
      return { starts, size: tile };
    }
  }
}

/** The tile grid for an input of `height × width`. */
export function planTiles(height: number, width: number, tile: number, overlap: number, align: number): TilePlan {
  const rows = planAxis(height, tile, overlap, align);
  const cols = planAxis(width, tile, overlap, align);
  return { rows, cols, count: rows.starts.length * cols.starts.length };
}

/**
 * The rising half of the blending window over an overlap of `ov` pixels: 0 on the first quarter (the band next to
 * a tile's inner edge, where zero padding distorts the network's output), a raised cosine over the middle half, 1 on
 * the last quarter. The falling half of the neighbour is its mirror image, so the two sum to 1 everywhere.
 */
function ramp(k: number, ov: number): number {
  const margin = Math.floor(ov / 4);
  const len = ov - 2 * margin;
  if (k < margin) return 0;
  if (k >= ov - margin) return 1;
  return 0.5 - 0.5 * Math.cos((Math.PI * (k - margin + 0.5)) / len);
}

/**
 * Blending weights of window `index` of an axis plan, at output scale `scale` (a 1-D array of `size · scale`).
 */
export function axisWeights(plan: AxisPlan, index: number, scale: number): Float64Array {
  const n = plan.size * scale;
  const w = new Float64Array(n).fill(1);
  const start = plan.starts[index]!;
  const prev = plan.starts[index - 1];
  const next = plan.starts[index + 1];
  if (prev !== undefined) {
    const ov = (prev + plan.size - start) * scale; // overlap with the previous window
    for (let k = 0; k < ov; k++) w[k] = ramp(k, ov);
  }
  if (next !== undefined) {
    const ov = (start + plan.size - next) * scale; // overlap with the next window
    for (let k = 0; k < ov; k++) w[n - 1 - k] = Math.min(w[n - 1 - k]!, ramp(k, ov));
  }
  return w;
}

/**
 * Runs functions tile by tile over inputs of one tile grid and blends their outputs (see the module doc), keeping
 * what does not change between calls: the blending windows, their normalising sum, the float64 accumulator and the
 * tile input buffer. A run's UNet steps (and decodes) all use one grid, so one runner serves every step.
 *
 * The output of each `run` is a fresh tensor: schedulers may keep the model output they are given (PNDM keeps its
 * last four), so it must not be overwritten by the next step.
 */
export class TiledRunner {
  readonly #plan: TilePlan;
  readonly #scale: number;
  /** Per row / column window: its weights at output scale. */
  readonly #wy: Float64Array[];
  readonly #wx: Float64Array[];
  /** Σ of the tiles' weights per output pixel (`H · W`), summed in the order `run` visits the tiles. */
  readonly #wsum: Float64Array;
  readonly #H: number;
  readonly #W: number;
  #acc: Float64Array | undefined;
  #tile: Tensor | undefined;

  /**
   * @param plan the tile grid (input pixels).
   * @param scale output pixels per input pixel (1 for the UNet, the VQ decoder's factor for decoding).
   */
  constructor(plan: TilePlan, scale: number) {
    this.#plan = plan;
    this.#scale = scale;
    this.#H = (plan.rows.starts.at(-1)! + plan.rows.size) * scale;
    this.#W = (plan.cols.starts.at(-1)! + plan.cols.size) * scale;
    this.#wy = plan.rows.starts.map((_, r) => axisWeights(plan.rows, r, scale));
    this.#wx = plan.cols.starts.map((_, c) => axisWeights(plan.cols, c, scale));
    this.#wsum = new Float64Array(plan.count > 1 ? this.#H * this.#W : 0);
    if (plan.count === 1) return;
    const th = plan.rows.size * scale, tw = plan.cols.size * scale;
    for (let r = 0; r < plan.rows.starts.length; r++) {
      const wy = this.#wy[r]!, y0 = plan.rows.starts[r]! * scale;
      for (let c = 0; c < plan.cols.starts.length; c++) {
        const wx = this.#wx[c]!, x0 = plan.cols.starts[c]! * scale;
        for (let y = 0; y < th; y++) {
          for (let x = 0; x < tw; x++) this.#wsum[(y0 + y) * this.#W + x0 + x]! += wy[y]! * wx[x]!;
        }
      }
    }
  }

  /**
   * Runs `fn` on every tile of `input` (NCHW, the grid's size) and blends the results into one NCHW tensor whose
   * spatial size is the input's times the scale. `fn` must return `[N, C, th · scale, tw · scale]` for a
   * `[N, *, th, tw]` tile, and must not keep the tile it is given (its buffer is reused for the next tile).
   * An untiled grid calls `fn(input)` once and returns its result as is.
   */
  async run(input: Tensor, fn: (tile: Tensor) => Promise<Tensor>): Promise<Tensor> {
    const plan = this.#plan, scale = this.#scale;
    if (plan.count === 1) return await fn(input);
    const [n, ci, height, width] = input.shape as [number, number, number, number];
    const H = this.#H, W = this.#W;
    if (height * scale !== H || width * scale !== W) {
      throw new Error(`tiled input is ${height}×${width}, the tile grid covers ${H / scale}×${W / scale}`);
    }
    const th = plan.rows.size * scale, tw = plan.cols.size * scale;
    if (this.#tile?.shape[0] !== n || this.#tile.shape[1] !== ci) {
      this.#tile = Tensor.zeros([n, ci, plan.rows.size, plan.cols.size]);
    }
    const tileInput = this.#tile;
    let acc: Float64Array | undefined;
    let channels = 0;
    for (let r = 0; r < plan.rows.starts.length; r++) {
      const wy = this.#wy[r]!, y0 = plan.rows.starts[r]! * scale;
      for (let c = 0; c < plan.cols.starts.length; c++) {
        const wx = this.#wx[c]!, x0 = plan.cols.starts[c]! * scale;
        cropInto(input, plan.rows.starts[r]!, plan.cols.starts[c]!, tileInput);
        const out = await fn(tileInput);
        if (out.shape.length !== 4 || out.shape[0] !== n || out.shape[2] !== th || out.shape[3] !== tw) {
          throw new Error(`tile output has shape [${out.shape.join(", ")}], expected [${n}, C, ${th}, ${tw}]`);
        }
        if (acc === undefined) {
          channels = out.shape[1]!;
          if (this.#acc?.length !== n * channels * H * W) this.#acc = new Float64Array(n * channels * H * W);
          else this.#acc.fill(0);
          acc = this.#acc;
        }
        for (let p = 0; p < n * channels; p++) {
          const src = p * th * tw;
          const dst = p * H * W;
          for (let y = 0; y < th; y++) {
            const wyv = wy[y]!;
            const row = dst + (y0 + y) * W + x0;
            const srow = src + y * tw;
            for (let x = 0; x < tw; x++) acc[row + x]! += wyv * wx[x]! * out.data[srow + x]!;
          }
        }
      }
    }
    const wsum = this.#wsum;
    const result = new Float32Array(n * channels * H * W);
    for (let p = 0; p < n * channels; p++) {
      for (let i = 0; i < H * W; i++) result[p * H * W + i] = acc![p * H * W + i]! / wsum[i]!;
    }
    return new Tensor(result, [n, channels, H, W]);
  }
}

/**
 * Runs `fn` on every tile of `input` (NCHW) and blends the results into one NCHW tensor whose spatial size is the
 * input's times `scale` (1 for the UNet's noise prediction, the VQ decoder's factor for decoding). `fn` must return
 * `[N, C, th · scale, tw · scale]` for a `[N, *, th, tw]` tile. One call of a {@linkcode TiledRunner}; loops keep a
 * runner instead.
 */
export async function runTiled(
  input: Tensor,
  plan: TilePlan,
  scale: number,
  fn: (tile: Tensor) => Promise<Tensor>,
): Promise<Tensor> {
  return await new TiledRunner(plan, scale).run(input, fn);
}

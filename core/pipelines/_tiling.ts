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
import { crop } from "./_layout.ts";

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
 * Runs `fn` on every tile of `input` (NCHW) and blends the results into one NCHW tensor whose spatial size is the
 * input's times `scale` (1 for the UNet's noise prediction, the VQ decoder's factor for decoding). `fn` must return
 * `[N, C, th · scale, tw · scale]` for a `[N, *, th, tw]` tile.
 */
export async function runTiled(
  input: Tensor,
  plan: TilePlan,
  scale: number,
  fn: (tile: Tensor) => Promise<Tensor>,
): Promise<Tensor> {
  const [n, , height, width] = input.shape as [number, number, number, number];
  if (plan.count === 1) return await fn(input);
  const H = height * scale, W = width * scale;
  let acc: Float64Array | undefined;
  let channels = 0;
  const wsum = new Float64Array(H * W);
  for (let r = 0; r < plan.rows.starts.length; r++) {
    const wy = axisWeights(plan.rows, r, scale);
    const y0 = plan.rows.starts[r]! * scale;
    for (let c = 0; c < plan.cols.starts.length; c++) {
      const wx = axisWeights(plan.cols, c, scale);
      const x0 = plan.cols.starts[c]! * scale;
      const out = await fn(crop(input, plan.rows.starts[r]!, plan.cols.starts[c]!, plan.rows.size, plan.cols.size));
      const th = plan.rows.size * scale, tw = plan.cols.size * scale;
      if (out.shape.length !== 4 || out.shape[0] !== n || out.shape[2] !== th || out.shape[3] !== tw) {
        throw new Error(`tile output has shape [${out.shape.join(", ")}], expected [${n}, C, ${th}, ${tw}]`);
      }
      if (acc === undefined) {
        channels = out.shape[1]!;
        acc = new Float64Array(n * channels * H * W);
      }
      for (let y = 0; y < th; y++) {
        for (let x = 0; x < tw; x++) wsum[(y0 + y) * W + x0 + x]! += wy[y]! * wx[x]!;
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
  const result = new Float32Array(acc!.length);
  for (let p = 0; p < n * channels; p++) {
    for (let i = 0; i < H * W; i++) result[p * H * W + i] = acc![p * H * W + i]! / wsum[i]!;
  }
  return new Tensor(result, [n, channels, H, W]);
}

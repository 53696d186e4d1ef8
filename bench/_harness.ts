/**
 * The tiny benchmark harness behind `deno task bench`: each suite returns rows; `main.ts` prints them as tables and
 * writes JSON. Ratios are always against a baseline measured in the same run, never against stored numbers.
 *
 * @module
 */

/** One measured quantity. */
export interface BenchRow {
  /** What was measured, e.g. `"DDIMScheduler.step [2,4,32,32]"`. */
  name: string;
  /** The value in `unit`. */
  value: number;
  /** Unit of `value`: `"µs"`, `"ms"`, `"s"`, `"MiB"`, ... */
  unit: string;
  /** `value / baseline` when this row has a baseline measured in the same run. */
  ratio?: number;
  /** The baseline row's name, when `ratio` is set. */
  baseline?: string;
  /** Anything else worth recording (device, provider, batch size, ...). */
  notes?: string;
}

/** A named group of rows. */
export interface BenchSuite {
  name: string;
  rows: BenchRow[];
}

/** Times `fn` after `warmup` untimed calls; returns the median of `iterations` runs in milliseconds. */
export async function timeMedianMs(
  fn: () => unknown | Promise<unknown>,
  { warmup = 2, iterations = 10 }: { warmup?: number; iterations?: number } = {},
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

/** Resident set size of this process in MiB (peak-memory proxy sampled by suites). */
export function rssMiB(): number {
  return Deno.memoryUsage().rss / (1024 * 1024);
}

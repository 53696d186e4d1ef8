/**
 * The converter CLI's progress display on stderr: one redrawn line on a terminal (graph i/n, a bar over the graph's
 * weights, the current weight), plain lines per graph otherwise.
 *
 * @module
 */
import type { ConvertProgress } from "./convert.ts";

/** Formats a byte count with binary units (`1.5 GiB`). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** Formats a parameter count (`872.5M`). */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** A progress renderer writing to `write`; `tty` selects the redrawn single line. */
export function progressRenderer(
  write: (text: string) => void,
  { tty, width = 28 }: { tty: boolean; width?: number },
): (e: ConvertProgress) => void {
  let graph = "";
  let lastDraw = 0;
  let graphBytes = 0;
  const clear = tty ? "\r\x1b[2K" : "";
  return (e) => {
    switch (e.kind) {
      case "start":
        write(`converting ${e.components.join(", ")} (${e.graphs} graph${e.graphs === 1 ? "" : "s"}, ${e.dtype})\n`);
        break;
      case "graph-start":
        graph = `[${e.index}/${e.total}] ${e.file}`;
        graphBytes = 0;
        if (!tty) write(`${graph}: ${e.weights} weights\n`);
        break;
      case "weight": {
        graphBytes += e.bytes;
        const now = performance.now();
        if (!tty || (now - lastDraw < 80 && e.done < e.total)) break;
        lastDraw = now;
        const frac = e.total > 0 ? Math.min(1, e.done / e.total) : 1;
        const filled = Math.round(frac * width);
        const bar = "#".repeat(filled) + "-".repeat(width - filled);
        const name = e.name.length > 48 ? "…" + e.name.slice(-47) : e.name;
        write(`${clear}${graph} [${bar}] ${Math.min(e.done, e.total)}/${e.total} ${formatBytes(graphBytes)} ${name}`);
        break;
      }
      case "graph-done":
        write(
          `${clear}${graph} done: ${formatCount(e.parameters)} parameters, ${formatBytes(e.bytes)}` +
            `${e.externalData ? ` (weights in ${e.externalData})` : ""}, ${e.seconds.toFixed(1)} s\n`,
        );
        break;
      case "hash":
        if (tty) write(`${clear}hashing ${e.file}`);
        break;
      case "done":
        if (tty) write(clear);
        break;
    }
  };
}

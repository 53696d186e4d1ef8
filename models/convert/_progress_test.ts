import assert from "node:assert/strict";
import { formatBytes, formatCount, progressRenderer } from "./_progress.ts";
import type { ConvertProgress } from "./convert.ts";

const EVENTS: ConvertProgress[] = [
  { kind: "start", components: ["unet"], graphs: 1, dtype: "fp16" },
  { kind: "graph-start", component: "unet", file: "unet/model.onnx", index: 1, total: 1, weights: 2 },
  {
    kind: "weight",
    component: "unet",
    file: "unet/model.onnx",
    name: "conv_in.weight",
    done: 1,
    total: 2,
    bytes: 1024,
  },
  { kind: "weight", component: "unet", file: "unet/model.onnx", name: "conv_in.bias", done: 2, total: 2, bytes: 1024 },
  {
    kind: "graph-done",
    component: "unet",
    file: "unet/model.onnx",
    parameters: 1_500_000,
    bytes: 3 * 2 ** 20,
    externalData: "unet/model.onnx_data",
    seconds: 1.25,
  },
  { kind: "hash", file: "unet/model.onnx", bytes: 10 },
  { kind: "done", seconds: 2 },
];

Deno.test("progressRenderer() draws one redrawn bar on a terminal and plain lines otherwise", () => {
  let tty = "";
  const drawTty = progressRenderer((t) => tty += t, { tty: true, width: 4 });
  for (const e of EVENTS) drawTty(e);
  assert.match(tty, /^converting unet \(1 graph, fp16\)\n/);
  assert.ok(tty.includes("\r\x1b[2K[1/1] unet/model.onnx [####] 2/2 2.00 KiB conv_in.bias"), JSON.stringify(tty));
  assert.match(tty, /done: 1\.5M parameters, 3\.00 MiB \(weights in unet\/model\.onnx_data\), 1\.3 s\n/);

  let plain = "";
  const drawPlain = progressRenderer((t) => plain += t, { tty: false });
  for (const e of EVENTS) drawPlain(e);
  assert.equal(
    plain,
    "converting unet (1 graph, fp16)\n[1/1] unet/model.onnx: 2 weights\n" +
      "[1/1] unet/model.onnx done: 1.5M parameters, 3.00 MiB (weights in unet/model.onnx_data), 1.3 s\n",
  );
  assert.ok(!plain.includes("\r"), "no carriage returns when not a terminal");
});

Deno.test("formatBytes() / formatCount() use binary units and short counts", () => {
  assert.equal(formatBytes(507), "507 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(1.745e9), "1.63 GiB");
  assert.equal(formatCount(872_300_484), "872.3M");
  assert.equal(formatCount(1.2e9), "1.20B");
  assert.equal(formatCount(999), "999");
});

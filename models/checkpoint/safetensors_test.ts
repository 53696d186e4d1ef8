import assert from "node:assert/strict";
import { join } from "node:path";
import { openSafetensors, writeSafetensors } from "./safetensors.ts";
import { openWeights } from "./weights.ts";

const FIXTURES = new URL("../../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;

/** A safetensors file from a raw header object and data bytes (for crafting broken files). */
async function rawSafetensors(path: string, header: unknown, data: Uint8Array, lenOverride?: number) {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(lenOverride ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  await Deno.writeFile(path, out);
}

Deno.test("openSafetensors() reads the reference tensors' shapes, dtypes and values", async () => {
  const w = await openSafetensors(join(FIXTURES, "references.safetensors"));
  try {
    assert.equal(w.names().length, 26);
    assert.deepEqual(w.info("unet.sample"), { dtype: "F32", shape: [2, 4, 16, 16], byteLength: 2 * 4 * 16 * 16 * 4 });
    assert.deepEqual(w.info("bert.input_ids"), { dtype: "I64", shape: [2, 77], byteLength: 2 * 77 * 8 });
    const ids = await w.readInt64("bert.input_ids");
    // bert.input_ids rows are the first two padded prompts of the tokenizer reference.
    const tok = JSON.parse(await Deno.readTextFile(join(FIXTURES, "tokenizer_reference.json"))) as {
      padded: number[][];
    };
    assert.deepEqual([...ids].map(Number), [...tok.padded[0]!, ...tok.padded[1]!]);
    const idsF = await w.readFloat32("bert.input_ids");
    assert.deepEqual([...idsF], [...ids].map(Number));
    const x = await w.readFloat32("unet.sample");
    assert.equal(x.length, 2048);
    assert.ok(x.some((v) => v !== 0) && x.every(Number.isFinite));
    assert.throws(
      () => w.info("nope"),
      (e) => e instanceof RangeError && /'nope'/.test(e.message) && /references/.test(e.message),
    );
    await assert.rejects(() => w.readInt64("unet.sample"), /F32/);
  } finally {
    w.close();
  }
  await assert.rejects(() => w.readFloat32("unet.sample"), /closed/);
});

Deno.test("readFloat32() converts F16, BF16 and F8 exactly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const all16 = new Uint16Array(65536).map((_, i) => i);
    const bf = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0xff80, 0x0001, 0x8000, 0x4049, 0x7f7f, 0x7fc0]);
    const f8 = new Uint8Array(256).map((_, i) => i);
    const p = join(dir, "conv.safetensors");
    await writeSafetensors(p, [
      { name: "h", dtype: "F16", shape: [256, 256], data: all16 },
      { name: "b", dtype: "BF16", shape: [bf.length], data: bf },
      { name: "e4", dtype: "F8_E4M3", shape: [256], data: f8 },
      { name: "e5", dtype: "F8_E5M2", shape: [256], data: f8 },
      { name: "d", dtype: "F64", shape: [2], data: new Float64Array([0.1, -3]) },
    ], { metadata: { format: "pt" } });
    const w = await openWeights(p);
    try {
      assert.deepEqual(w.metadata, { format: "pt" });
      // Oracle: the engine's own binary16 decoding.
      const h = await w.readFloat32("h");
      const want = new Float16Array(all16.buffer);
      for (let i = 0; i < 65536; i++) {
        if (!Object.is(h[i], want[i]!) && !(Number.isNaN(h[i]) && Number.isNaN(want[i]!))) {
          assert.fail(`F16 0x${i.toString(16)}: got ${h[i]}, want ${want[i]}`);
        }
      }
      assert.equal(h[0x0001], 2 ** -24);
      assert.equal(h[0x7bff], 65504);
      const b = await w.readFloat32("b");
      assert.deepEqual([...b].slice(0, 8), [
        1,
        -2,
        Infinity,
        -Infinity,
        2 ** -133,
        -0,
        3.140625,
        3.3895313892515355e38,
      ]);
      assert.ok(Number.isNaN(b[8]));
      const e4 = await w.readFloat32("e4");
      assert.equal(e4[0x38], 1); // 0.0111.000: exponent 7 = bias
      assert.equal(e4[0x7e], 448); // largest finite e4m3fn
      assert.equal(e4[0x01], 2 ** -9); // smallest subnormal
      assert.ok(Number.isNaN(e4[0x7f]) && Number.isNaN(e4[0xff]));
      assert.equal(e4[0xb8], -1);
      const e5 = await w.readFloat32("e5");
      assert.equal(e5[0x3c], 1);
      assert.equal(e5[0x7c], Infinity);
      assert.equal(e5[0x7b], 57344);
      assert.deepEqual([...await w.readFloat32("d")], [Math.fround(0.1), -3]);
    } finally {
      w.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors() pads the header to 8 bytes and round-trips through openSafetensors()", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = join(dir, "rt.safetensors");
    await writeSafetensors(p, [
      { name: "a", dtype: "F32", shape: [3], data: new Float32Array([1, 2, 3]) },
      { name: "s", dtype: "F32", shape: [], data: () => new Float32Array([7]) },
      { name: "z", dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
    ]);
    const bytes = await Deno.readFile(p);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const w = await openSafetensors(p);
    try {
      assert.deepEqual(w.names(), ["a", "s", "z"]);
      assert.deepEqual([...await w.readFloat32("a")], [1, 2, 3]);
      assert.deepEqual([...await w.readFloat32("s")], [7]);
      assert.deepEqual(w.info("z"), { dtype: "F32", shape: [0, 4], byteLength: 0 });
    } finally {
      w.close();
    }
    await assert.rejects(
      () => writeSafetensors(p, [{ name: "a", dtype: "F32", shape: [4], data: new Float32Array(3) }]),
      /'a' F32\[4\] needs 16 bytes: got 12/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSafetensors() refuses truncated files and headers that lie, naming the file and tensor", async (t) => {
  const dir = await Deno.makeTempDir();
  const p = join(dir, "bad.safetensors");
  const data = new Uint8Array(16);
  const ok = { w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };
  try {
    await t.step("a copy cut short", async () => {
      const good = await Deno.readFile(join(FIXTURES, "ldm-text2im/vqvae/diffusion_pytorch_model.safetensors"));
      await Deno.writeFile(p, good.subarray(0, good.length - 100));
      await assert.rejects(
        () => openSafetensors(p),
        (e) => e instanceof RangeError && /truncated/.test(e.message) && e.message.includes(p),
      );
      await Deno.writeFile(p, good.subarray(0, 5));
      await assert.rejects(() => openSafetensors(p), /truncated/);
      await Deno.writeFile(p, good.subarray(0, 200));
      await assert.rejects(() => openSafetensors(p), /truncated: the header claims/);
    });
    await t.step("data_offsets that do not match the shape", async () => {
      await rawSafetensors(p, { w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, data);
      await assert.rejects(() => openSafetensors(p), /'w': the header lies: shape \[2,3\] of F32 needs 24 bytes/);
    });
    await t.step("overlapping tensors", async () => {
      await rawSafetensors(p, { ...ok, v: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, data);
      await assert.rejects(() => openSafetensors(p), /overlap/);
    });
    await t.step("an unknown dtype", async () => {
      await rawSafetensors(p, { w: { dtype: "F128", shape: [1], data_offsets: [0, 16] } }, data);
      await assert.rejects(() => openSafetensors(p), /'w' has unknown dtype "F128"/);
    });
    await t.step("a header length beyond the file, or absurd", async () => {
      await rawSafetensors(p, ok, data, 10_000);
      await assert.rejects(() => openSafetensors(p), /truncated/);
      await rawSafetensors(p, ok, data, 2 ** 40);
      await assert.rejects(() => openSafetensors(p), /header length \d+ exceeds/);
    });
    await t.step("a header that is not JSON", async () => {
      const h = new TextEncoder().encode("{not json}");
      const b = new Uint8Array(8 + h.length);
      new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
      b.set(h, 8);
      await Deno.writeFile(p, b);
      await assert.rejects(() => openSafetensors(p), /not valid UTF-8 JSON/);
    });
    await t.step("a missing file", async () => {
      await assert.rejects(
        () => openSafetensors(join(dir, "none.safetensors")),
        (e) => e instanceof Deno.errors.NotFound && /none\.safetensors/.test(e.message),
      );
    });
    await t.step("a well-formed crafted file still reads", async () => {
      await rawSafetensors(p, ok, new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer));
      const w = await openSafetensors(p);
      assert.deepEqual([...await w.readFloat32("w")], [1, 2, 3, 4]);
      w.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

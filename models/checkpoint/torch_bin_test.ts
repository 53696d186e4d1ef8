import assert from "node:assert/strict";
import { join } from "node:path";
import { openTorchBin } from "./torch_bin.ts";
import { openWeights } from "./weights.ts";
import { restrictedUnpickle } from "./_pickle.ts";
import { P, pickle, storedZip, tensorDictPickle } from "./_testing.ts";

const FIXTURES = new URL("../../tests/fixtures/diffusers-tiny/", import.meta.url).pathname;

Deno.test("openTorchBin() reads every unet/vqvae tensor identically to the safetensors copy", async () => {
  for (const component of ["unet", "vqvae"]) {
    const st = await openWeights(join(FIXTURES, "ldm-text2im", component, "diffusion_pytorch_model.safetensors"));
    const bin = await openTorchBin(join(FIXTURES, "ldm-text2im-bin", component, "diffusion_pytorch_model.bin"));
    try {
      assert.deepEqual([...bin.names()].sort(), [...st.names()].sort(), component);
      assert.ok(bin.names().length > 100);
      for (const name of st.names()) {
        assert.deepEqual(bin.info(name), st.info(name), name);
        assert.deepEqual(await bin.readRaw(name), await st.readRaw(name), name);
      }
      const first = bin.names()[0]!;
      const w = await bin.readFloat32(first);
      assert.equal(w.length, bin.info(first).shape.reduce((a, b) => a * b, 1));
      assert.deepEqual(w, await st.readFloat32(first));
    } finally {
      st.close();
      bin.close();
    }
  }
});

async function withZip(files: [string, Uint8Array][], fn: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    const p = join(dir, "diffusion_pytorch_model.bin");
    await Deno.writeFile(p, storedZip(files));
    await fn(p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);

Deno.test("openTorchBin() refuses a pickle naming os.system, before anything runs", async () => {
  // The classic payload: os.system("echo pwned") via GLOBAL + REDUCE.
  const evil = pickle(
    P.proto(),
    P.global("os", "system"),
    P.mark(),
    P.str("echo pwned"),
    P.tuple(),
    P.reduce(),
    P.stop(),
  );
  await withZip([["archive/data.pkl", evil]], async (p) => {
    await assert.rejects(
      () => openTorchBin(p),
      /refusing to unpickle global os\.system: only torch state-dict globals are allowed/,
    );
  });
  assert.throws(
    () => restrictedUnpickle(pickle(P.proto(), P.global("builtins", "eval"), P.stop()), "x"),
    /builtins\.eval/,
  );
  // Protocol-4 STACK_GLOBAL is checked the same way.
  const stackGlobal = pickle(P.proto(4), P.str("subprocess"), P.str("Popen"), [0x93], P.stop());
  assert.throws(() => restrictedUnpickle(stackGlobal, "x"), /refusing to unpickle global subprocess\.Popen/);
  // Opcodes that build arbitrary objects are not interpreted at all.
  assert.throws(() => restrictedUnpickle(pickle(P.proto(), [0x69], P.stop()), "x"), /unsupported pickle opcode 0x69/);
});

Deno.test("openTorchBin() reads crafted archives: strided views are materialised in C order", async () => {
  // storage [0..5]; a [2,3] view with strides [1,2] (a saved transpose) is [[0,2,4],[1,3,5]].
  const pkl = tensorDictPickle("t", { key: "0", numel: 6 }, { offset: 0, shape: [2, 3], stride: [1, 2] });
  await withZip([["archive/data.pkl", pkl], ["archive/byteorder", new TextEncoder().encode("little")], [
    "archive/data/0",
    f32([0, 1, 2, 3, 4, 5]),
  ]], async (p) => {
    const w = await openTorchBin(p);
    try {
      assert.deepEqual(w.info("t"), { dtype: "F32", shape: [2, 3], byteLength: 24 });
      assert.deepEqual([...await w.readFloat32("t")], [0, 2, 4, 1, 3, 5]);
    } finally {
      w.close();
    }
  });
  // A contiguous view at an offset inside a larger storage.
  const view = tensorDictPickle("v", { key: "7", numel: 6 }, { offset: 2, shape: [2, 2], stride: [2, 1] });
  await withZip([["a/data.pkl", view], ["a/data/7", f32([0, 1, 2, 3, 4, 5])]], async (p) => {
    const w = await openTorchBin(p);
    assert.deepEqual([...await w.readFloat32("v")], [2, 3, 4, 5]);
    w.close();
  });
  // HalfStorage → F16, converted exactly.
  const half = tensorDictPickle("h", { key: "0", numel: 2, type: "HalfStorage" }, {
    offset: 0,
    shape: [2],
    stride: [1],
  });
  await withZip(
    [["a/data.pkl", half], ["a/data/0", new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer)]],
    async (p) => {
      const w = await openTorchBin(p);
      assert.equal(w.info("h").dtype, "F16");
      assert.deepEqual([...await w.readFloat32("h")], [1, -2]);
      w.close();
    },
  );
});

Deno.test("openTorchBin() refuses inconsistent or truncated archives with clear errors", async (t) => {
  await t.step("a view past the end of its storage", async () => {
    const pkl = tensorDictPickle("t", { key: "0", numel: 4 }, { offset: 1, shape: [4], stride: [1] });
    await withZip([["a/data.pkl", pkl], ["a/data/0", f32([0, 1, 2, 3])]], async (p) => {
      await assert.rejects(
        () => openTorchBin(p),
        /tensor 't' \[4\] at offset 1 needs 5 elements of storage '0', which has 4/,
      );
    });
  });
  await t.step("a storage smaller than the pickle declares", async () => {
    const pkl = tensorDictPickle("t", { key: "0", numel: 8 }, { offset: 0, shape: [8], stride: [1] });
    await withZip([["a/data.pkl", pkl], ["a/data/0", f32([0, 1, 2, 3])]], async (p) => {
      await assert.rejects(() => openTorchBin(p), /holds 16 bytes but the pickle declares 8 F32 elements/);
    });
  });
  await t.step("a missing storage", async () => {
    const pkl = tensorDictPickle("t", { key: "3", numel: 1 }, { offset: 0, shape: [1], stride: [1] });
    await withZip([["a/data.pkl", pkl]], async (p) => {
      await assert.rejects(() => openTorchBin(p), /storage '3' of tensor 't' is missing \(a\/data\/3\)/);
    });
  });
  await t.step("a big-endian archive", async () => {
    const pkl = tensorDictPickle("t", { key: "0", numel: 1 }, { offset: 0, shape: [1], stride: [1] });
    await withZip(
      [["a/data.pkl", pkl], ["a/byteorder", new TextEncoder().encode("big")], ["a/data/0", f32([1])]],
      async (p) => {
        await assert.rejects(() => openTorchBin(p), /byteorder is 'big'/);
      },
    );
  });
  await t.step("a state dict holding a non-tensor", async () => {
    const pkl = pickle(P.proto(), P.emptyDict(), P.mark(), P.str("step"), P.int1(3), P.setitems(), P.stop());
    await withZip([["a/data.pkl", pkl]], async (p) => {
      await assert.rejects(() => openTorchBin(p), /entry 'step' is not a tensor/);
    });
  });
  await t.step("a truncated copy of the real .bin", async () => {
    const good = await Deno.readFile(join(FIXTURES, "ldm-text2im-bin/vqvae/diffusion_pytorch_model.bin"));
    const dir = await Deno.makeTempDir();
    try {
      const p = join(dir, "diffusion_pytorch_model.bin");
      await Deno.writeFile(p, good.subarray(0, Math.floor(good.length / 2)));
      await assert.rejects(
        () => openTorchBin(p),
        (e) => e instanceof Error && /truncated/.test(e.message) && e.message.includes(p),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("a legacy (pre-zip) torch file and a non-zip", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const p = join(dir, "old.bin");
      await Deno.writeFile(p, pickle(P.proto(), P.int1(1), P.stop()));
      await assert.rejects(() => openTorchBin(p), /legacy \(pre-zip, torch < 1\.6\)/);
      await assert.rejects(() => openWeights(p), /legacy/);
      await Deno.writeFile(p, new TextEncoder().encode("hello world"));
      await assert.rejects(() => openTorchBin(p), /not a torch\.save zip archive/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("restrictedUnpickle() handles protocol-4 framing, memo, STACK_GLOBAL, BUILD state and Parameters", () => {
  const enc = new TextEncoder();
  const short = (s: string) => [0x8c, enc.encode(s).length, ...enc.encode(s)];
  const MEMOIZE = [0x94];
  const body = [
    ...short("collections"),
    ...MEMOIZE,
    ...short("OrderedDict"),
    ...MEMOIZE,
    0x93, // STACK_GLOBAL
    ...MEMOIZE, // memo 2 = OrderedDict
    ...P.emptyTuple(),
    ...P.reduce(),
    ...MEMOIZE,
    ...P.mark(),
    ...short("n"),
    ...[0x8a, 2, 0x00, 0x80], // LONG1 -32768
    ...short("f"),
    ...[0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], // BINFLOAT 1.5
    ...short("l"),
    ...[0x5d, 0x28, 0x4e, 0x88, 0x65], // [None, True] via EMPTY_LIST MARK NONE NEWTRUE APPENDS
    ...short("d"),
    ...[0x68, 2, 0x29, 0x52], // BINGET 2 (OrderedDict) () REDUCE
    ...P.setitems(),
    // BUILD with {"_metadata": {}}, as torch pickles a state dict's _metadata attribute.
    ...P.emptyDict(),
    ...short("_metadata"),
    ...P.emptyDict(),
    0x73, // SETITEM
    0x62, // BUILD
    ...P.stop(),
  ];
  const frame = [0x95, body.length, 0, 0, 0, 0, 0, 0, 0];
  const root = restrictedUnpickle(pickle(P.proto(4), frame, body), "p4") as Map<string, unknown>;
  assert.ok(root instanceof Map);
  assert.deepEqual([...root.keys()], ["n", "f", "l", "d"]);
  assert.equal(root.get("n"), -32768);
  assert.equal(root.get("f"), 1.5);
  assert.deepEqual([...root.get("l") as unknown[]], [null, true]);
  assert.ok(root.get("d") instanceof Map);

  // torch._utils._rebuild_parameter(tensor, requires_grad, hooks) unwraps to the tensor.
  const tensor = tensorDictPickle("t", { key: "0", numel: 2 }, { offset: 0, shape: [2], stride: [1] });
  const inner = tensor.subarray(tensor.indexOf(0x63), tensor.lastIndexOf(0x75)); // GLOBAL ... REDUCE of the tensor
  const param = pickle(
    P.proto(),
    P.emptyDict(),
    P.mark(),
    P.str("w"),
    P.global("torch._utils", "_rebuild_parameter"),
    P.mark(),
    [...inner],
    P.newfalse(),
    P.global("collections", "OrderedDict"),
    P.emptyTuple(),
    P.reduce(),
    P.tuple(),
    P.reduce(),
    P.setitems(),
    P.stop(),
  );
  const w = (restrictedUnpickle(param, "param") as Map<string, { kind: string; shape: number[] }>).get("w");
  assert.equal(w?.kind, "tensor");
  assert.deepEqual(w?.shape, [2]);
  // Malformed streams fail with the byte position, never crash.
  assert.throws(() => restrictedUnpickle(pickle(P.proto(), P.tuple()), "bad"), /MARK expected .*pickle byte 2/);
  assert.throws(() => restrictedUnpickle(pickle(P.proto(), P.str("x")).subarray(0, 5), "cut"), /truncated/);
  assert.throws(() => restrictedUnpickle(pickle(P.proto(), [0x68, 9], P.stop()), "memo"), /memo key 9/);
});

/**
 * Test helpers: a minimal stored (uncompressed) zip writer and a tiny pickle assembler, to craft `torch.save`-shaped
 * archives (including malicious or malformed ones) without Python.
 *
 * @module
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Builds a zip archive with every entry stored (compression method 0), as `torch.save` writes them. */
export function storedZip(files: readonly [string, Uint8Array][]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = enc.encode(name);
    const crc = crc32(data);
    const local = new Uint8Array(30 + nameBytes.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    const cd = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    cd.set(nameBytes, 46);
    parts.push(local, data);
    central.push(cd);
    offset += local.length + data.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, eocd];
  const out = new Uint8Array(all.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of all) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Pickle assembler: opcodes as helpers returning bytes, concatenated by {@linkcode pickle}. */
export const P = {
  proto: (v = 2) => [0x80, v],
  stop: () => [0x2e],
  mark: () => [0x28],
  emptyDict: () => [0x7d],
  emptyTuple: () => [0x29],
  tuple: () => [0x74],
  tuple2: () => [0x86],
  setitems: () => [0x75],
  reduce: () => [0x52],
  newfalse: () => [0x89],
  binpersid: () => [0x51],
  int1: (v: number) => [0x4b, v],
  global: (module: string, name: string) => [0x63, ...new TextEncoder().encode(`${module}\n${name}\n`)],
  str: (s: string) => {
    const b = new TextEncoder().encode(s);
    return [0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b];
  },
};

/** Concatenates opcode byte arrays into a pickle stream. */
export function pickle(...ops: number[][]): Uint8Array {
  return new Uint8Array(ops.flat());
}

/**
 * The pickle `torch.save({key: tensor})` writes for one tensor of a FloatStorage with the given view (protocol 2).
 */
export function tensorDictPickle(
  key: string,
  storage: { key: string; numel: number; type?: string },
  view: { offset: number; shape: number[]; stride: number[] },
): Uint8Array {
  const ints = (xs: number[]) => [...P.mark(), ...xs.flatMap((x) => P.int1(x)), ...P.tuple()];
  return pickle(
    P.proto(),
    P.emptyDict(),
    P.mark(),
    P.str(key),
    P.global("torch._utils", "_rebuild_tensor_v2"),
    P.mark(),
    P.mark(),
    P.str("storage"),
    P.global("torch", storage.type ?? "FloatStorage"),
    P.str(storage.key),
    P.str("cpu"),
    P.int1(storage.numel),
    P.tuple(),
    P.binpersid(),
    P.int1(view.offset),
    ints(view.shape),
    ints(view.stride),
    P.newfalse(),
    P.global("collections", "OrderedDict"),
    P.emptyTuple(),
    P.reduce(),
    P.tuple(),
    P.reduce(),
    P.setitems(),
    P.stop(),
  );
}

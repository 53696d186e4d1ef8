/**
 * A restricted unpickler for the pickles `torch.save` writes for a state dict (`data.pkl` inside a `.bin` zip).
 *
 * It interprets the pickle opcodes of protocols 0-5 that describe plain data (ints, floats, strings, bytes, tuples,
 * lists, dicts, memo) and resolves `GLOBAL`s only from a fixed allow-list of torch state-dict names, each mapped to a
 * pure TypeScript function here. Nothing is ever imported or executed: any other global is refused the moment its
 * opcode is read, e.g. `refusing to unpickle global os.system: only torch state-dict globals are allowed`.
 * Opcode semantics follow CPython's `Lib/pickle.py` / `Lib/pickletools.py`; the tensor globals follow
 * `torch/_utils.py` (`_rebuild_tensor_v2`, `_rebuild_parameter`) and `torch/serialization.py` (persistent ids).
 *
 * @module
 */
import type { DType } from "./types.ts";

/** A storage reference from a persistent id `('storage', storage_type, key, location, numel)`. */
export interface PickledStorage {
  readonly kind: "storage";
  readonly dtype: DType;
  /** The storage's file name under `data/` in the archive. */
  readonly key: string;
  readonly location: string;
  /** Elements in the storage. */
  readonly numel: number;
}

/** A tensor rebuilt by `torch._utils._rebuild_tensor_v2`: a strided view into a storage. */
export interface PickledTensor {
  readonly kind: "tensor";
  readonly storage: PickledStorage;
  /** Offset into the storage, in elements. */
  readonly offset: number;
  readonly shape: readonly number[];
  /** Strides in elements. */
  readonly stride: readonly number[];
}

/** A resolved, allow-listed global. */
interface AllowedGlobal {
  readonly kind: "global";
  readonly qualname: string;
}

/** Storage class names → dtype (torch/storage.py's legacy typed storages, which torch.save still pickles). */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  "torch.FloatStorage": "F32",
  "torch.HalfStorage": "F16",
  "torch.BFloat16Storage": "BF16",
  "torch.DoubleStorage": "F64",
  "torch.LongStorage": "I64",
  "torch.IntStorage": "I32",
  "torch.ShortStorage": "I16",
  "torch.CharStorage": "I8",
  "torch.ByteStorage": "U8",
  "torch.BoolStorage": "BOOL",
};

const CALLABLES = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
]);

/** Whether `qualname` is on the allow-list. */
export function isAllowedGlobal(qualname: string): boolean {
  return CALLABLES.has(qualname) || Object.hasOwn(STORAGE_DTYPES, qualname);
}

type Value = unknown;

/** A Python tuple (kept distinct from lists so persistent ids and argument tuples can be checked). */
class Tuple extends Array<Value> {}

function tuple(items: Value[]): Tuple {
  const t = new Tuple();
  t.push(...items);
  return t;
}

function describe(v: Value): string {
  if (v === null) return "None";
  if (v instanceof Tuple) return `tuple(${v.length})`;
  if (Array.isArray(v)) return `list(${v.length})`;
  if (v instanceof Map) return "dict";
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "object" && v !== null && "kind" in v) return String((v as { kind: string }).kind);
  return typeof v;
}

function isIntLike(v: Value): v is number {
  return typeof v === "number" && Number.isSafeInteger(v);
}

function intTuple(v: Value, what: string): number[] {
  if (!Array.isArray(v) || !v.every(isIntLike)) {
    throw new TypeError(`${what} must be a tuple of ints: got ${describe(v)}`);
  }
  return [...v] as number[];
}

/**
 * Unpickles `bytes` under the allow-list.
 *
 * @param bytes the pickle stream.
 * @param source a name for error messages (e.g. the archive path).
 * @returns the unpickled root object: `Map` for dicts, arrays for lists/tuples, {@linkcode PickledTensor} for tensors.
 * @throws {Error} naming the offending global (`refusing to unpickle global os.system ...`), an unsupported opcode
 * with its byte position, or a malformed stream.
 */
export function restrictedUnpickle(bytes: Uint8Array, source: string): Value {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let pos = 0;
  let stack: Value[] = [];
  const metastack: Value[][] = [];
  const memo = new Map<number, Value>();

  let opStart = 0;
  const fail = (msg: string, at = opStart): never => {
    throw new Error(`${source}: ${msg} (pickle byte ${at})`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.byteLength) fail(`pickle stream truncated: needs ${n} more bytes`);
  };
  const u8 = () => (need(1), bytes[pos++]!);
  const u16 = () => (need(2), pos += 2, dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), pos += 4, dv.getUint32(pos - 4, true));
  const i32 = () => (need(4), pos += 4, dv.getInt32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} too large`);
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail("pickle stream truncated: unterminated text line");
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): Value => {
    if (stack.length === 0) fail("pickle stack underflow");
    return stack.pop();
  };
  const top = (): Value => {
    if (stack.length === 0) fail("pickle stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = (): Value[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) fail("MARK expected but none on the stack");
    stack = prev!;
    return items;
  };
  const str = (b: Uint8Array) => {
    try {
      return utf8.decode(b);
    } catch {
      return fail("string is not valid UTF-8");
    }
  };
  const long = (b: Uint8Array): Value => {
    // Two's complement little-endian of any width (LONG1/LONG4).
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (module: string, name: string, at: number): AllowedGlobal => {
    const qualname = `${module}.${name}`;
    if (!isAllowedGlobal(qualname)) {
      fail(
        `refusing to unpickle global ${qualname}: only torch state-dict globals are allowed ` +
          `(${[...CALLABLES, ...Object.keys(STORAGE_DTYPES)].join(", ")})`,
        at,
      );
    }
    return { kind: "global", qualname };
  };
  const persistentLoad = (pid: Value, at: number): PickledStorage => {
    if (!(pid instanceof Tuple) || pid.length !== 5 || pid[0] !== "storage") {
      return fail(`unsupported persistent id ${describe(pid)}: expected ('storage', type, key, location, numel)`, at);
    }
    const [, type, key, location, n] = pid;
    const g = type as AllowedGlobal;
    const dtype = typeof g === "object" && g?.kind === "global" ? STORAGE_DTYPES[g.qualname] : undefined;
    if (!dtype) return fail(`persistent id storage type must be a torch *Storage class: got ${describe(type)}`, at);
    if (typeof key !== "string" || typeof location !== "string" || !isIntLike(n) || n < 0) {
      return fail("persistent id must hold (key: str, location: str, numel: int)", at);
    }
    return { kind: "storage", dtype, key, location, numel: n };
  };
  const call = (fn: Value, args: Value, at: number): Value => {
    const g = fn as AllowedGlobal;
    if (typeof g !== "object" || g === null || g.kind !== "global") {
      return fail(`REDUCE on a non-callable ${describe(fn)}`, at);
    }
    if (!(args instanceof Tuple)) return fail(`REDUCE arguments must be a tuple: got ${describe(args)}`, at);
    switch (g.qualname) {
      case "collections.OrderedDict":
        if (args.length !== 0) return fail("OrderedDict() with arguments is not supported", at);
        return new Map();
      case "torch._utils._rebuild_tensor_v2": {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.length < 6 || args.length > 7) {
          return fail(`_rebuild_tensor_v2 expects 6 or 7 arguments: got ${args.length}`, at);
        }
        const [storage, offset, size, stride] = args;
        const s = storage as PickledStorage;
        if (typeof s !== "object" || s === null || s.kind !== "storage") {
          return fail(`_rebuild_tensor_v2: first argument must be a storage: got ${describe(storage)}`, at);
        }
        if (!isIntLike(offset) || offset < 0) {
          return fail("_rebuild_tensor_v2: storage_offset must be a non-negative int", at);
        }
        const shape = intTuple(size, "_rebuild_tensor_v2 size");
        const strides = intTuple(stride, "_rebuild_tensor_v2 stride");
        if (shape.length !== strides.length) {
          return fail(`_rebuild_tensor_v2: size has ${shape.length} dims but stride has ${strides.length}`, at);
        }
        if (shape.some((d) => d < 0) || strides.some((d) => d < 0)) {
          return fail("_rebuild_tensor_v2: negative sizes or strides", at);
        }
        const t: PickledTensor = { kind: "tensor", storage: s, offset, shape, stride: strides };
        return t;
      }
      case "torch._utils._rebuild_parameter": {
        // _rebuild_parameter(data, requires_grad, backward_hooks): a Parameter wrapping a tensor; keep the tensor.
        const data = args[0] as PickledTensor;
        if (typeof data !== "object" || data === null || data.kind !== "tensor") {
          return fail("_rebuild_parameter: first argument must be a tensor", at);
        }
        return data;
      }
      default:
        return fail(`${g.qualname} is not callable`, at);
    }
  };

  need(0);
  for (;;) {
    const at = pos;
    opStart = at;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5 is not supported", at);
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || metastack.length !== 0) fail("STOP with a malformed stack", at);
        return stack[0];
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length > 0) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(take(u8())));
        break;
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) fail("LONG4 with a negative length", at);
        stack.push(long(take(n)));
        break;
      }
      case 0x49: { // INT (text): "00"/"01" are protocol-0 bools
        const s = line().trim();
        if (s === "00" || s === "01") stack.push(s === "01");
        else if (/^[-+]?\d+$/.test(s)) stack.push(Number(s));
        else fail(`INT with malformed value ${JSON.stringify(s)}`, at);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().trim().replace(/L$/, "");
        if (!/^[-+]?\d+$/.test(s)) fail(`LONG with malformed value ${JSON.stringify(s)}`, at);
        const v = BigInt(s);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(str(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(take(u64())));
        break;
      case 0x54: // BINSTRING (python 2 str)
        stack.push(latin1.decode(take(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x74: { // TUPLE
        const items = popMark(); // popMark() replaces `stack`: pop first, then push onto the outer stack
        stack.push(tuple(items));
        break;
      }
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: { // LIST
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list) || list instanceof Tuple) fail(`APPEND to ${describe(list)}`, at);
        (list as Value[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list) || list instanceof Tuple) fail(`APPENDS to ${describe(list)}`, at);
        (list as Value[]).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) fail("DICT with an odd number of items", at);
        const m = new Map<Value, Value>();
        for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
        stack.push(m);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        const m = top();
        if (!(m instanceof Map)) fail(`SETITEM on ${describe(m)}`, at);
        (m as Map<Value, Value>).set(k, v);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        const m = top();
        if (!(m instanceof Map)) fail(`SETITEMS on ${describe(m)}`, at);
        if (items.length % 2) fail("SETITEMS with an odd number of items", at);
        for (let i = 0; i < items.length; i += 2) (m as Map<Value, Value>).set(items[i], items[i + 1]);
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(global(module, name, at));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings", at);
        stack.push(global(module as string, name as string, at));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args, at));
        break;
      }
      case 0x81: { // NEWOBJ cls.__new__(cls, *args): only OrderedDict() makes sense in a state dict
        const args = pop();
        const cls = pop() as AllowedGlobal;
        if (cls?.kind !== "global" || cls.qualname !== "collections.OrderedDict") {
          fail(`NEWOBJ of ${describe(cls)} is not supported`, at);
        }
        stack.push(call(cls, args, at));
        break;
      }
      case 0x62: { // BUILD: obj.__setstate__(state). A state dict's `_metadata` attribute arrives this way; drop it.
        pop();
        const obj = top();
        if (!(obj instanceof Map)) fail(`BUILD on ${describe(obj)} is not supported`, at);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        stack.push(persistentLoad(pid, at));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: { // PUT (text)
        const idx = Number(line());
        if (!Number.isSafeInteger(idx)) fail("PUT with a malformed index", at);
        memo.set(idx, top());
        break;
      }
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: { // GET (text)
        const idx = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(idx)) fail(`memo key ${idx} referenced before it was stored`, at);
        stack.push(memo.get(idx));
        break;
      }
      default:
        fail(
          `unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")} (not used by torch.save state dicts)`,
          at,
        );
    }
  }
}

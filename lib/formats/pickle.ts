// A pickle interpreter that treats a pickle as DATA.
//
// Python's pickle is a small stack machine whose GLOBAL/REDUCE/BUILD opcodes import and call
// arbitrary Python objects; loading an untrusted pickle in Python runs whatever code it names.
// This interpreter never runs anything: it builds plain JS values (null, booleans, numbers,
// bigints, strings, bytes, arrays, PickleDict maps, sets), and the only "calls" it can make are
// to the handlers of an explicit allowlist of globals passed in by the caller. Any other global,
// and any opcode that only makes sense for code execution (INST, OBJ, NEWOBJ, EXT*), raises
// JSD_UNSAFE_PICKLE naming it and its byte offset. Structural problems (truncation, stack
// underflow, missing memo entries, ...) raise JSD_BAD_FILE. The stack, memo and value sizes are
// bounded, and every opcode consumes input, so the run time is linear in the pickle's size.
//
// Over 400 lines, and one job: the machine and its table of opcode handlers, one short entry per
// opcode of protocols 0-5; the values it builds and the text-argument decoders live beside it
// (pickle-values.ts, pickle-text.ts).
import { JsdError } from "../errors.js";
import { memoIndex, decodeQuoted, decodeRawUnicodeEscape } from "./pickle-text.js";
import {
  DEFAULT_PICKLE_LIMITS,
  describe,
  isTuple,
  PickleDict,
  PickleGlobal,
  type GlobalHandler,
  type PickleCallContext,
  type PickleLimits,
  type UnpickleOptions,
} from "./pickle-values.js";

export { DEFAULT_PICKLE_LIMITS, describe, isTuple, PickleDict, PickleGlobal, type GlobalHandler, type PickleCallContext, type PickleLimits, type UnpickleOptions } from "./pickle-values.js";

/** Opcodes that exist only to import or instantiate arbitrary objects. Never supported. */
const UNSAFE_OPCODES: Record<number, string> = {
  0x69: "INST",
  0x6f: "OBJ",
  0x81: "NEWOBJ",
  0x92: "NEWOBJ_EX",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

function opName(op: number): string {
  const ch = op >= 0x20 && op < 0x7f ? ` '${String.fromCharCode(op)}'` : "";
  return `0x${op.toString(16).padStart(2, "0")}${ch}`;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");


/** The unpickler's state (stacks, memo, read position) and the steps its opcodes share. */
class PickleMachine {
  /** The values since the last MARK; the earlier ones wait in `marks`. */
  stack: unknown[] = [];
  readonly marks: unknown[][] = [];
  readonly memo = new Map<number, unknown>();
  pos = 0;
  /** Where the opcode being run starts, and which it is (for messages). */
  opAt = 0;
  op = 0;
  /** Values on all stacks together. */
  depth = 0;
  stopped = false;
  result: unknown;
  readonly view: DataView;
  readonly source: string;
  readonly limits: PickleLimits;
  readonly globals: ReadonlyMap<string, GlobalHandler>;

  constructor(
    readonly data: Uint8Array,
    readonly options: UnpickleOptions,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.source = options.source ?? "pickle";
    this.limits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
    this.globals = options.globals ?? new Map<string, GlobalHandler>();
  }

  bad(why: string): JsdError {
    return new JsdError("JSD_BAD_FILE", `${this.source}: malformed pickle at byte ${this.opAt} (opcode ${opName(this.op)}): ${why}`);
  }
  unsafe(why: string): JsdError {
    return new JsdError("JSD_UNSAFE_PICKLE", `${this.source}: unsafe pickle at byte ${this.opAt}: ${why}`);
  }
  /** The offset of the next k bytes, which are consumed. */
  need(k: number): number {
    const n = this.data.length;
    if (k < 0 || this.pos + k > n) throw this.bad(`needs ${k} more bytes but the pickle ends at byte ${n} (truncated?)`);
    const at = this.pos;
    this.pos += k;
    return at;
  }
  push(value: unknown): void {
    if (++this.depth > this.limits.maxStack) throw this.bad(`stack holds more than ${this.limits.maxStack} values`);
    this.stack.push(value);
  }
  pop(): unknown {
    if (this.stack.length === 0) throw this.bad("stack underflow");
    this.depth--;
    return this.stack.pop();
  }
  top(): unknown {
    if (this.stack.length === 0) throw this.bad("stack underflow");
    return this.stack[this.stack.length - 1];
  }
  /** The values since the last MARK, which is removed. */
  popMark(): unknown[] {
    const items = this.stack;
    const previous = this.marks.pop();
    if (previous === undefined) throw this.bad("no MARK to pop to");
    this.stack = previous;
    this.depth -= items.length;
    return items;
  }
  /** A text argument: Latin-1 up to the next newline, at most maxTextArg bytes. */
  readLine(): string {
    const { data } = this;
    const n = data.length;
    const start = this.pos;
    const limit = Math.min(n, start + this.limits.maxTextArg + 1);
    for (let i = start; i < limit; i++) {
      if (data[i] === 0x0a) {
        this.pos = i + 1;
        return latin1.decode(data.subarray(start, i));
      }
    }
    if (limit === n) throw this.bad("text argument is not terminated by a newline (truncated?)");
    throw this.bad(`text argument is longer than ${this.limits.maxTextArg} bytes`);
  }
  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }
  u64(): number {
    const value = this.view.getBigUint64(this.need(8), true);
    if (value > BigInt(this.data.length)) throw this.bad(`length ${value} runs past the end of the pickle (${this.data.length} bytes; truncated?)`);
    return Number(value);
  }
  bytesOf(length: number): Uint8Array {
    return this.data.subarray(this.need(length), this.pos);
  }
  decodeUtf8(bytes: Uint8Array): string {
    try {
      return utf8.decode(bytes);
    } catch {
      throw this.bad("string is not valid UTF-8");
    }
  }
  memoPut(key: number, value: unknown): void {
    if (!this.memo.has(key) && this.memo.size >= this.limits.maxMemo) throw this.bad(`memo holds more than ${this.limits.maxMemo} values`);
    this.memo.set(key, value);
  }
  memoGet(key: number): unknown {
    if (!this.memo.has(key)) throw this.bad(`memo has no entry ${key}`);
    return this.memo.get(key);
  }
  resolveGlobal(module: string, name: string): PickleGlobal {
    const qualified = `${module}.${name}`;
    const handler = this.globals.get(qualified);
    if (!handler) throw this.unsafe(`global '${qualified}' is not allowed (only ${[...this.globals.keys()].join(", ") || "no globals"} may appear)`);
    return new PickleGlobal(module, name, handler);
  }
  intFromText(text: string): number | bigint | boolean {
    if (text === "01") return true;
    if (text === "00") return false;
    const trimmed = text.endsWith("L") ? text.slice(0, -1) : text;
    if (!/^[+-]?\d+$/.test(trimmed)) throw this.bad(`'${text}' is not an integer`);
    const value = BigInt(trimmed);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  longFromBytes(bytes: Uint8Array): number | bigint {
    if (bytes.length === 0) return 0;
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
    if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(8 * bytes.length);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  checkSize(size: number): void {
    if (size > this.limits.maxContainer) throw this.bad(`container holds more than ${this.limits.maxContainer} items`);
  }
  setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Map)) throw this.bad(`SETITEM(S) on a ${describe(target)}, not a dict`);
    if (items.length % 2 !== 0) throw this.bad("SETITEMS with an odd number of values");
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      if (typeof key === "object" && key !== null && !isTuple(key)) throw this.bad(`unhashable dict key (${describe(key)})`);
      target.set(key, items[i + 1]);
    }
    this.checkSize(target.size);
  }
  appendItems(target: unknown, items: unknown[]): void {
    if (!Array.isArray(target) || Object.isFrozen(target)) throw this.bad(`APPEND(S) on a ${describe(target)}, not a list`);
    this.checkSize(target.length + items.length);
    for (const item of items) target.push(item);
  }
  context(): PickleCallContext {
    return { offset: this.opAt, source: this.source };
  }
  stop(value: unknown): void {
    this.stopped = true;
    this.result = value;
  }
}

const tuple = (items: unknown[]): readonly unknown[] => Object.freeze(items);

interface Opcode {
  name: string;
  run(m: PickleMachine): void;
}

/** The opcodes this unpickler runs, each a step on the machine. Anything else is refused. */
const OPCODES = new Map<number, Opcode>([
  [0x80, {
    name: "PROTO",
    run: (m) => {
      if (m.data[m.need(1)] > 5) throw m.bad(`unsupported protocol ${m.data[m.pos - 1]}`);
    },
  }],
  // FRAME: only a hint for buffered readers
  [0x95, { name: "FRAME", run: (m) => void m.u64() }],
  [0x2e, {
    name: "STOP",
    run: (m) => {
      if (m.marks.length !== 0) throw m.bad("STOP inside an open MARK");
      if (m.stack.length !== 1) throw m.bad(`STOP with ${m.stack.length} values on the stack, expected 1`);
      m.stop(m.stack[0]);
    },
  }],
  [0x28, {
    name: "MARK",
    run: (m) => {
      if (m.marks.length >= m.limits.maxMarks) throw m.bad(`more than ${m.limits.maxMarks} nested MARKs`);
      m.marks.push(m.stack);
      m.stack = [];
    },
  }],
  [0x30, {
    name: "POP",
    run: (m) => {
      if (m.stack.length === 0 && m.marks.length > 0) m.popMark();
      else m.pop();
    },
  }],
  [0x31, { name: "POP_MARK", run: (m) => void m.popMark() }],
  [0x32, { name: "DUP", run: (m) => void m.push(m.top()) }],
  // Constants and numbers.
  [0x4e, { name: "NONE", run: (m) => void m.push(null) }],
  [0x88, { name: "NEWTRUE", run: (m) => void m.push(true) }],
  [0x89, { name: "NEWFALSE", run: (m) => void m.push(false) }],
  [0x4a, { name: "BININT", run: (m) => void m.push(m.view.getInt32(m.need(4), true)) }],
  [0x4b, { name: "BININT1", run: (m) => void m.push(m.data[m.need(1)]) }],
  [0x4d, { name: "BININT2", run: (m) => void m.push(m.view.getUint16(m.need(2), true)) }],
  [0x8a, {
    name: "LONG1",
    run: (m) => {
      const length = m.data[m.need(1)];
      if (length > m.limits.maxLongBytes) throw m.bad(`LONG1 of ${length} bytes is over the ${m.limits.maxLongBytes}-byte limit`);
      m.push(m.longFromBytes(m.bytesOf(length)));
    },
  }],
  [0x8b, {
    name: "LONG4",
    run: (m) => {
      const length = m.view.getInt32(m.need(4), true);
      if (length < 0 || length > m.limits.maxLongBytes) throw m.bad(`LONG4 of ${length} bytes is out of range (limit ${m.limits.maxLongBytes})`);
      m.push(m.longFromBytes(m.bytesOf(length)));
    },
  }],
  // INT (text)
  [0x49, { name: "INT", run: (m) => void m.push(m.intFromText(m.readLine())) }],
  // LONG (text)
  [0x4c, { name: "LONG", run: (m) => void m.push(m.intFromText(m.readLine())) }],
  // FLOAT (text)
  [0x46, {
    name: "FLOAT",
    run: (m) => {
      const text = m.readLine();
      const value = Number(text);
      if (text.trim() === "" || (Number.isNaN(value) && !/^[+-]?nan$/i.test(text.trim()))) throw m.bad(`'${text}' is not a float`);
      m.push(value);
    },
  }],
  // BINFLOAT (big-endian)
  [0x47, { name: "BINFLOAT", run: (m) => void m.push(m.view.getFloat64(m.need(8), false)) }],
  // Strings and bytes.
  [0x58, { name: "BINUNICODE", run: (m) => void m.push(m.decodeUtf8(m.bytesOf(m.u32()))) }],
  [0x8c, { name: "SHORT_BINUNICODE", run: (m) => void m.push(m.decodeUtf8(m.bytesOf(m.data[m.need(1)]))) }],
  [0x8d, { name: "BINUNICODE8", run: (m) => void m.push(m.decodeUtf8(m.bytesOf(m.u64()))) }],
  // BINSTRING (Python 2 str; decoded as latin-1 like encoding="latin1")
  [0x54, {
    name: "BINSTRING",
    run: (m) => {
      const length = m.view.getInt32(m.need(4), true);
      if (length < 0) throw m.bad(`negative BINSTRING length ${length}`);
      m.push(latin1.decode(m.bytesOf(length)));
    },
  }],
  [0x55, { name: "SHORT_BINSTRING", run: (m) => void m.push(latin1.decode(m.bytesOf(m.data[m.need(1)]))) }],
  [0x42, { name: "BINBYTES", run: (m) => void m.push(m.bytesOf(m.u32()).slice()) }],
  [0x43, { name: "SHORT_BINBYTES", run: (m) => void m.push(m.bytesOf(m.data[m.need(1)]).slice()) }],
  [0x8e, { name: "BINBYTES8", run: (m) => void m.push(m.bytesOf(m.u64()).slice()) }],
  [0x96, { name: "BYTEARRAY8", run: (m) => void m.push(m.bytesOf(m.u64()).slice()) }],
  // STRING (text, quoted repr)
  [0x53, { name: "STRING", run: (m) => void m.push(decodeQuoted(m.readLine(), (why) => m.bad(why))) }],
  // UNICODE (text, raw-unicode-escape)
  [0x56, { name: "UNICODE", run: (m) => void m.push(decodeRawUnicodeEscape(m.readLine(), (why) => m.bad(why))) }],
  // Containers.
  [0x7d, { name: "EMPTY_DICT", run: (m) => void m.push(new PickleDict()) }],
  [0x64, {
    name: "DICT",
    run: (m) => {
      const dict = new PickleDict();
      m.setItems(dict, m.popMark());
      m.push(dict);
    },
  }],
  [0x5d, { name: "EMPTY_LIST", run: (m) => void m.push([]) }],
  [0x6c, {
    name: "LIST",
    run: (m) => {
      const items = m.popMark();
      m.checkSize(items.length);
      m.push(items);
    },
  }],
  [0x29, { name: "EMPTY_TUPLE", run: (m) => void m.push(tuple([])) }],
  [0x74, {
    name: "TUPLE",
    run: (m) => {
      const items = m.popMark();
      m.checkSize(items.length);
      m.push(tuple(items));
    },
  }],
  [0x85, { name: "TUPLE1", run: (m) => void m.push(tuple([m.pop()])) }],
  [0x86, {
    name: "TUPLE2",
    run: (m) => {
      const b = m.pop();
      const a = m.pop();
      m.push(tuple([a, b]));
    },
  }],
  [0x87, {
    name: "TUPLE3",
    run: (m) => {
      const c = m.pop();
      const b = m.pop();
      const a = m.pop();
      m.push(tuple([a, b, c]));
    },
  }],
  [0x8f, { name: "EMPTY_SET", run: (m) => void m.push(new Set()) }],
  [0x90, {
    name: "ADDITEMS",
    run: (m) => {
      const items = m.popMark();
      const target = m.top();
      if (!(target instanceof Set) || Object.isFrozen(target)) throw m.bad(`ADDITEMS on a ${describe(target)}, not a set`);
      for (const item of items) target.add(item);
      m.checkSize(target.size);
    },
  }],
  [0x91, {
    name: "FROZENSET",
    run: (m) => {
      const items = m.popMark();
      m.checkSize(items.length);
      m.push(Object.freeze(new Set(items)));
    },
  }],
  [0x61, {
    name: "APPEND",
    run: (m) => {
      const item = m.pop();
      m.appendItems(m.top(), [item]);
    },
  }],
  [0x65, {
    name: "APPENDS",
    run: (m) => {
      const items = m.popMark();
      m.appendItems(m.top(), items);
    },
  }],
  [0x73, {
    name: "SETITEM",
    run: (m) => {
      const value = m.pop();
      const key = m.pop();
      m.setItems(m.top(), [key, value]);
    },
  }],
  [0x75, {
    name: "SETITEMS",
    run: (m) => {
      const items = m.popMark();
      m.setItems(m.top(), items);
    },
  }],
  // Memo.
  [0x71, { name: "BINPUT", run: (m) => void m.memoPut(m.data[m.need(1)], m.top()) }],
  [0x72, { name: "LONG_BINPUT", run: (m) => void m.memoPut(m.u32(), m.top()) }],
  // PUT (text)
  [0x70, { name: "PUT", run: (m) => void m.memoPut(memoIndex(m.readLine(), (why) => m.bad(why)), m.top()) }],
  [0x94, { name: "MEMOIZE", run: (m) => void m.memoPut(m.memo.size, m.top()) }],
  [0x68, { name: "BINGET", run: (m) => void m.push(m.memoGet(m.data[m.need(1)])) }],
  [0x6a, { name: "LONG_BINGET", run: (m) => void m.push(m.memoGet(m.u32())) }],
  // GET (text)
  [0x67, { name: "GET", run: (m) => void m.push(m.memoGet(memoIndex(m.readLine(), (why) => m.bad(why)))) }],
  // Globals, calls and persistent ids: the only places where Python would run code.
  [0x63, {
    name: "GLOBAL",
    run: (m) => {
      const module = m.readLine();
      const name = m.readLine();
      m.push(m.resolveGlobal(module, name));
    },
  }],
  [0x93, {
    name: "STACK_GLOBAL",
    run: (m) => {
      const name = m.pop();
      const module = m.pop();
      if (typeof module !== "string" || typeof name !== "string") throw m.bad("STACK_GLOBAL needs two strings");
      m.push(m.resolveGlobal(module, name));
    },
  }],
  [0x52, {
    name: "REDUCE",
    run: (m) => {
      const args = m.pop();
      const callable = m.pop();
      if (!(callable instanceof PickleGlobal)) throw m.unsafe(`REDUCE calls a ${describe(callable)}, not an allowed global`);
      if (!isTuple(args)) throw m.bad(`REDUCE arguments for ${callable.qualifiedName} are a ${describe(args)}, not a tuple`);
      if (!callable.handler.call) throw m.unsafe(`global '${callable.qualifiedName}' may not be called`);
      m.push(callable.handler.call(args, m.context()));
    },
  }],
  [0x62, {
    name: "BUILD",
    run: (m) => {
      const state = m.pop();
      const target = m.top();
      if (target instanceof PickleDict) {
        target.state = state;
      } else if (target !== null && typeof target === "object" && typeof (target as { pickleBuild?: unknown }).pickleBuild === "function") {
        (target as { pickleBuild(state: unknown, context: PickleCallContext): void }).pickleBuild(state, m.context());
      } else {
        throw m.unsafe(`BUILD on a ${describe(target)} is not supported`);
      }
    },
  }],
  [0x51, {
    name: "BINPERSID",
    run: (m) => {
      const pid = m.pop();
      if (!m.options.persistentLoad) throw m.unsafe("persistent ids (BINPERSID) are not allowed here");
      m.push(m.options.persistentLoad(pid, m.context()));
    },
  }],
  // PERSID (text)
  [0x50, {
    name: "PERSID",
    run: (m) => {
      const pid = m.readLine();
      if (!m.options.persistentLoad) throw m.unsafe("persistent ids (PERSID) are not allowed here");
      m.push(m.options.persistentLoad(pid, m.context()));
    },
  }],
]);

/**
 * Interprets a pickle and returns the value STOP leaves on top of the stack.
 * Throws JsdError JSD_UNSAFE_PICKLE for forbidden globals/opcodes, JSD_BAD_FILE for malformed input.
 */
export function unpickle(data: Uint8Array, options: UnpickleOptions = {}): unknown {
  const m = new PickleMachine(data, options);
  while (!m.stopped) {
    if (m.pos >= data.length) throw m.bad(`the pickle ends at byte ${data.length} without a STOP opcode (truncated?)`);
    m.opAt = m.pos;
    m.op = data[m.pos++];
    const opcode = OPCODES.get(m.op);
    if (!opcode) {
      const name = UNSAFE_OPCODES[m.op];
      throw m.unsafe(name ? `opcode ${name} (${opName(m.op)}) is not allowed` : `unknown opcode ${opName(m.op)}`);
    }
    opcode.run(m);
  }
  return m.result;
}

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
import { JsdError } from "../errors.js";

/** A reference to an allowlisted global, as pushed by GLOBAL / STACK_GLOBAL. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: GlobalHandler,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** Context passed to global handlers, for error messages. */
export interface PickleCallContext {
  /** Byte offset of the REDUCE (or BUILD) opcode in the pickle. */
  offset: number;
  /** What is being read, for messages (a file path, an archive entry). */
  source: string;
}

/**
 * What an allowlisted global may do. A global without `call` may only be referenced (e.g. a
 * storage type named inside a persistent id); REDUCE on it is rejected.
 */
export interface GlobalHandler {
  call?(args: readonly unknown[], context: PickleCallContext): unknown;
}

/** A Python dict (or OrderedDict) read from a pickle. `state` holds what BUILD set on it, if anything. */
export class PickleDict extends Map<unknown, unknown> {
  state: unknown = undefined;
}

/** Marks tuples: frozen arrays. Lists are ordinary (mutable) arrays. */
export function isTuple(value: unknown): value is readonly unknown[] {
  return Array.isArray(value) && Object.isFrozen(value);
}

export interface PickleLimits {
  /** Most values on the stack (all mark levels together). */
  maxStack: number;
  /** Most nested MARKs. */
  maxMarks: number;
  /** Most memo entries. */
  maxMemo: number;
  /** Longest GLOBAL module / name, text integer, float or LONG. */
  maxTextArg: number;
  /** Largest LONG1 / LONG4 payload in bytes. */
  maxLongBytes: number;
  /** Most items in one container (list, dict, set). */
  maxContainer: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  maxStack: 1 << 20,
  maxMarks: 1 << 16,
  maxMemo: 1 << 22,
  maxTextArg: 1024,
  maxLongBytes: 64,
  maxContainer: 1 << 24,
};

export interface UnpickleOptions {
  /** Allowlisted globals, keyed by "module.name". Anything else is rejected. */
  globals?: ReadonlyMap<string, GlobalHandler>;
  /** Resolves persistent ids (PERSID / BINPERSID); without it those opcodes are rejected. */
  persistentLoad?(pid: unknown, context: PickleCallContext): unknown;
  /** Names the pickle in messages. */
  source?: string;
  limits?: Partial<PickleLimits>;
}

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

const MARK = Symbol("mark");

function opName(op: number): string {
  const ch = op >= 0x20 && op < 0x7f ? ` '${String.fromCharCode(op)}'` : "";
  return `0x${op.toString(16).padStart(2, "0")}${ch}`;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/**
 * Interprets a pickle and returns the value STOP leaves on top of the stack.
 * Throws JsdError JSD_UNSAFE_PICKLE for forbidden globals/opcodes, JSD_BAD_FILE for malformed input.
 */
export function unpickle(data: Uint8Array, options: UnpickleOptions = {}): unknown {
  const source = options.source ?? "pickle";
  const limits: PickleLimits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
  const globals = options.globals ?? new Map<string, GlobalHandler>();
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.length;

  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let opAt = 0;
  let op = 0;

  const bad = (why: string): JsdError =>
    new JsdError("JSD_BAD_FILE", `${source}: malformed pickle at byte ${opAt} (opcode ${opName(op)}): ${why}`);
  const unsafe = (why: string): JsdError => new JsdError("JSD_UNSAFE_PICKLE", `${source}: unsafe pickle at byte ${opAt}: ${why}`);

  let depth = 0; // total values on all stacks
  const need = (k: number): number => {
    if (k < 0 || pos + k > n) throw bad(`needs ${k} more bytes but the pickle ends at byte ${n} (truncated?)`);
    const at = pos;
    pos += k;
    return at;
  };
  const push = (value: unknown): void => {
    if (++depth > limits.maxStack) throw bad(`stack holds more than ${limits.maxStack} values`);
    stack.push(value);
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw bad("stack underflow");
    depth--;
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw bad("stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const previous = marks.pop();
    if (previous === undefined) throw bad("no MARK to pop to");
    stack = previous;
    depth -= items.length;
    return items;
  };
  const readLine = (): string => {
    const start = pos;
    const limit = Math.min(n, start + limits.maxTextArg + 1);
    for (let i = start; i < limit; i++) {
      if (data[i] === 0x0a) {
        pos = i + 1;
        const bytes = data.subarray(start, i);
        return latin1.decode(bytes);
      }
    }
    if (limit === n) throw bad("text argument is not terminated by a newline (truncated?)");
    throw bad(`text argument is longer than ${limits.maxTextArg} bytes`);
  };
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const value = view.getBigUint64(need(8), true);
    if (value > BigInt(n)) throw bad(`length ${value} runs past the end of the pickle (${n} bytes; truncated?)`);
    return Number(value);
  };
  const bytesOf = (length: number): Uint8Array => data.subarray(need(length), pos);
  const decodeUtf8 = (bytes: Uint8Array): string => {
    try {
      return utf8.decode(bytes);
    } catch {
      throw bad("string is not valid UTF-8");
    }
  };
  const memoPut = (key: number, value: unknown): void => {
    if (!memo.has(key) && memo.size >= limits.maxMemo) throw bad(`memo holds more than ${limits.maxMemo} values`);
    memo.set(key, value);
  };
  const memoGet = (key: number): unknown => {
    if (!memo.has(key)) throw bad(`memo has no entry ${key}`);
    return memo.get(key);
  };
  const resolveGlobal = (module: string, name: string): PickleGlobal => {
    const qualified = `${module}.${name}`;
    const handler = globals.get(qualified);
    if (!handler) throw unsafe(`global '${qualified}' is not allowed (only ${[...globals.keys()].join(", ") || "no globals"} may appear)`);
    return new PickleGlobal(module, name, handler);
  };
  const intFromText = (text: string): number | bigint | boolean => {
    if (text === "01") return true;
    if (text === "00") return false;
    const trimmed = text.endsWith("L") ? text.slice(0, -1) : text;
    if (!/^[+-]?\d+$/.test(trimmed)) throw bad(`'${text}' is not an integer`);
    const value = BigInt(trimmed);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  };
  const longFromBytes = (bytes: Uint8Array): number | bigint => {
    if (bytes.length === 0) return 0;
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
    if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(8 * bytes.length);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  };
  const checkSize = (size: number): void => {
    if (size > limits.maxContainer) throw bad(`container holds more than ${limits.maxContainer} items`);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Map)) throw bad(`SETITEM(S) on a ${describe(target)}, not a dict`);
    if (items.length % 2 !== 0) throw bad("SETITEMS with an odd number of values");
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      if (typeof key === "object" && key !== null && !isTuple(key)) throw bad(`unhashable dict key (${describe(key)})`);
      target.set(key, items[i + 1]);
    }
    checkSize(target.size);
  };
  const appendItems = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target) || Object.isFrozen(target)) throw bad(`APPEND(S) on a ${describe(target)}, not a list`);
    checkSize(target.length + items.length);
    for (const item of items) target.push(item);
  };
  const tuple = (items: unknown[]): readonly unknown[] => Object.freeze(items);
  const context = (): PickleCallContext => ({ offset: opAt, source });

  while (true) {
    if (pos >= n) throw bad(`the pickle ends at byte ${n} without a STOP opcode (truncated?)`);
    opAt = pos;
    op = data[pos++];
    switch (op) {
      case 0x80: // PROTO
        if (data[need(1)] > 5) throw bad(`unsupported protocol ${data[pos - 1]}`);
        break;
      case 0x95: // FRAME: only a hint for buffered readers
        u64();
        break;
      case 0x2e: // STOP
        if (marks.length !== 0) throw bad("STOP inside an open MARK");
        if (stack.length !== 1) throw bad(`STOP with ${stack.length} values on the stack, expected 1`);
        return stack[0];
      case 0x28: // MARK
        if (marks.length >= limits.maxMarks) throw bad(`more than ${limits.maxMarks} nested MARKs`);
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0 && marks.length > 0) popMark();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;

      // Constants and numbers.
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        push(data[need(1)]);
        break;
      case 0x4d: // BININT2
        push(view.getUint16(need(2), true));
        break;
      case 0x8a: {
        // LONG1
        const length = data[need(1)];
        if (length > limits.maxLongBytes) throw bad(`LONG1 of ${length} bytes is over the ${limits.maxLongBytes}-byte limit`);
        push(longFromBytes(bytesOf(length)));
        break;
      }
      case 0x8b: {
        // LONG4
        const length = view.getInt32(need(4), true);
        if (length < 0 || length > limits.maxLongBytes) throw bad(`LONG4 of ${length} bytes is out of range (limit ${limits.maxLongBytes})`);
        push(longFromBytes(bytesOf(length)));
        break;
      }
      case 0x49: // INT (text)
        push(intFromText(readLine()));
        break;
      case 0x4c: // LONG (text)
        push(intFromText(readLine()));
        break;
      case 0x46: {
        // FLOAT (text)
        const text = readLine();
        const value = Number(text);
        if (text.trim() === "" || (Number.isNaN(value) && !/^[+-]?nan$/i.test(text.trim()))) throw bad(`'${text}' is not a float`);
        push(value);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        push(view.getFloat64(need(8), false));
        break;

      // Strings and bytes.
      case 0x58: // BINUNICODE
        push(decodeUtf8(bytesOf(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(decodeUtf8(bytesOf(data[need(1)])));
        break;
      case 0x8d: // BINUNICODE8
        push(decodeUtf8(bytesOf(u64())));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str; decoded as latin-1 like encoding="latin1")
        const length = view.getInt32(need(4), true);
        if (length < 0) throw bad(`negative BINSTRING length ${length}`);
        push(latin1.decode(bytesOf(length)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(latin1.decode(bytesOf(data[need(1)])));
        break;
      case 0x42: // BINBYTES
        push(bytesOf(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(bytesOf(data[need(1)]).slice());
        break;
      case 0x8e: // BINBYTES8
        push(bytesOf(u64()).slice());
        break;
      case 0x96: // BYTEARRAY8
        push(bytesOf(u64()).slice());
        break;
      case 0x53: // STRING (text, quoted repr)
        push(decodeQuoted(readLine(), bad));
        break;
      case 0x56: // UNICODE (text, raw-unicode-escape)
        push(decodeRawUnicodeEscape(readLine(), bad));
        break;

      // Containers.
      case 0x7d: // EMPTY_DICT
        push(new PickleDict());
        break;
      case 0x64: {
        // DICT
        const dict = new PickleDict();
        setItems(dict, popMark());
        push(dict);
        break;
      }
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: {
        // LIST
        const items = popMark();
        checkSize(items.length);
        push(items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        push(tuple([]));
        break;
      case 0x74: {
        // TUPLE
        const items = popMark();
        checkSize(items.length);
        push(tuple(items));
        break;
      }
      case 0x85: // TUPLE1
        push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push(tuple([a, b, c]));
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const target = top();
        if (!(target instanceof Set) || Object.isFrozen(target)) throw bad(`ADDITEMS on a ${describe(target)}, not a set`);
        for (const item of items) target.add(item);
        checkSize(target.size);
        break;
      }
      case 0x91: {
        // FROZENSET
        const items = popMark();
        checkSize(items.length);
        push(Object.freeze(new Set(items)));
        break;
      }
      case 0x61: {
        // APPEND
        const item = pop();
        appendItems(top(), [item]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }

      // Memo.
      case 0x71: // BINPUT
        memoPut(data[need(1)], top());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32(), top());
        break;
      case 0x70: // PUT (text)
        memoPut(memoIndex(readLine(), bad), top());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size, top());
        break;
      case 0x68: // BINGET
        push(memoGet(data[need(1)]));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x67: // GET (text)
        push(memoGet(memoIndex(readLine(), bad)));
        break;

      // Globals, calls and persistent ids: the only places where Python would run code.
      case 0x63: {
        // GLOBAL
        const module = readLine();
        const name = readLine();
        push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") throw bad("STACK_GLOBAL needs two strings");
        push(resolveGlobal(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        if (!(callable instanceof PickleGlobal)) throw unsafe(`REDUCE calls a ${describe(callable)}, not an allowed global`);
        if (!isTuple(args)) throw bad(`REDUCE arguments for ${callable.qualifiedName} are a ${describe(args)}, not a tuple`);
        if (!callable.handler.call) throw unsafe(`global '${callable.qualifiedName}' may not be called`);
        push(callable.handler.call(args, context()));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        if (target instanceof PickleDict) {
          target.state = state;
        } else if (target !== null && typeof target === "object" && typeof (target as { pickleBuild?: unknown }).pickleBuild === "function") {
          (target as { pickleBuild(state: unknown, context: PickleCallContext): void }).pickleBuild(state, context());
        } else {
          throw unsafe(`BUILD on a ${describe(target)} is not supported`);
        }
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) throw unsafe("persistent ids (BINPERSID) are not allowed here");
        push(options.persistentLoad(pid, context()));
        break;
      }
      case 0x50: {
        // PERSID (text)
        const pid = readLine();
        if (!options.persistentLoad) throw unsafe("persistent ids (PERSID) are not allowed here");
        push(options.persistentLoad(pid, context()));
        break;
      }

      default: {
        const name = UNSAFE_OPCODES[op];
        if (name) throw unsafe(`opcode ${name} (${opName(op)}) is not allowed`);
        throw unsafe(`unknown opcode ${opName(op)}`);
      }
    }
  }
}

function memoIndex(text: string, bad: (why: string) => JsdError): number {
  if (!/^\d{1,10}$/.test(text)) throw bad(`'${text}' is not a memo index`);
  return Number(text);
}

/** A short description of a value's kind, for messages. */
export function describe(value: unknown): string {
  if (value === null) return "None";
  if (value instanceof PickleGlobal) return `global ${value.qualifiedName}`;
  if (value instanceof PickleDict) return "dict";
  if (isTuple(value)) return "tuple";
  if (Array.isArray(value)) return "list";
  if (value instanceof Uint8Array) return "bytes";
  if (value instanceof Set) return "set";
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "bigint") return "int";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "string") return "str";
  return typeof value;
}

/** Decodes protocol-0 STRING arguments: a quoted Python 2 repr with backslash escapes. */
function decodeQuoted(text: string, bad: (why: string) => JsdError): string {
  const q = text[0];
  if (text.length < 2 || (q !== "'" && q !== '"') || text[text.length - 1] !== q) throw bad("STRING argument is not quoted");
  const body = text.slice(1, -1);
  const simple: Record<string, string> = { "\\": "\\", "'": "'", '"': '"', n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b", f: "\f", v: "\v", "0": "\0" };
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch !== "\\") {
      out += ch;
      continue;
    }
    const next = body[++i];
    if (next === "x" && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      out += String.fromCharCode(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (next !== undefined && next in simple) {
      out += simple[next];
    } else {
      throw bad(`unsupported escape in STRING argument`);
    }
  }
  return out;
}

/** Decodes protocol-0 UNICODE arguments (raw-unicode-escape: \uXXXX and \UXXXXXXXX only). */
function decodeRawUnicodeEscape(text: string, bad: (why: string) => JsdError): string {
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, four: string | undefined, eight: string | undefined) => {
    const code = parseInt((four ?? eight) as string, 16);
    if (code > 0x10ffff) throw bad("UNICODE escape out of range");
    return String.fromCodePoint(code);
  });
}

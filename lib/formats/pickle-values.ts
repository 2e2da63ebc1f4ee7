// What the unpickler (pickle.ts) builds and takes: allowlisted globals, dicts, tuples, its limits
// and options, and how values are named in messages.

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

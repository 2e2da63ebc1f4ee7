// The GGUF reader's header cursor: reads the header sequentially through a window, checking every
// count and length against the bytes left in the file and the caps below before anything is
// allocated, and the metadata values it holds (lib/formats/gguf-reader.ts parses the rest).
import type { FileHandle } from "node:fs/promises";
import { JsdError } from "../errors.js";
import { GgufType, SCALAR_BYTES, type GgufScalarType, type GgufValue } from "./gguf-format.js";

/** Limits on what a header may make the reader allocate. */
export const GGUF_READER_LIMITS = {
  maxHeaderBytes: 512 << 20,
  maxStringBytes: 256 << 20,
  maxKvCount: 1 << 20,
  maxTensorCount: 1 << 20,
};

const TYPE_NAMES = new Map<number, keyof typeof GgufType>(Object.entries(GgufType).map(([k, v]) => [v, k as keyof typeof GgufType]));

export class BadGguf extends JsdError {
  constructor(path: string, why: string) {
    super("JSD_BAD_FILE", `${path} is not a valid GGUF file: ${why}`);
  }
}

/** Reads the header sequentially through a window, never past the file size or the header cap. */
export class HeaderCursor {
  pos = 0;
  #window = Buffer.alloc(0);
  #windowStart = 0;
  readonly #utf8 = new TextDecoder("utf-8", { fatal: true });

  constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    readonly fileSize: number,
  ) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  fail(why: string): never {
    throw new BadGguf(this.path, why);
  }

  async take(n: number, what: string): Promise<Buffer> {
    if (!Number.isSafeInteger(n) || n < 0) this.fail(`${what}: invalid length ${n}`);
    if (n > this.remaining) this.fail(`${what} (${n} bytes at offset ${this.pos}) runs past the end of the file (${this.fileSize} bytes; truncated?)`);
    if (this.pos + n > GGUF_READER_LIMITS.maxHeaderBytes) this.fail(`the header is larger than ${GGUF_READER_LIMITS.maxHeaderBytes} bytes`);
    const end = this.pos + n;
    if (this.pos < this.#windowStart || end > this.#windowStart + this.#window.length) {
      const size = Math.min(Math.max(n, 1 << 20), this.fileSize - this.pos);
      const window = Buffer.alloc(size);
      let got = 0;
      while (got < size) {
        const { bytesRead } = await this.handle.read(window, got, size - got, this.pos + got);
        if (bytesRead === 0) this.fail(`unexpected end of file at offset ${this.pos + got} (file changed while reading?)`);
        got += bytesRead;
      }
      this.#window = window;
      this.#windowStart = this.pos;
    }
    const start = this.pos - this.#windowStart;
    this.pos = end;
    return this.#window.subarray(start, start + n);
  }

  async u32(what: string): Promise<number> {
    return (await this.take(4, what)).readUInt32LE(0);
  }

  async i32(what: string): Promise<number> {
    return (await this.take(4, what)).readInt32LE(0);
  }

  async u64(what: string): Promise<bigint> {
    return (await this.take(8, what)).readBigUInt64LE(0);
  }

  async i64(what: string): Promise<bigint> {
    return (await this.take(8, what)).readBigInt64LE(0);
  }

  /** A u64 that must fit a safe integer and `max`. */
  async count(what: string, max: number): Promise<number> {
    const v = await this.u64(what);
    if (v > BigInt(max)) this.fail(`${what} is ${v}, more than the ${max} the rest of the file can hold`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const length = await this.count(`${what}: string length`, Math.min(this.remaining - 8, GGUF_READER_LIMITS.maxStringBytes));
    const bytes = await this.take(length, what);
    try {
      return this.#utf8.decode(bytes);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  async scalar(type: Exclude<GgufScalarType, "string">, what: string): Promise<number | bigint | boolean> {
    const b = await this.take(SCALAR_BYTES[type], what);
    switch (type) {
      case "u8": return b.readUInt8(0);
      case "i8": return b.readInt8(0);
      case "u16": return b.readUInt16LE(0);
      case "i16": return b.readInt16LE(0);
      case "u32": return b.readUInt32LE(0);
      case "i32": return b.readInt32LE(0);
      case "f32": return b.readFloatLE(0);
      case "f64": return b.readDoubleLE(0);
      case "u64": return b.readBigUInt64LE(0);
      case "i64": return b.readBigInt64LE(0);
      case "bool": {
        const v = b.readUInt8(0);
        if (v > 1) this.fail(`${what}: bool value ${v} is neither 0 nor 1`);
        return v === 1;
      }
    }
  }

  async valueType(what: string): Promise<keyof typeof GgufType> {
    const id = await this.i32(what);
    const name = TYPE_NAMES.get(id);
    if (name === undefined) this.fail(`${what}: unknown GGUF value type ${id}`);
    return name;
  }
}

export async function readValue(cur: HeaderCursor, key: string): Promise<GgufValue> {
  const type = await cur.valueType(`type of key '${key}'`);
  if (type === "string") return { type, value: await cur.string(`value of key '${key}'`) };
  if (type !== "array") {
    const value = await cur.scalar(type, `value of key '${key}'`);
    return { type, value } as GgufValue;
  }
  const itemType = await cur.valueType(`item type of key '${key}'`);
  if (itemType === "array") cur.fail(`key '${key}' is an array of arrays, which GGUF does not allow`);
  const minItemBytes = itemType === "string" ? 8 : SCALAR_BYTES[itemType];
  const n = await cur.count(`length of array '${key}'`, Math.floor((cur.remaining - 8) / minItemBytes));
  if (itemType === "u8") return { type, itemType, value: new Uint8Array(await cur.take(n, `array '${key}'`)) };
  const items: unknown[] = [];
  for (let i = 0; i < n; i++) {
    items.push(itemType === "string" ? await cur.string(`item ${i} of '${key}'`) : await cur.scalar(itemType, `item ${i} of '${key}'`));
  }
  return { type, itemType, value: items } as GgufValue;
}


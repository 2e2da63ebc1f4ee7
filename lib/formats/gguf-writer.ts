// Streaming GGUF v3 writer.
//
// File layout (all little-endian; see ggml's gguf.h):
//   "GGUF" | u32 version (3) | i64 tensor count | i64 KV count
//   KVs:          string key | i32 value type | value
//                 (arrays: i32 item type | u64 count | items; strings: u64 byte length | UTF-8 bytes, no NUL)
//   tensor infos: string name | u32 n_dims | i64 ne[n_dims] | i32 ggml type | u64 offset (relative to the data section)
//   zero padding to `general.alignment` (default 32)
//   tensor data:  each tensor's bytes, each followed by zero padding to the alignment
//                 (ggml requires offset[i] = sum of padded sizes of tensors 0..i-1, the last one padded too)
//
// The header is written first, so every tensor's name, shape, type and byte size must be known up
// front; the bytes then follow one tensor at a time, in the declared order. A SHA-256 of the data
// section (everything after the aligned header, padding included) is computed while streaming and
// patched afterwards into a 64-character placeholder string value chosen by the caller.
import { createHash, type Hash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import { JsdError } from "../errors.js";
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgufType,
  SCALAR_BYTES,
  alignUp,
  type GgufNumberType,
  type GgufScalarType,
  type GgufValue,
} from "./gguf-format.js";

// The format's facts used to live here; importers of the writer still find them.
export * from "./gguf-format.js";

export interface GgufTensorSpec {
  name: string;
  /** ggml shape, ne0 first (PyTorch's last dimension). 1 to 4 dimensions. */
  ne: number[];
  /** ggml type id (enum ggml_type). */
  ggmlType: number;
  /** Exact byte size of the tensor's data (without padding). */
  nbytes: number;
}

export interface GgufWriterOptions {
  /**
   * Key of a string KV whose value is a placeholder of 64 characters; once all tensors are
   * written, it is overwritten with the hex SHA-256 of the data section.
   */
  sha256Key?: string;
}

const INT_RANGES: Record<GgufNumberType, [number, number] | null> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
  f32: null,
  f64: null,
};

function invalid(message: string): JsdError {
  return new JsdError("JSD_INVALID_ARGUMENT", message);
}

/** Grows a byte buffer while serialising the header. */
class ByteSink {
  #buf = Buffer.alloc(1 << 16);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.#buf.copy(next, 0, 0, this.length);
    this.#buf = next;
  }

  bytes(data: Uint8Array): void {
    this.#reserve(data.length);
    this.#buf.set(data, this.length);
    this.length += data.length;
  }

  u32(v: number): void {
    this.#reserve(4);
    this.#buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }

  i32(v: number): void {
    this.#reserve(4);
    this.#buf.writeInt32LE(v, this.length);
    this.length += 4;
  }

  u64(v: number | bigint): void {
    this.#reserve(8);
    this.#buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }

  i64(v: number | bigint): void {
    this.#reserve(8);
    this.#buf.writeBigInt64LE(BigInt(v), this.length);
    this.length += 8;
  }

  string(s: string): void {
    const data = Buffer.from(s, "utf8");
    this.u64(data.length);
    this.bytes(data);
  }

  scalar(type: Exclude<GgufScalarType, "string">, v: number | bigint | boolean, key: string): void {
    this.#reserve(8);
    const at = this.length;
    const b = this.#buf;
    if (type === "bool") {
      if (typeof v !== "boolean") throw invalid(`GGUF key '${key}': bool value expected`);
      b.writeUInt8(v ? 1 : 0, at);
    } else if (type === "u64" || type === "i64") {
      if (typeof v !== "bigint") throw invalid(`GGUF key '${key}': bigint value expected for ${type}`);
      if (type === "u64") b.writeBigUInt64LE(v, at);
      else b.writeBigInt64LE(v, at);
    } else {
      if (typeof v !== "number") {
        throw invalid(`GGUF key '${key}': number value expected for ${type}`);
      }
      const range = INT_RANGES[type];
      if (range && (!Number.isInteger(v) || v < range[0] || v > range[1])) {
        throw invalid(`GGUF key '${key}': ${v} is not a valid ${type}`);
      }
      switch (type) {
        case "u8": b.writeUInt8(v, at); break;
        case "i8": b.writeInt8(v, at); break;
        case "u16": b.writeUInt16LE(v, at); break;
        case "i16": b.writeInt16LE(v, at); break;
        case "u32": b.writeUInt32LE(v, at); break;
        case "i32": b.writeInt32LE(v, at); break;
        case "f32": b.writeFloatLE(v, at); break;
        case "f64": b.writeDoubleLE(v, at); break;
      }
    }
    this.length += SCALAR_BYTES[type];
  }

  zeros(n: number): void {
    this.#reserve(n);
    this.#buf.fill(0, this.length, this.length + n);
    this.length += n;
  }

  result(): Buffer {
    return this.#buf.subarray(0, this.length);
  }
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Serialises the header. Returns the bytes (padded to the alignment) and where the sha256 placeholder's characters are. */
export function encodeGgufHeader(
  metadata: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensorSpec[],
  options: GgufWriterOptions = {},
): { header: Buffer; alignment: number; sha256At: number | undefined; offsets: number[]; dataSize: number } {
  const keys = new Set<string>();
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (const [key, value] of metadata) {
    if (!key) throw invalid("GGUF keys must not be empty");
    if (keys.has(key)) throw invalid(`duplicate GGUF key '${key}'`);
    keys.add(key);
    if (key === GGUF_KEY_ALIGNMENT) {
      if (value.type !== "u32" || !isPowerOfTwo(value.value)) throw invalid(`${GGUF_KEY_ALIGNMENT} must be a u32 power of two`);
      alignment = value.value;
    }
  }
  const names = new Set<string>();
  const offsets: number[] = [];
  let dataSize = 0;
  for (const t of tensors) {
    if (!t.name) throw invalid("tensor names must not be empty");
    if (Buffer.byteLength(t.name, "utf8") >= GGML_MAX_NAME) throw invalid(`tensor name '${t.name}' is ${Buffer.byteLength(t.name)} bytes; ggml allows at most ${GGML_MAX_NAME - 1}`);
    if (names.has(t.name)) throw invalid(`duplicate tensor name '${t.name}'`);
    names.add(t.name);
    if (t.ne.length < 1 || t.ne.length > GGML_MAX_DIMS || !t.ne.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw invalid(`tensor '${t.name}' has an invalid shape ${JSON.stringify(t.ne)}`);
    }
    if (!Number.isInteger(t.ggmlType) || t.ggmlType < 0) throw invalid(`tensor '${t.name}' has an invalid ggml type ${t.ggmlType}`);
    if (!Number.isSafeInteger(t.nbytes) || t.nbytes < 0) throw invalid(`tensor '${t.name}' has an invalid byte size ${t.nbytes}`);
    offsets.push(dataSize);
    dataSize += alignUp(t.nbytes, alignment);
  }
  if (options.sha256Key !== undefined) {
    const entry = metadata.find(([k]) => k === options.sha256Key);
    if (!entry || entry[1].type !== "string" || Buffer.byteLength(entry[1].value) !== 64) {
      throw invalid(`the sha256 key '${options.sha256Key}' must be a string KV holding a 64-character placeholder`);
    }
  }

  const out = new ByteSink();
  out.bytes(Buffer.from(GGUF_MAGIC, "latin1"));
  out.u32(GGUF_VERSION);
  out.i64(tensors.length);
  out.i64(metadata.length);
  let sha256At: number | undefined;
  for (const [key, value] of metadata) {
    out.string(key);
    if (value.type === "array") {
      out.i32(GgufType.array);
      out.i32(GgufType[value.itemType]);
      out.u64(value.value.length);
      if (value.itemType === "u8") {
        out.bytes(value.value);
      } else if (value.itemType === "string") {
        for (const s of value.value) out.string(s);
      } else {
        const itemType = value.itemType;
        for (const item of value.value as Iterable<number | bigint | boolean>) out.scalar(itemType, item, key);
      }
    } else {
      out.i32(GgufType[value.type]);
      if (value.type === "string") {
        if (key === options.sha256Key) sha256At = out.length + 8;
        out.string(value.value);
      } else {
        out.scalar(value.type, value.value, key);
      }
    }
  }
  tensors.forEach((t, i) => {
    out.string(t.name);
    out.u32(t.ne.length);
    for (const d of t.ne) out.i64(d);
    out.i32(t.ggmlType);
    out.u64(offsets[i]);
  });
  out.zeros(alignUp(out.length, alignment) - out.length);
  return { header: out.result(), alignment, sha256At, offsets, dataSize };
}

async function writeAll(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new JsdError("JSD_INTERNAL", "write returned no progress");
    done += bytesWritten;
  }
}

export interface GgufWriteResult {
  /** Total file size in bytes. */
  size: number;
  /** Hex SHA-256 of the data section. */
  dataSha256: string;
  dataOffset: number;
}

/**
 * Writes one GGUF file: `create()` writes the header, `writeTensor()` appends the tensors' bytes in
 * the declared order, `finish()` patches the checksum, flushes and closes. `abort()` just closes
 * (the caller removes the file).
 */
export class GgufWriter {
  readonly path: string;
  readonly dataOffset: number;
  readonly alignment: number;
  readonly #handle: FileHandle;
  readonly #tensors: readonly GgufTensorSpec[];
  readonly #sha256At: number | undefined;
  readonly #hash: Hash = createHash("sha256");
  readonly #padding: Uint8Array;
  #next = 0;
  /** Bytes of the current tensor written so far. */
  #partial = 0;
  #position: number;
  #closed = false;

  private constructor(path: string, handle: FileHandle, tensors: readonly GgufTensorSpec[], dataOffset: number, alignment: number, sha256At: number | undefined) {
    this.path = path;
    this.#handle = handle;
    this.#tensors = tensors;
    this.dataOffset = dataOffset;
    this.alignment = alignment;
    this.#sha256At = sha256At;
    this.#position = dataOffset;
    this.#padding = new Uint8Array(alignment);
  }

  /**
   * Creates `path` (it must not exist: opened with O_EXCL) and writes the header.
   * `metadata` is written in the given order.
   */
  static async create(
    path: string,
    metadata: ReadonlyArray<readonly [string, GgufValue]>,
    tensors: readonly GgufTensorSpec[],
    options: GgufWriterOptions = {},
  ): Promise<GgufWriter> {
    const { header, alignment, sha256At } = encodeGgufHeader(metadata, tensors, options);
    let handle: FileHandle;
    try {
      handle = await open(path, "wx");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new JsdError(code === "EEXIST" ? "JSD_EXISTS" : "JSD_INVALID_ARGUMENT", `cannot create ${path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      await writeAll(handle, header, 0);
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
    return new GgufWriter(path, handle, [...tensors], header.length, alignment, sha256At);
  }

  /** Bytes written so far (header included). */
  get bytesWritten(): number {
    return this.#position;
  }

  /** Index of the next tensor to write. */
  get nextIndex(): number {
    return this.#next;
  }

  /** Appends the next tensor's bytes. `data.length` must equal the declared `nbytes`. */
  async writeTensor(data: Uint8Array): Promise<void> {
    const spec = this.#tensors[this.#next];
    if (spec && this.#partial === 0 && data.length !== spec.nbytes) {
      throw invalid(`tensor '${spec.name}' was declared with ${spec.nbytes} bytes but ${data.length} were given`);
    }
    await this.writeTensorPart(data);
  }

  /**
   * Appends part of the next tensor's bytes; once its declared `nbytes` have been given, the
   * padding follows and the next `writeTensorPart` starts the next tensor. Calls must not overlap.
   */
  async writeTensorPart(data: Uint8Array): Promise<void> {
    if (this.#closed) throw new JsdError("JSD_CLOSED", `${this.path} is already closed`);
    const spec = this.#tensors[this.#next];
    if (!spec) throw invalid(`all ${this.#tensors.length} tensors have already been written`);
    if (this.#partial + data.length > spec.nbytes) {
      throw invalid(`tensor '${spec.name}' was declared with ${spec.nbytes} bytes but ${this.#partial + data.length} were given`);
    }
    const complete = this.#partial + data.length === spec.nbytes;
    this.#partial = complete ? 0 : this.#partial + data.length;
    if (complete) this.#next++;
    this.#hash.update(data);
    const at = this.#position;
    this.#position += data.length;
    let pad = 0;
    if (complete) {
      pad = alignUp(this.#position, this.alignment) - this.#position;
      if (pad > 0) this.#hash.update(this.#padding.subarray(0, pad));
      this.#position += pad;
    }
    await writeAll(this.#handle, data, at);
    if (pad > 0) await writeAll(this.#handle, this.#padding.subarray(0, pad), at + data.length);
  }

  /** Checks that every tensor was written, patches the checksum, flushes to disk and closes. */
  async finish(): Promise<GgufWriteResult> {
    if (this.#closed) throw new JsdError("JSD_CLOSED", `${this.path} is already closed`);
    if (this.#next !== this.#tensors.length) {
      throw invalid(`only ${this.#next} of ${this.#tensors.length} tensors were written`);
    }
    const dataSha256 = this.#hash.digest("hex");
    if (this.#sha256At !== undefined) await writeAll(this.#handle, Buffer.from(dataSha256, "latin1"), this.#sha256At);
    await this.#handle.sync();
    this.#closed = true;
    await this.#handle.close();
    return { size: this.#position, dataSha256, dataOffset: this.dataOffset };
  }

  /** Closes the file without finishing it. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#handle.close().catch(() => {});
  }
}

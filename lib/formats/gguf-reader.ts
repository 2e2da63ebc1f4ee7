// Defensive GGUF reader: parses the header (KVs, tensor infos) of a GGUF v2/v3 file without trusting
// any count or length in it. Every length is checked against the bytes left in the file (and a cap)
// before anything is allocated; tensor shapes, types and offsets are checked the way ggml's own
// loader checks them (offsets must follow each other exactly, with alignment padding), and every
// tensor must lie inside the file. Tensor bytes are read on demand, one tensor at a time.
import { createHash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import { JsdError } from "../errors.js";
import {
  GGML_TYPES,
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  alignUp,
  type GgufValue,
} from "./gguf-format.js";
import { BadGguf, GGUF_READER_LIMITS, HeaderCursor, readValue } from "./gguf-cursor.js";

// ggml's storage types used to live here; importers of the reader still find them.
export { GGML_TYPES, ggmlTypeName } from "./gguf-format.js";
export { GGUF_READER_LIMITS } from "./gguf-cursor.js";

export interface GgufTensorInfo {
  name: string;
  /** ggml shape, ne0 first. */
  ne: number[];
  ggmlType: number;
  typeName: string;
  nelements: number;
  nbytes: number;
  /** Offset relative to the start of the data section. */
  offset: number;
  /** Absolute offset in the file. */
  fileOffset: number;
}

/** The shortest decimal that reads back as the same float32 (1e-5 rather than 0.000009999999747378752). */
export function shortestFloat32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** Human-readable form of a value (bytes summarised). For `jsd info`. */
export function describeGgufValue(value: GgufValue): unknown {
  if (value.type === "array" && value.itemType === "u8") return `<${value.value.length} bytes>`;
  if (value.type === "f32") return shortestFloat32(value.value);
  if (value.type === "array" && value.itemType === "f32") return value.value.map(shortestFloat32);
  if (value.type === "u64" || value.type === "i64") return value.value.toString();
  if (value.type === "array" && (value.itemType === "u64" || value.itemType === "i64")) return value.value.map(String);
  return value.value;
}

export class GgufFile {
  readonly path: string;
  readonly version: number;
  readonly fileSize: number;
  readonly alignment: number;
  /** Absolute offset of the (aligned) data section. */
  readonly dataOffset: number;
  /** Size of the data section as ggml computes it (sum of the padded tensor sizes). */
  readonly dataSize: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly #byName: Map<string, GgufTensorInfo>;
  readonly #handle: FileHandle;
  #closed = false;

  private constructor(init: {
    path: string;
    handle: FileHandle;
    version: number;
    fileSize: number;
    alignment: number;
    dataOffset: number;
    dataSize: number;
    metadata: Map<string, GgufValue>;
    tensors: GgufTensorInfo[];
  }) {
    this.path = init.path;
    this.#handle = init.handle;
    this.version = init.version;
    this.fileSize = init.fileSize;
    this.alignment = init.alignment;
    this.dataOffset = init.dataOffset;
    this.dataSize = init.dataSize;
    this.metadata = init.metadata;
    this.tensors = init.tensors;
    this.#byName = new Map(init.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<GgufFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new JsdError(code === "ENOENT" ? "JSD_NOT_FOUND" : "JSD_BAD_FILE", `cannot open ${path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new BadGguf(path, "not a regular file");
      return await GgufFile.#parse(path, handle, info.size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  static async #parse(path: string, handle: FileHandle, fileSize: number): Promise<GgufFile> {
    const cur: HeaderCursor = new HeaderCursor(handle, path, fileSize);
    if (fileSize < 4) cur.fail(`the file is ${fileSize} bytes long`);
    const magic = (await cur.take(4, "magic")).toString("latin1");
    if (magic !== GGUF_MAGIC) cur.fail(`bad magic ${JSON.stringify(magic)} (expected "GGUF")`);
    const version = await cur.u32("version");
    if (version !== 2 && version !== GGUF_VERSION) cur.fail(`unsupported GGUF version ${version} (expected 2 or 3)`);
    const nTensors = await cur.i64("tensor count");
    const nKv = await cur.i64("KV count");
    // A tensor info takes at least 8 (name length) + 1 + 4 (n_dims) + 4 (type) + 8 (offset) bytes, a KV at least 8 + 1 + 4 + 1.
    if (nTensors < 0n || nTensors > BigInt(Math.min(GGUF_READER_LIMITS.maxTensorCount, Math.floor(cur.remaining / 25)))) {
      cur.fail(`tensor count ${nTensors} is impossible for a file of ${fileSize} bytes`);
    }
    if (nKv < 0n || nKv > BigInt(Math.min(GGUF_READER_LIMITS.maxKvCount, Math.floor(cur.remaining / 14)))) {
      cur.fail(`KV count ${nKv} is impossible for a file of ${fileSize} bytes`);
    }

    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < Number(nKv); i++) {
      const key = await cur.string(`key ${i}`);
      if (key.length === 0) cur.fail(`key ${i} is empty`);
      if (metadata.has(key)) cur.fail(`duplicate key '${key}'`);
      metadata.set(key, await readValue(cur, key));
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const alignmentKv = metadata.get(GGUF_KEY_ALIGNMENT);
    if (alignmentKv) {
      if (alignmentKv.type !== "u32") cur.fail(`${GGUF_KEY_ALIGNMENT} must be u32, not ${alignmentKv.type}`);
      alignment = alignmentKv.value;
      if (alignment === 0 || (alignment & (alignment - 1)) !== 0) cur.fail(`${GGUF_KEY_ALIGNMENT} ${alignment} is not a power of two`);
    }

    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    let expectedOffset = 0;
    for (let i = 0; i < Number(nTensors); i++) {
      const name = await cur.string(`name of tensor ${i}`);
      if (Buffer.byteLength(name) >= GGML_MAX_NAME) cur.fail(`tensor name '${name.slice(0, 80)}' is longer than ${GGML_MAX_NAME - 1} bytes`);
      if (names.has(name)) cur.fail(`duplicate tensor name '${name}'`);
      names.add(name);
      const nDims = await cur.u32(`n_dims of '${name}'`);
      if (nDims > GGML_MAX_DIMS) cur.fail(`tensor '${name}' has ${nDims} dimensions (at most ${GGML_MAX_DIMS})`);
      const ne: number[] = [];
      let nelements = 1;
      for (let d = 0; d < nDims; d++) {
        const n = await cur.i64(`ne[${d}] of '${name}'`);
        if (n < 0n) cur.fail(`tensor '${name}' has a negative dimension ${n}`);
        if (n > BigInt(Number.MAX_SAFE_INTEGER)) cur.fail(`tensor '${name}' dimension ${n} is too large`);
        ne.push(Number(n));
        nelements *= Number(n);
        if (!Number.isSafeInteger(nelements)) cur.fail(`tensor '${name}' has too many elements`);
      }
      if (ne.length === 0) ne.push(1);
      const ggmlType = await cur.i32(`type of '${name}'`);
      const traits = GGML_TYPES.get(ggmlType);
      if (!traits) cur.fail(`tensor '${name}' has an unknown or unsupported ggml type ${ggmlType}`);
      if (ne[0] % traits.blockSize !== 0) {
        cur.fail(`tensor '${name}' (${traits.name}) has rows of ${ne[0]} values, not a multiple of the block size ${traits.blockSize}`);
      }
      const nbytes = (nelements / traits.blockSize) * traits.typeSize;
      if (!Number.isSafeInteger(nbytes) || nbytes > fileSize) cur.fail(`tensor '${name}' needs ${nbytes} bytes, more than the whole file (${fileSize})`);
      const offset = await cur.u64(`offset of '${name}'`);
      if (offset !== BigInt(expectedOffset)) {
        cur.fail(`tensor '${name}' has data offset ${offset}, expected ${expectedOffset} (tensors must follow each other, each padded to ${alignment})`);
      }
      tensors.push({ name, ne, ggmlType, typeName: traits.name, nelements, nbytes, offset: expectedOffset, fileOffset: 0 });
      expectedOffset += alignUp(nbytes, alignment);
      if (expectedOffset > fileSize) cur.fail(`tensor data would end past the end of the file (${fileSize} bytes; truncated?)`);
    }

    const dataOffset = tensors.length > 0 ? alignUp(cur.pos, alignment) : cur.pos;
    const dataSize = expectedOffset;
    if (dataOffset > fileSize) cur.fail(`the header's alignment padding runs past the end of the file`);
    for (const t of tensors) {
      t.fileOffset = dataOffset + t.offset;
      if (t.fileOffset + t.nbytes > fileSize) {
        cur.fail(`tensor '${t.name}' ends at byte ${t.fileOffset + t.nbytes}, past the end of the file (${fileSize} bytes; truncated?)`);
      }
    }
    if (dataOffset + dataSize > fileSize) {
      cur.fail(`the data section needs ${dataSize} bytes from offset ${dataOffset} but the file has ${fileSize} bytes (truncated?)`);
    }
    return new GgufFile({ path, handle, version, fileSize, alignment, dataOffset, dataSize, metadata, tensors });
  }

  tensor(name: string): GgufTensorInfo | undefined {
    return this.#byName.get(name);
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  #get<T extends GgufValue["type"]>(key: string, type: T): Extract<GgufValue, { type: T }> {
    const v = this.metadata.get(key);
    if (!v) throw new JsdError("JSD_BAD_MODEL", `${this.path}: metadata key '${key}' is missing`);
    if (v.type !== type) throw new JsdError("JSD_BAD_MODEL", `${this.path}: metadata key '${key}' is ${v.type}, expected ${type}`);
    return v as Extract<GgufValue, { type: T }>;
  }

  getString(key: string): string {
    return this.#get(key, "string").value;
  }

  getNumber(key: string): number {
    const v = this.metadata.get(key);
    if (v && v.type !== "array" && typeof v.value === "number") return v.value;
    if (v && (v.type === "u64" || v.type === "i64")) return Number(v.value);
    throw new JsdError("JSD_BAD_MODEL", `${this.path}: metadata key '${key}' is ${v ? `a ${v.type}` : "missing"}, expected a number`);
  }

  getBool(key: string): boolean {
    return this.#get(key, "bool").value;
  }

  getBytes(key: string): Uint8Array {
    const v = this.#get(key, "array");
    if (v.itemType !== "u8") throw new JsdError("JSD_BAD_MODEL", `${this.path}: metadata key '${key}' is an array of ${v.itemType}, expected u8`);
    return v.value;
  }

  getArray(key: string): unknown[] {
    const v = this.#get(key, "array");
    return Array.from(v.value as ArrayLike<unknown>);
  }

  /** Reads one tensor's bytes. */
  async readTensor(name: string): Promise<Uint8Array> {
    if (this.#closed) throw new JsdError("JSD_CLOSED", `${this.path} is closed`);
    const info = this.#byName.get(name);
    if (!info) throw new JsdError("JSD_INVALID_ARGUMENT", `${this.path} has no tensor '${name}'`);
    const data = new Uint8Array(info.nbytes);
    let got = 0;
    while (got < data.length) {
      const { bytesRead } = await this.#handle.read(data, got, data.length - got, info.fileOffset + got);
      if (bytesRead === 0) throw new BadGguf(this.path, `tensor '${name}' is cut short (file changed while reading?)`);
      got += bytesRead;
    }
    return data;
  }

  /** Hex SHA-256 of the data section (`dataSize` bytes from `dataOffset`), streamed. */
  async computeDataSha256(): Promise<string> {
    if (this.#closed) throw new JsdError("JSD_CLOSED", `${this.path} is closed`);
    const hash = createHash("sha256");
    const chunk = Buffer.alloc(8 << 20);
    let pos = this.dataOffset;
    const end = this.dataOffset + this.dataSize;
    while (pos < end) {
      const { bytesRead } = await this.#handle.read(chunk, 0, Math.min(chunk.length, end - pos), pos);
      if (bytesRead === 0) throw new BadGguf(this.path, "the data section is cut short");
      hash.update(chunk.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return hash.digest("hex");
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#handle.close();
  }
}

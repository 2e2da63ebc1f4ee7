// safetensors reader: an 8-byte little-endian header length, a JSON header, then raw
// little-endian tensor data. The header is checked against the file before any tensor is
// read (bounds, dtypes, shapes, overlapping or out-of-range offsets), and tensors are read
// one at a time so that a multi-GB checkpoint never has to fit in memory.
import type { FileHandle } from "node:fs/promises";
import { JsdError } from "../errors.js";
import { openForReading } from "./open-file.js";

export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

/** A tensor as read from a checkpoint: raw little-endian bytes plus dtype and shape. */
export interface RawTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

// Headers of real checkpoints are well under 1 MB; this bounds what a hostile length can make us allocate.
const MAX_HEADER_BYTES = 100 << 20;

function bad(path: string, why: string): JsdError {
  return new JsdError("JSD_BAD_FILE", `${path} is not a valid safetensors file: ${why}`);
}

export function parseSafetensorsHeader(path: string, header: Uint8Array, fileSize: number): {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
} {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(header));
  } catch (error) {
    throw bad(path, `header is not UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad(path, "header is not a JSON object");
  const dataStart = 8 + header.length;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad(path, "__metadata__ is not an object");
      metadata = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof info !== "object" || info === null) throw bad(path, `entry '${name}' is not an object`);
    const dtype = info.dtype;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) throw bad(path, `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)}`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(path, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw bad(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const numel = shape.reduce((a: number, b: number) => a * b, 1);
    const bytes = numel * DTYPE_BYTES[dtype as SafetensorsDtype];
    if (offsets[1] - offsets[0] !== bytes) {
      throw bad(path, `tensor '${name}' (${dtype} ${JSON.stringify(shape)}) needs ${bytes} bytes but its offsets span ${offsets[1] - offsets[0]}`);
    }
    const begin = dataStart + offsets[0];
    const end = dataStart + offsets[1];
    if (end > fileSize) throw bad(path, `tensor '${name}' ends at byte ${end}, past the end of the file (${fileSize} bytes; truncated?)`);
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) throw bad(path, `tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap`);
  }
  return { entries, metadata };
}

export class SafetensorsFile {
  readonly path: string;
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #handle: FileHandle;

  private constructor(path: string, handle: FileHandle, entries: SafetensorsEntry[], metadata: Record<string, string>) {
    this.path = path;
    this.#handle = handle;
    this.entries = new Map(entries.map((e) => [e.name, e]));
    this.metadata = metadata;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await openForReading(path);
    try {
      const { size } = await handle.stat();
      if (size < 8) throw bad(path, `the file is ${size} bytes, shorter than the 8-byte header length`);
      const lengthBytes = Buffer.alloc(8);
      await handle.read(lengthBytes, 0, 8, 0);
      const headerLength = lengthBytes.readBigUInt64LE(0);
      if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
        throw bad(path, `header length ${headerLength} exceeds the file size (${size} bytes) or the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const header = Buffer.alloc(Number(headerLength));
      await handle.read(header, 0, header.length, 8);
      const { entries, metadata } = parseSafetensorsHeader(path, header, size);
      return new SafetensorsFile(path, handle, entries, metadata);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  async read(name: string): Promise<RawTensor> {
    const entry = this.entries.get(name);
    if (!entry) throw new JsdError("JSD_BAD_FILE", `${this.path} has no tensor '${name}'`);
    const data = new Uint8Array(entry.end - entry.begin);
    const { bytesRead } = await this.#handle.read(data, 0, data.length, entry.begin);
    if (bytesRead !== data.length) throw bad(this.path, `tensor '${name}' is cut short (file changed while reading?)`);
    return { name, dtype: entry.dtype, shape: entry.shape, data };
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }
}

/** Float32 values of a raw F32 tensor (copied so the result is aligned). */
export function toFloat32(tensor: RawTensor): Float32Array {
  if (tensor.dtype !== "F32") throw new JsdError("JSD_BAD_FILE", `tensor '${tensor.name}' is ${tensor.dtype}, not F32`);
  const out = new Float32Array(tensor.data.length / 4);
  new Uint8Array(out.buffer).set(tensor.data);
  return out;
}

/** Int32 values of a raw I32 tensor. */
export function toInt32(tensor: RawTensor): Int32Array {
  if (tensor.dtype !== "I32") throw new JsdError("JSD_BAD_FILE", `tensor '${tensor.name}' is ${tensor.dtype}, not I32`);
  const out = new Int32Array(tensor.data.length / 4);
  new Uint8Array(out.buffer).set(tensor.data);
  return out;
}

/** Reads a whole (small) safetensors file: every tensor plus the metadata. For test fixtures and case files. */
export async function readSafetensors(path: string): Promise<{ tensors: Map<string, RawTensor>; metadata: Record<string, string> }> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, RawTensor>();
    for (const name of file.names()) tensors.set(name, await file.read(name));
    return { tensors, metadata: { ...file.metadata } };
  } finally {
    await file.close();
  }
}

// Tensor sources for the converter. Safetensors files are read here directly into a few reused
// buffers: on Linux, filling freshly allocated memory costs a page fault per 4 KiB, which made
// reading a 4 GB checkpoint into new buffers ~30x slower than reading into reused ones.
// Other formats (PyTorch .bin) go through the generic CheckpointReader (a new buffer per tensor).
// Either way the converter asks for byte ranges (chunks of whole rows), so that its own buffers
// stay small whatever the tensor size.
import { open, type FileHandle } from "node:fs/promises";
import { extname } from "node:path";
import { JsdError } from "../errors.js";
import { openCheckpoint, type CheckpointReader, type TensorInfo } from "../formats/checkpoint.js";
import { DTYPE_BYTES, SafetensorsFile } from "../formats/safetensors.js";

/** Grow-only byte buffers, one per slot. */
export class BufferPool {
  readonly #slots: ArrayBuffer[];
  constructor(slots: number) {
    this.#slots = Array.from({ length: slots }, () => new ArrayBuffer(0));
  }

  /** `bytes` bytes of the slot's buffer (valid until the slot is asked for again). */
  get(slot: number, bytes: number): Uint8Array {
    const i = slot % this.#slots.length;
    if (this.#slots[i].byteLength < bytes) this.#slots[i] = new ArrayBuffer(bytes);
    return new Uint8Array(this.#slots[i], 0, bytes);
  }
}

export interface TensorSource {
  readonly path: string;
  names(): string[];
  info(name: string): TensorInfo;
  /**
   * Bytes [begin, end) of a tensor's data. Safetensors sources read them into `pool`'s `slot`
   * (valid until that slot is reused); others read the whole tensor once and return slices of it.
   */
  readBytes(name: string, begin: number, end: number, pool: BufferPool, slot: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

class PooledSafetensors implements TensorSource {
  constructor(
    private readonly file: SafetensorsFile,
    private readonly handle: FileHandle,
  ) {}

  get path(): string {
    return this.file.path;
  }

  names(): string[] {
    return this.file.names();
  }

  #entry(name: string) {
    const e = this.file.entries.get(name);
    if (!e) throw new JsdError("JSD_BAD_FILE", `${this.file.path} has no tensor '${name}'`);
    return e;
  }

  info(name: string): TensorInfo {
    const e = this.#entry(name);
    return { dtype: e.dtype, shape: e.shape };
  }

  async readBytes(name: string, begin: number, end: number, pool: BufferPool, slot: number): Promise<Uint8Array> {
    const e = this.#entry(name);
    if (begin < 0 || end < begin || e.begin + end > e.end) throw new JsdError("JSD_INTERNAL", `bad range [${begin}, ${end}) of tensor '${name}'`);
    const data = pool.get(slot, end - begin);
    let got = 0;
    while (got < data.length) {
      const { bytesRead } = await this.handle.read(data, got, data.length - got, e.begin + begin + got);
      if (bytesRead === 0) throw new JsdError("JSD_BAD_FILE", `${this.file.path}: tensor '${name}' is cut short (file changed while reading?)`);
      got += bytesRead;
    }
    return data;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {});
    await this.file.close();
  }
}

class GenericSource implements TensorSource {
  #cached: { name: string; data: Promise<Uint8Array> } | undefined;
  constructor(private readonly reader: CheckpointReader) {}
  get path(): string {
    return this.reader.path;
  }
  names(): string[] {
    return this.reader.names();
  }
  info(name: string): TensorInfo {
    return this.reader.info(name);
  }
  async #whole(name: string): Promise<Uint8Array> {
    const info = this.reader.info(name);
    const raw = await this.reader.read(name);
    const bytes = info.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[info.dtype];
    if (raw.dtype !== info.dtype || raw.data.length !== bytes) {
      throw new JsdError("JSD_BAD_FILE", `${this.reader.path}: tensor '${name}' read back as ${raw.dtype} with ${raw.data.length} bytes, not as its header says`);
    }
    return raw.data;
  }
  async readBytes(name: string, begin: number, end: number): Promise<Uint8Array> {
    if (this.#cached?.name !== name) {
      const data = this.#whole(name);
      data.catch(() => {});
      this.#cached = { name, data };
    }
    const data = await this.#cached.data;
    if (begin < 0 || end < begin || end > data.length) throw new JsdError("JSD_INTERNAL", `bad range [${begin}, ${end}) of tensor '${name}'`);
    return data.subarray(begin, end);
  }
  close(): Promise<void> {
    this.#cached = undefined;
    return this.reader.close();
  }
}
export async function openTensorSource(path: string): Promise<TensorSource> {
  if (extname(path).toLowerCase() !== ".safetensors") return new GenericSource(await openCheckpoint(path));
  const file = await SafetensorsFile.open(path); // validates the header against the file
  try {
    return new PooledSafetensors(file, await open(path, "r"));
  } catch (error) {
    await file.close();
    throw new JsdError("JSD_BAD_FILE", `cannot open ${path}: ${(error as Error).message}`, { cause: error });
  }
}

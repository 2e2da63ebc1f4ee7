// A minimal, defensive ZIP reader for PyTorch's checkpoint archives (torch.save since 1.6).
//
// torch.save writes every entry STORED (uncompressed), 64-byte aligned, with a ZIP64 end of
// central directory. This reader therefore only ever reads stored entries, in place, by offset:
// nothing is inflated and nothing is extracted. Every offset and length read from the file is
// checked against the file size (and against the central directory's own bounds) before use,
// so a truncated or hostile archive produces a JSD_BAD_FILE error rather than a wild read or a
// huge allocation.
import type { FileHandle } from "node:fs/promises";
import { JsdError } from "../errors.js";
import { openForReading } from "./open-file.js";

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_MIN_SIZE = 56;
const CENTRAL_HEADER_SIZE = 46;
const LOCAL_HEADER_SIZE = 30;
const MAX_COMMENT = 0xffff;

/** Limits on what a central directory may make us allocate. Real checkpoints are far below them. */
export const ZIP_LIMITS = {
  maxEntries: 1_000_000,
  maxCentralDirectoryBytes: 256 << 20,
};

export const ZIP_METHOD_NAMES: Record<number, string> = {
  0: "stored",
  1: "shrink",
  6: "implode",
  8: "deflate",
  9: "deflate64",
  12: "bzip2",
  14: "lzma",
  93: "zstd",
  95: "xz",
  98: "ppmd",
};

export interface ZipEntry {
  readonly name: string;
  /** Compression method (0 = stored). */
  readonly method: number;
  /** General purpose bit flags. */
  readonly flags: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  /** Offset of the entry's local header in the file. */
  readonly localHeaderOffset: number;
}

export function zipError(path: string, why: string): JsdError {
  return new JsdError("JSD_BAD_FILE", `${path} is not a valid zip archive: ${why}`);
}

/** Reads a little-endian 64-bit field, rejecting values that do not fit a JS safe integer. */
function u64(path: string, buf: Buffer, at: number, what: string): number {
  const value = buf.readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw zipError(path, `${what} ${value} is out of range`);
  return Number(value);
}

export class ZipReader {
  readonly path: string;
  readonly size: number;
  readonly entries: ReadonlyMap<string, ZipEntry>;
  /** Start of the central directory: no entry's data may extend past it. */
  readonly centralDirectoryOffset: number;
  readonly #handle: FileHandle;
  readonly #dataOffsets = new Map<string, number>();
  #closed = false;

  private constructor(path: string, handle: FileHandle, size: number, entries: ZipEntry[], cdOffset: number) {
    this.path = path;
    this.#handle = handle;
    this.size = size;
    this.entries = new Map(entries.map((e) => [e.name, e]));
    this.centralDirectoryOffset = cdOffset;
  }

  /** Opens a zip archive and reads its central directory. The caller owns the reader and must close() it. */
  static async open(path: string): Promise<ZipReader> {
    const handle = await openForReading(path);
    try {
      const { size } = await handle.stat();
      const { entries, cdOffset } = await readCentralDirectory(path, handle, size);
      return new ZipReader(path, handle, size, entries, cdOffset);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Absolute offset of a stored entry's data, after checking its local header against the central directory. */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const cached = this.#dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    this.#checkOpen();
    const where = `entry '${entry.name}'`;
    if (entry.flags & 0x1) throw zipError(this.path, `${where} is encrypted`);
    if (entry.method !== 0) {
      const method = ZIP_METHOD_NAMES[entry.method] ?? `method ${entry.method}`;
      throw zipError(this.path, `${where} is compressed (${method}); only stored (uncompressed) entries are supported, as torch.save writes them`);
    }
    if (entry.compressedSize !== entry.size) {
      throw zipError(this.path, `${where} is stored but its compressed size (${entry.compressedSize}) differs from its size (${entry.size})`);
    }
    const at = entry.localHeaderOffset;
    if (at + LOCAL_HEADER_SIZE > this.centralDirectoryOffset) {
      throw zipError(this.path, `${where} has its local header at byte ${at}, past the data area (which ends at byte ${this.centralDirectoryOffset}; file size ${this.size})`);
    }
    const header = Buffer.alloc(LOCAL_HEADER_SIZE);
    await this.#readExactly(header, at, `the local header of ${where}`);
    if (header.readUInt32LE(0) !== SIG_LOCAL) throw zipError(this.path, `${where} has no local header signature at byte ${at}`);
    const nameLength = header.readUInt16LE(26);
    const extraLength = header.readUInt16LE(28);
    const start = at + LOCAL_HEADER_SIZE + nameLength + extraLength;
    const end = start + entry.compressedSize;
    if (end > this.centralDirectoryOffset) {
      throw zipError(this.path, `${where} spans bytes ${start}..${end}, past the data area (which ends at byte ${this.centralDirectoryOffset}; file size ${this.size}; truncated?)`);
    }
    const localName = Buffer.alloc(nameLength);
    await this.#readExactly(localName, at + LOCAL_HEADER_SIZE, `the local header of ${where}`);
    if (localName.toString("utf8") !== entry.name) {
      throw zipError(this.path, `${where}: its local header names '${localName.toString("utf8")}'`);
    }
    this.#dataOffsets.set(entry.name, start);
    return start;
  }

  /**
   * Reads `length` bytes at `offset` within a stored entry's data. The range must lie inside
   * the entry; only those bytes are read.
   */
  async read(entry: ZipEntry, offset = 0, length = entry.size - offset): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > entry.size) {
      throw zipError(this.path, `bytes ${offset}..${offset + length} are outside entry '${entry.name}' (${entry.size} bytes)`);
    }
    const start = await this.dataOffset(entry);
    const data = new Uint8Array(length);
    await this.#readExactly(data, start + offset, `entry '${entry.name}'`);
    return data;
  }

  /** Reads a whole stored entry, refusing entries larger than `maxBytes`. */
  async readEntry(name: string, maxBytes: number): Promise<Uint8Array> {
    const entry = this.entries.get(name);
    if (!entry) throw zipError(this.path, `there is no entry '${name}'`);
    if (entry.size > maxBytes) throw zipError(this.path, `entry '${name}' is ${entry.size} bytes, over the ${maxBytes}-byte limit`);
    return this.read(entry);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#handle.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new JsdError("JSD_CLOSED", `${this.path} is closed`);
  }

  async #readExactly(buffer: Uint8Array, position: number, what: string): Promise<void> {
    this.#checkOpen();
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await this.#handle.read(buffer, done, buffer.length - done, position + done);
      if (bytesRead === 0) throw zipError(this.path, `${what} is cut short at byte ${position + done} (file changed while reading?)`);
      done += bytesRead;
    }
  }
}

async function readAt(handle: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

async function readCentralDirectory(path: string, handle: FileHandle, size: number): Promise<{ entries: ZipEntry[]; cdOffset: number }> {
  if (size < EOCD_SIZE) throw zipError(path, `the file is ${size} bytes, too short for an end of central directory record`);

  // End of central directory: the last record whose comment runs exactly to the end of the file
  // (or, failing that, the last signature found, as long as its comment fits).
  const tailLength = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = size - tailLength;
  const tail = await readAt(handle, tailLength, tailStart);
  if (tail.length !== tailLength) throw zipError(path, "could not read the end of the file");
  let eocd = -1;
  let fallback = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== SIG_EOCD) continue;
    const commentLength = tail.readUInt16LE(i + 20);
    if (i + EOCD_SIZE + commentLength === tail.length) {
      eocd = i;
      break;
    }
    if (fallback < 0 && i + EOCD_SIZE + commentLength <= tail.length) fallback = i;
  }
  if (eocd < 0) eocd = fallback;
  if (eocd < 0) throw zipError(path, "no end of central directory record (not a zip file, or truncated)");
  const eocdOffset = tailStart + eocd;

  const disk = tail.readUInt16LE(eocd + 4);
  const cdDisk = tail.readUInt16LE(eocd + 6);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  let cdLimit = eocdOffset; // the central directory must end before this

  // ZIP64: a locator just before the EOCD points to the ZIP64 EOCD record.
  const locatorOffset = eocdOffset - ZIP64_LOCATOR_SIZE;
  let zip64 = false;
  if (locatorOffset >= 0) {
    const locator = await readAt(handle, ZIP64_LOCATOR_SIZE, locatorOffset);
    if (locator.length === ZIP64_LOCATOR_SIZE && locator.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
      zip64 = true;
      const recordOffset = u64(path, locator, 8, "ZIP64 end of central directory offset");
      if (locator.readUInt32LE(16) > 1) throw zipError(path, "multi-disk archives are not supported");
      if (recordOffset + ZIP64_EOCD_MIN_SIZE > locatorOffset) {
        throw zipError(path, `ZIP64 end of central directory record offset ${recordOffset} is out of bounds (file size ${size})`);
      }
      const record = await readAt(handle, ZIP64_EOCD_MIN_SIZE, recordOffset);
      if (record.length !== ZIP64_EOCD_MIN_SIZE || record.readUInt32LE(0) !== SIG_ZIP64_EOCD) {
        throw zipError(path, `no ZIP64 end of central directory record at byte ${recordOffset}`);
      }
      if (record.readUInt32LE(16) !== 0 || record.readUInt32LE(20) !== 0) throw zipError(path, "multi-disk archives are not supported");
      count = u64(path, record, 32, "entry count");
      cdSize = u64(path, record, 40, "central directory size");
      cdOffset = u64(path, record, 48, "central directory offset");
      cdLimit = recordOffset;
    }
  }
  if (!zip64 && (disk !== 0 || cdDisk !== 0)) throw zipError(path, "multi-disk archives are not supported");
  if (!zip64 && (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff)) {
    throw zipError(path, "the end of central directory record needs ZIP64 fields but there is no ZIP64 locator");
  }
  if (count > ZIP_LIMITS.maxEntries) throw zipError(path, `${count} entries is over the ${ZIP_LIMITS.maxEntries}-entry limit`);
  if (cdSize > ZIP_LIMITS.maxCentralDirectoryBytes) {
    throw zipError(path, `the central directory is ${cdSize} bytes, over the ${ZIP_LIMITS.maxCentralDirectoryBytes}-byte limit`);
  }
  if (cdOffset + cdSize > cdLimit) {
    throw zipError(path, `the central directory (bytes ${cdOffset}..${cdOffset + cdSize}) runs past its end record at byte ${cdLimit} (file size ${size}; truncated?)`);
  }
  if (count * CENTRAL_HEADER_SIZE > cdSize) {
    throw zipError(path, `the central directory is ${cdSize} bytes, too small for ${count} entries (truncated?)`);
  }

  const cd = await readAt(handle, cdSize, cdOffset);
  if (cd.length !== cdSize) throw zipError(path, "the central directory is cut short");
  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  let at = 0;
  for (let index = 0; index < count; index++) {
    const where = `central directory entry ${index} (byte ${cdOffset + at})`;
    if (at + CENTRAL_HEADER_SIZE > cd.length) throw zipError(path, `${where} is cut short (truncated central directory?)`);
    if (cd.readUInt32LE(at) !== SIG_CENTRAL) throw zipError(path, `${where} has a bad signature (truncated or corrupt central directory?)`);
    const flags = cd.readUInt16LE(at + 8);
    const method = cd.readUInt16LE(at + 10);
    const crc32 = cd.readUInt32LE(at + 16);
    let compressedSize = cd.readUInt32LE(at + 20);
    let entrySize = cd.readUInt32LE(at + 24);
    const nameLength = cd.readUInt16LE(at + 28);
    const extraLength = cd.readUInt16LE(at + 30);
    const commentLength = cd.readUInt16LE(at + 32);
    const entryDisk = cd.readUInt16LE(at + 34);
    let localHeaderOffset = cd.readUInt32LE(at + 42);
    const nameStart = at + CENTRAL_HEADER_SIZE;
    const extraStart = nameStart + nameLength;
    const next = extraStart + extraLength + commentLength;
    if (next > cd.length) throw zipError(path, `${where} is cut short (truncated central directory?)`);
    let name: string;
    try {
      name = new TextDecoder("utf-8", { fatal: true }).decode(cd.subarray(nameStart, extraStart));
    } catch {
      throw zipError(path, `${where} has a name that is not UTF-8`);
    }

    // ZIP64 extended information: 64-bit values for the fields saturated at 0xffffffff, in this order.
    let extra = extraStart;
    const extraEnd = extraStart + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = cd.readUInt16LE(extra);
      const length = cd.readUInt16LE(extra + 2);
      const body = extra + 4;
      if (body + length > extraEnd) throw zipError(path, `${where} ('${name}') has a malformed extra field`);
      if (id === 0x0001) {
        let p = body;
        const take = (what: string): number => {
          if (p + 8 > body + length) throw zipError(path, `${where} ('${name}') has a ZIP64 extra field without its ${what}`);
          const value = u64(path, cd, p, `${what} of '${name}'`);
          p += 8;
          return value;
        };
        if (entrySize === 0xffffffff) entrySize = take("size");
        if (compressedSize === 0xffffffff) compressedSize = take("compressed size");
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take("local header offset");
      }
      extra = body + length;
    }
    if (entrySize === 0xffffffff || compressedSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      throw zipError(path, `${where} ('${name}') needs ZIP64 values but has no ZIP64 extra field`);
    }
    if (entryDisk !== 0 && entryDisk !== 0xffff) throw zipError(path, "multi-disk archives are not supported");
    if (localHeaderOffset + LOCAL_HEADER_SIZE + compressedSize > cdOffset) {
      throw zipError(path, `entry '${name}' (local header at byte ${localHeaderOffset}, ${compressedSize} bytes) points past the data area, which ends at byte ${cdOffset} (file size ${size}; truncated?)`);
    }
    if (seen.has(name)) throw zipError(path, `entry '${name}' appears twice`);
    seen.add(name);
    entries.push({ name, method, flags, compressedSize, size: entrySize, crc32, localHeaderOffset });
    at = next;
  }
  return { entries, cdOffset };
}

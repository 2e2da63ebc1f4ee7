// PNG chunk framing: the signature, CRC-32, splitting a file into chunks, writing one chunk, and
// splicing chunks in after IHDR (where text metadata goes). No pixels, no text.
import { JsdError, JsdTypeError } from "../errors.js";

export const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

// ---- CRC-32 (ISO 3309 / PNG), table-driven -----------------------------------------------------

let crcTable: Uint32Array | undefined;

/** CRC-32 as PNG chunks use it (the zlib/gzip one). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---- chunks -------------------------------------------------------------------------------------

export interface PngChunk {
  type: string;
  data: Uint8Array;
  /** Offset of the chunk's length field in the file. */
  offset: number;
}

export function badPng(why: string): JsdError {
  return new JsdError("JSD_BAD_FILE", `not a valid PNG file: ${why}`);
}

export function hasPngSignature(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== PNG_SIGNATURE[i]) return false;
  return true;
}

function typeString(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
}

/**
 * Splits a PNG into its chunks, up to and including IEND. Checks the signature, chunk bounds and
 * chunk types; CRCs are checked for `checkCrcOf` chunk types ("*" for all).
 * Throws JSD_BAD_FILE on anything malformed.
 */
export function readPngChunks(png: Uint8Array, checkCrcOf: ReadonlySet<string> | "*" = "*"): PngChunk[] {
  if (!(png instanceof Uint8Array)) throw new JsdTypeError("png must be a Uint8Array");
  if (!hasPngSignature(png)) throw badPng("missing PNG signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: PngChunk[] = [];
  let pos = 8;
  for (;;) {
    if (pos + 12 > png.length) throw badPng(`truncated at byte ${pos} (no IEND chunk)`);
    const length = view.getUint32(pos);
    const type = typeString(png, pos + 4);
    if (!/^[A-Za-z]{4}$/.test(type)) throw badPng(`invalid chunk type at byte ${pos + 4}`);
    if (length > 0x7fffffff || pos + 12 + length > png.length) {
      throw badPng(`chunk ${type} at byte ${pos} runs past the end of the file (truncated?)`);
    }
    const data = png.subarray(pos + 8, pos + 8 + length);
    if (checkCrcOf === "*" || checkCrcOf.has(type)) {
      const stored = view.getUint32(pos + 8 + length);
      if (crc32(png.subarray(pos + 4, pos + 8 + length)) !== stored) throw badPng(`CRC mismatch in chunk ${type} at byte ${pos}`);
    }
    if (chunks.length === 0 && type !== "IHDR") throw badPng("first chunk is not IHDR");
    chunks.push({ type, data, offset: pos });
    pos += 12 + length;
    if (type === "IEND") return chunks;
  }
}

export function chunkBytes(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** `png` with `chunks` inserted right after IHDR (which readPngChunks checks is the first chunk). */
export function insertAfterIhdr(png: Uint8Array, chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 0) return png;
  const [ihdr] = readPngChunks(png, new Set(["IHDR"]));
  const insertAt = ihdr.offset + 12 + ihdr.data.length;
  const out = new Uint8Array(png.length + chunks.reduce((n, c) => n + c.length, 0));
  out.set(png.subarray(0, insertAt));
  let pos = insertAt;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  out.set(png.subarray(insertAt), pos);
  return out;
}

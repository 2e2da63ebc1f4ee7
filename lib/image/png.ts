// PNG files: encoding the pipeline's images with their generation metadata, reading that
// metadata back, and decoding init images and masks to RGBA8.
//
// Pixels are compressed and decompressed by `fast-png` (pure JS, maintained). Text chunks are
// written here, because fast-png only writes Latin-1 `tEXt`: a chunk writer is a length, a type,
// the data and a CRC-32.
//
// Text chunks follow Pillow's `PngInfo.add_text` (what AUTOMATIC1111's web UI uses to save its
// `parameters`): a value that Latin-1 can hold goes into an uncompressed `tEXt` chunk, any other
// (Japanese prompts) into an uncompressed UTF-8 `iTXt` chunk with empty language tag and
// translated keyword. Readers of A1111 metadata (the web UI's "PNG Info", Pillow's `info`,
// exiftool) accept both. The chunks are put right after IHDR, before the image data, so that a
// reader that stops at the first IDAT (Pillow before `load()`) still sees them.
import { readFile } from "node:fs/promises";
import { inflateSync } from "node:zlib";
import { decode as fastPngDecode, encode as fastPngEncode, type DecodedPng } from "fast-png";
import { JsdError } from "../errors.js";

/** Keyword of the JSON text chunk that `encodePng` writes from `metadata.json`. */
export const PNG_JSON_KEYWORD = "jsd";

/** Keyword of the A1111-style text chunk. */
export const PNG_PARAMETERS_KEYWORD = "parameters";

/**
 * Text to store in a PNG. `parameters` (A1111's human-readable settings) and `json` (stored as
 * JSON text under the keyword `jsd`) come first; any other key is a chunk keyword of its own,
 * with a string value as is and any other value as JSON. `undefined` values are skipped.
 */
export interface PngMetadata {
  parameters?: string;
  json?: unknown;
  [keyword: string]: unknown;
}

export interface DecodedImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, row-major, top row first, R G B A. */
  rgba: Uint8Array;
  /** The file has an alpha channel or tRNS transparency (else every alpha byte is 255). */
  hasAlpha: boolean;
}

export interface DecodeImageOptions {
  /** Refuse images with more pixels than this (decompression bombs). Default 2^26 (8192 x 8192). */
  maxPixels?: number;
}

const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
// Decompressed text chunks larger than this are refused (zip bombs in zTXt / iTXt).
const MAX_TEXT_BYTES = 64 << 20;
const DEFAULT_MAX_PIXELS = 1 << 26;

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

function badPng(why: string): JsdError {
  return new JsdError("JSD_BAD_FILE", `not a valid PNG file: ${why}`);
}

function hasPngSignature(bytes: Uint8Array): boolean {
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
  if (!(png instanceof Uint8Array)) throw new TypeError("png must be a Uint8Array");
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

function chunkBytes(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function isLatin1(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  return true;
}

function latin1Bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function checkKeyword(keyword: string): void {
  // PNG spec 11.3.4.2: 1-79 bytes of printable Latin-1, no leading, trailing or double spaces.
  const ok =
    keyword.length >= 1 &&
    keyword.length <= 79 &&
    /^[\x20-\x7e\xa1-\xff]+$/.test(keyword) &&
    !keyword.startsWith(" ") &&
    !keyword.endsWith(" ") &&
    !keyword.includes("  ");
  if (!ok) {
    throw new JsdError(
      "JSD_INVALID_ARGUMENT",
      `invalid PNG text keyword ${JSON.stringify(keyword)}: 1 to 79 printable Latin-1 characters, no leading, trailing or double spaces`,
    );
  }
}

/** One tEXt (Latin-1 text) or iTXt (anything else, UTF-8) chunk, complete with length and CRC. */
export function textChunk(keyword: string, text: string): Uint8Array {
  checkKeyword(keyword);
  if (typeof text !== "string") throw new TypeError(`PNG text for ${keyword} must be a string`);
  if (text.includes("\0")) throw new JsdError("JSD_INVALID_ARGUMENT", `PNG text for ${keyword} contains a NUL character`);
  if (isLatin1(text)) {
    const data = new Uint8Array(keyword.length + 1 + text.length);
    data.set(latin1Bytes(keyword));
    data.set(latin1Bytes(text), keyword.length + 1);
    return chunkBytes("tEXt", data);
  }
  if (/[\uD800-\uDFFF]/u.test(text)) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `PNG text for ${keyword} contains a lone UTF-16 surrogate`);
  }
  const utf8 = new TextEncoder().encode(text);
  // keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL.
  const data = new Uint8Array(keyword.length + 5 + utf8.length);
  data.set(latin1Bytes(keyword));
  data.set(utf8, keyword.length + 5);
  return chunkBytes("iTXt", data);
}

function metadataEntries(metadata: PngMetadata): [string, string][] {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new TypeError("metadata must be an object");
  }
  const entries: [string, string][] = [];
  const add = (keyword: string, value: unknown) => {
    if (value === undefined) return;
    if (typeof value === "string") entries.push([keyword, value]);
    else {
      const json = JSON.stringify(value);
      if (json === undefined) throw new TypeError(`metadata value for ${keyword} cannot be stored as JSON`);
      entries.push([keyword, json]);
    }
  };
  if (metadata.parameters !== undefined && typeof metadata.parameters !== "string") {
    throw new TypeError("metadata.parameters must be a string");
  }
  add(PNG_PARAMETERS_KEYWORD, metadata.parameters);
  add(PNG_JSON_KEYWORD, metadata.json);
  for (const [key, value] of Object.entries(metadata)) {
    if (key === "parameters" || key === "json") continue;
    if (key === PNG_JSON_KEYWORD && metadata.json !== undefined) {
      throw new JsdError("JSD_INVALID_ARGUMENT", `metadata has both 'json' and '${PNG_JSON_KEYWORD}'`);
    }
    add(key, value);
  }
  return entries;
}

/** Inserts text chunks right after IHDR of an existing PNG. */
export function addPngText(png: Uint8Array, metadata: PngMetadata): Uint8Array {
  const chunks = readPngChunks(png, new Set(["IHDR"]));
  const insertAt = chunks[0].offset + 12 + chunks[0].data.length;
  const extra = metadataEntries(metadata).map(([k, v]) => textChunk(k, v));
  const total = png.length + extra.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  out.set(png.subarray(0, insertAt));
  let pos = insertAt;
  for (const c of extra) {
    out.set(c, pos);
    pos += c.length;
  }
  out.set(png.subarray(insertAt), pos);
  return out;
}

// ---- encode ---------------------------------------------------------------------------------

function checkDimensions(width: unknown, height: unknown): void {
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 0x7fffffff) {
      throw new JsdError("JSD_INVALID_ARGUMENT", `${name} must be a positive integer, got ${String(v)}`);
    }
  }
}

/**
 * Encodes 8-bit RGBA pixels (row-major, top row first) as a PNG, with optional text metadata.
 * An image whose alpha bytes are all 255 is written as RGB (colour type 2), as Pillow saves the
 * pipeline's RGB images; otherwise as RGBA.
 */
export function encodePng(
  rgba: Uint8Array | Uint8ClampedArray,
  width: number,
  height: number,
  metadata?: PngMetadata,
): Uint8Array {
  if (!(rgba instanceof Uint8Array || rgba instanceof Uint8ClampedArray)) {
    throw new TypeError("rgba must be a Uint8Array or Uint8ClampedArray");
  }
  checkDimensions(width, height);
  if (rgba.length !== width * height * 4) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `rgba has ${rgba.length} bytes, expected ${width}x${height}x4 = ${width * height * 4}`);
  }
  const entries = metadata === undefined ? [] : metadataEntries(metadata);
  const chunks = entries.map(([k, v]) => textChunk(k, v)); // validate before the costly part
  let opaque = true;
  for (let i = 3; i < rgba.length; i += 4) {
    if (rgba[i] !== 255) {
      opaque = false;
      break;
    }
  }
  let data: Uint8Array;
  if (opaque) {
    data = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      data[j] = rgba[i];
      data[j + 1] = rgba[i + 1];
      data[j + 2] = rgba[i + 2];
    }
  } else {
    data = new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.length);
  }
  const png = fastPngEncode({ width, height, data, channels: opaque ? 3 : 4, depth: 8 }, { zlib: { level: 6 } });
  if (chunks.length === 0) return png;
  // IHDR is always 13 bytes: signature (8) + length, type, data, CRC (25).
  const insertAt = 33;
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

// ---- text -----------------------------------------------------------------------------------

function inflateText(data: Uint8Array, what: string): Uint8Array {
  try {
    return inflateSync(data, { maxOutputLength: MAX_TEXT_BYTES });
  } catch (error) {
    throw new JsdError("JSD_BAD_FILE", `not a valid PNG file: cannot decompress ${what}: ${(error as Error).message}`, { cause: error });
  }
}

function latin1String(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

function nul(data: Uint8Array, from: number, what: string): number {
  const at = data.indexOf(0, from);
  if (at < 0) throw badPng(`${what} chunk without NUL separator`);
  return at;
}

/**
 * All text in a PNG's tEXt (Latin-1), zTXt (compressed Latin-1) and iTXt (UTF-8, compressed or
 * not) chunks, keyword -> text. A keyword that occurs more than once keeps its last value, as in
 * Pillow's `info`. Throws JSD_BAD_FILE for a malformed file or text chunk (CRCs of text chunks
 * are checked).
 */
export function readPngText(png: Uint8Array): Record<string, string> {
  const textTypes = new Set(["tEXt", "zTXt", "iTXt"]);
  const out: Record<string, string> = {};
  const utf8 = new TextDecoder("utf-8");
  for (const { type, data } of readPngChunks(png, textTypes)) {
    if (!textTypes.has(type)) continue;
    const k = nul(data, 0, type);
    const keyword = latin1String(data.subarray(0, k));
    if (type === "tEXt") {
      out[keyword] = latin1String(data.subarray(k + 1));
    } else if (type === "zTXt") {
      if (data[k + 1] !== 0) throw badPng(`zTXt chunk '${keyword}' has unknown compression method ${data[k + 1]}`);
      out[keyword] = latin1String(inflateText(data.subarray(k + 2), `zTXt chunk '${keyword}'`));
    } else {
      if (k + 3 > data.length) throw badPng(`iTXt chunk '${keyword}' is too short`);
      const compressed = data[k + 1];
      if (compressed > 1 || (compressed === 1 && data[k + 2] !== 0)) {
        throw badPng(`iTXt chunk '${keyword}' has unknown compression flag/method`);
      }
      const lang = nul(data, k + 3, type);
      const translated = nul(data, lang + 1, type);
      const body = data.subarray(translated + 1);
      out[keyword] = utf8.decode(compressed ? inflateText(body, `iTXt chunk '${keyword}'`) : body);
    }
  }
  return out;
}

// ---- decode -----------------------------------------------------------------------------------

/** Samples of one row, unpacked from 1/2/4-bit packing; 8- and 16-bit data are already unpacked. */
function unpackSamples(data: Uint8Array, width: number, height: number, channels: number, depth: number): Uint8Array {
  const perRow = width * channels;
  const bytesPerRow = Math.ceil((perRow * depth) / 8);
  if (data.length < bytesPerRow * height) throw badPng("image data is too short (truncated?)");
  const out = new Uint8Array(perRow * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    const row = y * bytesPerRow;
    for (let i = 0; i < perRow; i++) {
      const bit = i * depth;
      out[y * perRow + i] = (data[row + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function toRgba(png: DecodedPng): DecodedImage {
  const { width, height, depth, channels } = png;
  const n = width * height;
  const rgba = new Uint8Array(n * 4);
  const palette = png.palette;
  const samples = depth < 8 ? unpackSamples(png.data as Uint8Array, width, height, channels, depth) : png.data;
  if (samples.length < n * channels) throw badPng("image data is too short (truncated?)");
  if (palette) {
    let hasAlpha = false;
    for (let p = 0; p < n; p++) {
      const entry = palette[samples[p]];
      if (!entry) throw badPng(`palette index ${samples[p]} out of range (palette has ${palette.length} entries)`);
      rgba[4 * p] = entry[0];
      rgba[4 * p + 1] = entry[1];
      rgba[4 * p + 2] = entry[2];
      rgba[4 * p + 3] = entry.length > 3 ? entry[3] : 255;
      if (entry.length > 3 && entry[3] !== 255) hasAlpha = true;
    }
    return { width, height, rgba, hasAlpha };
  }
  // Scale samples to 8 bits: 16-bit keeps the high byte (as Pillow does for RGB(A)), 1/2/4-bit
  // grey levels are stretched to 0..255 (v * 255 / (2^depth - 1), exact for these depths).
  const scale = depth < 8 ? 255 / ((1 << depth) - 1) : 1;
  const to8 = depth === 16 ? (v: number) => v >>> 8 : depth < 8 ? (v: number) => v * scale : (v: number) => v;
  const trns = png.transparency; // colour key in sample units: [grey] or [r, g, b]
  const colorKey = trns && trns.length >= (channels >= 3 ? 3 : 1) ? trns : undefined;
  for (let p = 0; p < n; p++) {
    const s = p * channels;
    let r: number, g: number, b: number, a = 255;
    if (channels === 1 || channels === 2) {
      r = g = b = to8(samples[s]);
      if (channels === 2) a = to8(samples[s + 1]);
      else if (colorKey && samples[s] === colorKey[0]) a = 0;
    } else {
      r = to8(samples[s]);
      g = to8(samples[s + 1]);
      b = to8(samples[s + 2]);
      if (channels === 4) a = to8(samples[s + 3]);
      else if (colorKey && samples[s] === colorKey[0] && samples[s + 1] === colorKey[1] && samples[s + 2] === colorKey[2]) a = 0;
    }
    rgba[4 * p] = r;
    rgba[4 * p + 1] = g;
    rgba[4 * p + 2] = b;
    rgba[4 * p + 3] = a;
  }
  return { width, height, rgba, hasAlpha: channels === 2 || channels === 4 || colorKey !== undefined };
}

/**
 * Decodes PNG bytes (any colour type and bit depth, interlaced or not; the first frame of an
 * APNG) to 8-bit RGBA. Throws JSD_BAD_FILE for anything else: JPEG and other formats (not
 * supported: convert them to PNG first), truncated or corrupt data, bad CRCs, or more than
 * `maxPixels` pixels.
 */
export function decodeImageBytes(bytes: Uint8Array, options: DecodeImageOptions = {}): DecodedImage {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("bytes must be a Uint8Array");
  if (!hasPngSignature(bytes)) {
    if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
      throw new JsdError("JSD_BAD_FILE", "JPEG images are not supported: convert the image to PNG");
    }
    throw new JsdError("JSD_BAD_FILE", "not a PNG image (unknown file signature)");
  }
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  // Check the structure (and every CRC) first: fast-png's own errors are less specific.
  const chunks = readPngChunks(bytes);
  const ihdr = chunks[0].data;
  if (ihdr.length !== 13) throw badPng("IHDR chunk has the wrong length");
  const ihdrView = new DataView(ihdr.buffer, ihdr.byteOffset, 13);
  const width = ihdrView.getUint32(0);
  const height = ihdrView.getUint32(4);
  if (width < 1 || height < 1) throw badPng(`image is ${width}x${height}`);
  if (width * height > maxPixels) {
    throw new JsdError("JSD_BAD_FILE", `image is ${width}x${height}, more than the ${maxPixels} pixels allowed`);
  }
  if (!chunks.some((c) => c.type === "IDAT")) throw badPng("no image data (IDAT chunk)");
  let png: DecodedPng;
  try {
    png = fastPngDecode(bytes, { checkCrc: true });
  } catch (error) {
    throw new JsdError("JSD_BAD_FILE", `not a valid PNG file: ${(error as Error).message}`, { cause: error });
  }
  if (png.width !== width || png.height !== height) throw badPng("inconsistent image size");
  return toRgba(png);
}

/** Reads an image file (PNG) or decodes bytes. Throws JSD_NOT_FOUND or JSD_BAD_FILE. */
export async function decodeImage(source: string | Uint8Array, options: DecodeImageOptions = {}): Promise<DecodedImage> {
  if (typeof source !== "string") return decodeImageBytes(source, options);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(source);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new JsdError(
      code === "ENOENT" ? "JSD_NOT_FOUND" : "JSD_BAD_FILE",
      code === "ENOENT" ? `image not found: ${source}` : `cannot read image ${source}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    return decodeImageBytes(bytes, options);
  } catch (error) {
    if (error instanceof JsdError) throw new JsdError(error.code, `${source}: ${error.message}`, { cause: error });
    throw error;
  }
}

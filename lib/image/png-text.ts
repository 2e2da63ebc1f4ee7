// PNG text metadata: writing tEXt / iTXt chunks as Pillow's PngInfo.add_text does (what
// AUTOMATIC1111 saves its `parameters` with) and reading tEXt, zTXt and iTXt back.
//
// A value that Latin-1 can hold goes into an uncompressed `tEXt` chunk, any other (Japanese
// prompts) into an uncompressed UTF-8 `iTXt` chunk with empty language tag and translated keyword.
// Readers of A1111 metadata (the web UI's "PNG Info", Pillow's `info`, exiftool) accept both.
import { inflateSync } from "node:zlib";
import { JsdError, JsdTypeError } from "../errors.js";
import { badPng, chunkBytes, insertAfterIhdr, readPngChunks } from "./png-chunks.js";

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

// Decompressed text chunks larger than this are refused (zip bombs in zTXt / iTXt).
const MAX_TEXT_BYTES = 64 << 20;

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
  if (typeof text !== "string") throw new JsdTypeError(`PNG text for ${keyword} must be a string`);
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

export function metadataEntries(metadata: PngMetadata): [string, string][] {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new JsdTypeError("metadata must be an object");
  }
  const entries: [string, string][] = [];
  const add = (keyword: string, value: unknown) => {
    if (value === undefined) return;
    if (typeof value === "string") entries.push([keyword, value]);
    else {
      const json = JSON.stringify(value);
      if (json === undefined) throw new JsdTypeError(`metadata value for ${keyword} cannot be stored as JSON`);
      entries.push([keyword, json]);
    }
  };
  if (metadata.parameters !== undefined && typeof metadata.parameters !== "string") {
    throw new JsdTypeError("metadata.parameters must be a string");
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
  return insertAfterIhdr(png, metadataEntries(metadata).map(([k, v]) => textChunk(k, v)));
}


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

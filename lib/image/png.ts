// PNG files for the pipeline: encoding its images with their generation metadata, and decoding
// init images and masks to RGBA8. Pixels are compressed and decompressed by `fast-png` (pure JS,
// maintained); the text chunks (png-text.ts) go right after IHDR, before the image data, so that a
// reader that stops at the first IDAT (Pillow before `load()`) still sees them.
import { readFile } from "node:fs/promises";
import { decode as fastPngDecode, encode as fastPngEncode, type DecodedPng } from "fast-png";
import { JsdError, JsdTypeError } from "../errors.js";
import { badPng, hasPngSignature, insertAfterIhdr, readPngChunks } from "./png-chunks.js";
import { metadataEntries, textChunk, type PngMetadata } from "./png-text.js";
import { imageSize } from "../validate.js";

export { crc32, readPngChunks, type PngChunk } from "./png-chunks.js";
export { addPngText, readPngText, textChunk, PNG_JSON_KEYWORD, PNG_PARAMETERS_KEYWORD, type PngMetadata } from "./png-text.js";

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

const DEFAULT_MAX_PIXELS = 1 << 26;

// ---- encode ---------------------------------------------------------------------------------


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
    throw new JsdTypeError("rgba must be a Uint8Array or Uint8ClampedArray");
  }
  imageSize(width, height);
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
  return insertAfterIhdr(png, chunks);
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
  if (!(bytes instanceof Uint8Array)) throw new JsdTypeError("bytes must be a Uint8Array");
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

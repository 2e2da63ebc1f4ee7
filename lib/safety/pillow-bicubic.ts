// Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit RGB, bit for bit: its convolution resampler
// (libImaging/Resample.c), written here from the published algorithm.
//
// - Separable: a horizontal pass into an 8-bit intermediate image, then a vertical pass. A pass
//   whose size does not change is skipped (Pillow skips it too; with scale 1 it would be the
//   identity anyway).
// - Per axis and output index `xx`: scale = in / out; when shrinking the filter widens by the scale
//   (filterscale = max(scale, 1), support = 2 * filterscale). The window is centred on
//   center = (xx + 0.5) * scale and runs over the source indices
//   [trunc(center - support + 0.5), trunc(center + support + 0.5)), clipped to the image.
//   Weights are bicubic((x - center + 0.5) / filterscale) with a = -0.5, divided by their sum.
// - Weights become 22-bit fixed point (PRECISION_BITS = 32 - 8 - 2), rounded half away from zero
//   by truncation after adding ±0.5. A pixel sums weight * byte in integers from 1 << 21 (the
//   rounding half), then shifts right by 22 and clips to 0..255.
// - `reducing_gap` is None in `Image.resize`'s default, so no box reduction runs first.
// Each intermediate is 8-bit, so the result depends on the pass order; Pillow's is horizontal first.
import { JsdRangeError } from "../errors.js";

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** Pillow's bicubic kernel, a = -0.5, support 2; the arithmetic in Pillow's order. */
function bicubic(x: number): number {
  if (x < 0) x = -x;
  if (x < 1) return (1.5 * x - 2.5) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * -0.5;
  return 0;
}

/** One axis's windows: output index i reads `count[i]` source pixels from `first[i]` with `weights[i * ksize + k]`. */
export interface AxisCoefficients {
  ksize: number;
  first: Int32Array;
  count: Int32Array;
  /** Fixed point, 22 fractional bits. */
  weights: Int32Array;
}

/** The coefficients of one axis, from `inSize` source pixels to `outSize` (Pillow's precompute_coeffs and normalize_coeffs_8bpc). */
export function bicubicCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const inverse = 1 / filterscale;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const window = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) truncates toward zero; a negative start is clipped to 0 right after, so it agrees.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5));
    const n = xmax - xmin;
    let sum = 0;
    for (let x = 0; x < n; x++) {
      window[x] = bicubic((x + xmin - center + 0.5) * inverse);
      sum += window[x];
    }
    for (let x = 0; x < n; x++) {
      const w = sum !== 0 ? window[x] / sum : window[x];
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    first[xx] = xmin;
    count[xx] = n;
  }
  return { ksize, first, count, weights };
}

/** Pillow's clip8: the sum back to a byte (an arithmetic shift, then 0..255). */
function clip8(sum: number): number {
  const v = Math.floor(sum / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** A packed 8-bit image: `channels` bytes per pixel, rows top to bottom. */
export interface PackedImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: number;
}

/** Each row resampled to `outWidth`: `channels` interleaved channels, all resampled. */
function horizontalPass(src: PackedImage, outWidth: number): PackedImage {
  const { data, width, height, channels } = src;
  const { ksize, first, count, weights } = bicubicCoefficients(width, outWidth);
  const out = new Uint8Array(outWidth * height * channels);
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let xx = 0; xx < outWidth; xx++) {
      const k = xx * ksize;
      const start = row + first[xx] * channels;
      for (let c = 0; c < channels; c++) {
        let sum = HALF;
        for (let x = 0; x < count[xx]; x++) sum += data[start + x * channels + c] * weights[k + x];
        out[(y * outWidth + xx) * channels + c] = clip8(sum);
      }
    }
  }
  return { data: out, width: outWidth, height, channels };
}

/** Each column resampled to `outHeight`. */
function verticalPass(src: PackedImage, outHeight: number): PackedImage {
  const { data, width, height, channels } = src;
  const { ksize, first, count, weights } = bicubicCoefficients(height, outHeight);
  const stride = width * channels;
  const out = new Uint8Array(outHeight * stride);
  for (let yy = 0; yy < outHeight; yy++) {
    const k = yy * ksize;
    const start = first[yy] * stride;
    for (let i = 0; i < stride; i++) {
      let sum = HALF;
      for (let y = 0; y < count[yy]; y++) sum += data[start + y * stride + i] * weights[k + y];
      out[yy * stride + i] = clip8(sum);
    }
  }
  return { data: out, width, height: outHeight, channels };
}

/** The largest side the resampler takes (in or out): Pillow's own limit is far above what the checker needs. */
export const MAX_RESAMPLE_SIDE = 1 << 16;

/**
 * `image.resize((outWidth, outHeight), Image.BICUBIC)` as Pillow computes it for an 8-bit image
 * of `channels` bytes per pixel (every channel resampled alike; Pillow's RGB images carry a padding
 * byte that is never read). The same size returns a copy, as Pillow does.
 */
export function resizeBicubic(image: PackedImage, outWidth: number, outHeight: number): PackedImage {
  for (const [name, v] of [["image width", image.width], ["image height", image.height], ["output width", outWidth], ["output height", outHeight]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_RESAMPLE_SIDE) throw new JsdRangeError(`${name} must be an integer from 1 to ${MAX_RESAMPLE_SIDE}, got ${v}`);
  }
  if (!Number.isInteger(image.channels) || image.channels < 1 || image.data.length !== image.width * image.height * image.channels) {
    throw new JsdRangeError(`image has ${image.data.length} bytes, expected ${image.width}x${image.height}x${image.channels}`);
  }
  let out: PackedImage = image;
  if (outWidth !== out.width) out = horizontalPass(out, outWidth);
  if (outHeight !== out.height) out = verticalPass(out, outHeight);
  return out === image ? { ...image, data: Uint8Array.from(image.data) } : out;
}

// Conversions between the pipeline's float images and 8-bit pixels, bit for bit as
// diffusers 0.8.1 (rinna's pin) with numpy, PyTorch and Pillow does them, in float32.
//
//  - output: `image = (decoded / 2 + 0.5).clamp(0, 1)` (HWC), then `numpy_to_pil`:
//    `(images * 255).round().astype("uint8")`; numpy rounds half to even.
//  - img2img input (`preprocess`): `np.array(rgb).astype(np.float32) / 255.0`, NCHW,
//    `2.0 * image - 1.0`. An RGBA image loses its alpha channel, as Pillow's `convert("RGB")`.
//    No resize happens here: diffusers resizes to a multiple of 32 with LANCZOS first, so callers
//    should pass sizes that are multiples of 32 (or resize themselves).
//  - inpaint mask (legacy pipeline's `preprocess_mask`): `mask.convert("L")`, resized with
//    NEAREST to ((w - w % 32) / 8, (h - h % 32) / 8), `/ 255.0` in float32, tiled to 4 channels,
//    then `1 - mask`: the result is the *keep* mask (1 = keep the init image, 0 = repaint).
import { JsdError } from "../errors.js";
import { roundHalfEven } from "../schedulers/common.js";
import { imageSize } from "../validate.js";


function checkLength(what: string, array: ArrayLike<number>, expected: number): void {
  if (array.length !== expected) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `${what} has ${array.length} values, expected ${expected}`);
  }
}

export { roundHalfEven };

/** 255 * x, rounded like numpy (in float32), clamped to 0..255; NaN gives 0. */
function unitToByte(x: number): number {
  const v = roundHalfEven(Math.fround(x * 255));
  return v >= 255 ? 255 : v > 0 ? v : 0;
}

/**
 * The pipeline's output image, float32 HWC `[height, width, 3]` in [0, 1], to RGBA8 (alpha 255):
 * `(image * 255).round().astype("uint8")` as diffusers' `numpy_to_pil`.
 */
export function unitHwcToRgba8(image: Float32Array, width: number, height: number): Uint8Array {
  imageSize(width, height);
  checkLength("image", image, width * height * 3);
  const out = new Uint8Array(width * height * 4);
  for (let p = 0, i = 0; i < image.length; i += 3, p += 4) {
    out[p] = unitToByte(image[i]);
    out[p + 1] = unitToByte(image[i + 1]);
    out[p + 2] = unitToByte(image[i + 2]);
    out[p + 3] = 255;
  }
  return out;
}

/**
 * The raw VAE decoder output, float32 NCHW `[batch, 3, height, width]`, to the pipeline's
 * `image` (float32 HWC in [0, 1]) for one batch entry: `(decoded / 2 + 0.5).clamp(0, 1)`.
 * NaN stays NaN (torch's clamp keeps it); unitHwcToRgba8 turns it into 0.
 */
export function vaeOutputToUnitHwc(decoded: Float32Array, width: number, height: number, batchIndex = 0): Float32Array {
  imageSize(width, height);
  const plane = width * height;
  if (!Number.isInteger(batchIndex) || batchIndex < 0 || (batchIndex + 1) * 3 * plane > decoded.length) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `batch entry ${batchIndex} is outside the decoded tensor (${decoded.length} values)`);
  }
  if (decoded.length % (3 * plane) !== 0) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `decoded has ${decoded.length} values, not a multiple of 3x${height}x${width}`);
  }
  const base = batchIndex * 3 * plane;
  const out = new Float32Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = Math.fround(Math.fround(decoded[base + c * plane + p] / 2) + 0.5);
      out[p * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return out;
}

/** Raw VAE decoder output (NCHW, one batch entry) straight to RGBA8, as the pipeline's PIL output. */
export function vaeOutputToRgba8(decoded: Float32Array, width: number, height: number, batchIndex = 0): Uint8Array {
  return unitHwcToRgba8(vaeOutputToUnitHwc(decoded, width, height, batchIndex), width, height);
}

/**
 * RGBA8 pixels to the img2img pipeline's input, float32 NCHW `[1, 3, height, width]` in [-1, 1]:
 * `2 * (u8 / 255) - 1` with float32 rounding at each step. Alpha is dropped.
 */
export function rgba8ToSignedNchw(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): Float32Array {
  imageSize(width, height);
  checkLength("rgba", rgba, width * height * 4);
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  const table = new Float32Array(256);
  for (let u = 0; u < 256; u++) table[u] = Math.fround(Math.fround(2 * Math.fround(u / 255)) - 1);
  for (let p = 0; p < plane; p++) {
    out[p] = table[rgba[4 * p]];
    out[plane + p] = table[rgba[4 * p + 1]];
    out[2 * plane + p] = table[rgba[4 * p + 2]];
  }
  return out;
}

/** Pillow's `convert("L")` of RGB(A) pixels: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16; alpha ignored. */
export function rgba8ToLuma(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): Uint8Array {
  imageSize(width, height);
  checkLength("rgba", rgba, width * height * 4);
  const out = new Uint8Array(width * height);
  for (let p = 0; p < out.length; p++) {
    out[p] = (rgba[4 * p] * 19595 + rgba[4 * p + 1] * 38470 + rgba[4 * p + 2] * 7471 + 0x8000) >>> 16;
  }
  return out;
}

/**
 * Source index that Pillow's NEAREST resize samples for output index `i`:
 * floor((i + 0.5) * inSize / outSize), the centre of the output pixel mapped back.
 */
export function nearestSourceIndex(i: number, inSize: number, outSize: number): number {
  const s = Math.floor((i + 0.5) * (inSize / outSize));
  return s < inSize ? s : inSize - 1;
}

export interface LatentMask {
  /** float32 NCHW `[1, 4, latentHeight, latentWidth]`: 1 - L/255, i.e. 1 = keep, 0 = repaint. */
  keep: Float32Array;
  latentWidth: number;
  latentHeight: number;
}

/**
 * The legacy inpainting pipeline's mask at latent resolution (diffusers 0.8.1
 * `preprocess_mask`): Pillow "L" of the mask (white = repaint), NEAREST-resized to
 * ((w - w % 32) / 8) x ((h - h % 32) / 8), `keep = 1 - L / 255` in float32, 4 channels.
 */
export function maskToLatentKeep(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): LatentMask {
  const luma = rgba8ToLuma(rgba, width, height);
  const latentWidth = (width - (width % 32)) / 8;
  const latentHeight = (height - (height % 32)) / 8;
  if (latentWidth < 1 || latentHeight < 1) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `mask is ${width}x${height}: it must be at least 32x32 pixels`);
  }
  const plane = latentWidth * latentHeight;
  const keep = new Float32Array(4 * plane);
  for (let y = 0; y < latentHeight; y++) {
    const sy = nearestSourceIndex(y, height, latentHeight);
    for (let x = 0; x < latentWidth; x++) {
      const sx = nearestSourceIndex(x, width, latentWidth);
      keep[y * latentWidth + x] = Math.fround(1 - Math.fround(luma[sy * width + sx] / 255));
    }
  }
  for (let c = 1; c < 4; c++) keep.copyWithin(c * plane, 0, plane);
  return { keep, latentWidth, latentHeight };
}

// The safety checker's feature extractor (lib/safety/feature-extractor.ts, pillow-bicubic.ts) against the
// reference cases in test/fixtures/reference/safety_checker/ (every case: 64x64, 96x64 upscaled,
// 512x512 downscaled).
//
// Tolerances:
// - the resized and cropped bytes: exact (Pillow's bicubic bit for bit). The reference bytes are read
//   back from its pixel_values (round((v * std + mean) * 255); neighbouring bytes lie 0.015 apart);
// - pixel_values: max |ours - reference| <= 1e-6 (the tolerance). Ours follow transformers
//   4.25's float32 rescale, the reference 5.17's: they differ by a float32 ulp or two (measured 4.8e-7);
// - numpy_to_pil of images_float (lib/image/convert.ts unitHwcToRgba8) equals `images` exactly.
import { describe, expect, it } from "vitest";
import { isJsdError } from "../../lib/errors.js";
import { unitHwcToRgba8 } from "../../lib/image/convert.js";
import {
  bicubicCoefficients,
  extractFeatures,
  resizeAndCrop,
  resizeBicubic,
  resizedSize,
  type FeatureExtractorSettings,
  type RgbImage,
} from "../../lib/safety/index.js";
import { loadSafetyCase, SAFETY_CASE_NAMES, tinyFeatureExtractorSettings, type SafetyCase } from "../helpers/safety-cases.js";

const PIXEL_VALUES_TOLERANCE = 1e-6;
const settings = tinyFeatureExtractorSettings();

function caseImages(c: SafetyCase): RgbImage[] {
  const size = c.width * c.height * 3;
  return Array.from({ length: c.batch }, (_, b) => ({ data: c.images.subarray(b * size, (b + 1) * size), width: c.width, height: c.height, channels: 3 as const }));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return isJsdError(error) ? error.code : `uncoded: ${String(error)}`;
  }
  return undefined;
}

describe("feature extractor against the reference cases", () => {
  it.each(SAFETY_CASE_NAMES)("%s: pixel_values within 1e-6, resized bytes exact", async (name) => {
    const c = await loadSafetyCase(name);
    const images = caseImages(c);
    const { pixelValues, batch, height, width } = extractFeatures(images, settings);
    expect([batch, height, width]).toEqual([c.batch, 224, 224]);
    const diff = maxAbsDiff(pixelValues, c.pixelValues);
    console.log(`${name}: pixel_values max |diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(PIXEL_VALUES_TOLERANCE);

    const plane = 224 * 224;
    let mismatched = 0;
    images.forEach((image, b) => {
      const cropped = resizeAndCrop(image, settings);
      for (let ch = 0; ch < 3; ch++) {
        for (let p = 0; p < plane; p++) {
          const v = c.pixelValues[(b * 3 + ch) * plane + p];
          const referenceByte = Math.round((v * settings.imageStd[ch] + settings.imageMean[ch]) * 255);
          if (cropped.data[p * 3 + ch] !== referenceByte) mismatched++;
        }
      }
    });
    expect(mismatched).toBe(0);
  });

  it("numpy_to_pil: unitHwcToRgba8 of images_float gives `images` exactly", async () => {
    for (const name of SAFETY_CASE_NAMES) {
      const c = await loadSafetyCase(name);
      const size = c.width * c.height;
      for (let b = 0; b < c.batch; b++) {
        const rgba = unitHwcToRgba8(c.imagesFloat.subarray(b * size * 3, (b + 1) * size * 3), c.width, c.height);
        const rgb = new Uint8Array(size * 3);
        for (let p = 0; p < size; p++) rgb.set(rgba.subarray(4 * p, 4 * p + 3), 3 * p);
        expect(Buffer.from(rgb).equals(Buffer.from(c.images.subarray(b * size * 3, (b + 1) * size * 3))), `${name} image ${b}`).toBe(true);
      }
    }
  });

  it("one batch of images of different sizes gives each image's own pixel_values; RGBA reads as RGB", async () => {
    const small = await loadSafetyCase("pipeline_64x64_b10");
    const wide = await loadSafetyCase("synthetic_96x64_grad");
    const toRgba = (image: RgbImage): RgbImage => {
      const data = new Uint8Array(image.width * image.height * 4);
      for (let p = 0; p < image.width * image.height; p++) {
        data.set(image.data.subarray(3 * p, 3 * p + 3), 4 * p);
        data[4 * p + 3] = p % 251; // alpha is ignored, whatever it holds
      }
      return { data, width: image.width, height: image.height, channels: 4 };
    };
    const { pixelValues, batch } = extractFeatures([caseImages(wide)[0], toRgba(caseImages(small)[3])], settings);
    const one = 3 * 224 * 224;
    expect(batch).toBe(2);
    expect(maxAbsDiff(pixelValues.subarray(0, one), wide.pixelValues)).toBeLessThanOrEqual(PIXEL_VALUES_TOLERANCE);
    expect(maxAbsDiff(pixelValues.subarray(one), small.pixelValues.subarray(3 * one, 4 * one))).toBeLessThanOrEqual(PIXEL_VALUES_TOLERANCE);
  });
});

describe("resize size and Pillow's bicubic", () => {
  it("the shorter side becomes size, the longer int(size * long / short); a shorter side of size is kept", () => {
    expect(resizedSize(64, 64, 224)).toEqual({ width: 224, height: 224 });
    expect(resizedSize(96, 64, 224)).toEqual({ width: 336, height: 224 });
    expect(resizedSize(64, 96, 224)).toEqual({ width: 224, height: 336 });
    expect(resizedSize(7, 3, 224)).toEqual({ width: 522, height: 224 }); // 522.67 truncated
    expect(resizedSize(512, 768, 224)).toEqual({ width: 224, height: 336 });
    expect(resizedSize(224, 500, 224)).toEqual({ width: 224, height: 500 });
    expect(resizedSize(224, 224, 224)).toEqual({ width: 224, height: 224 });
  });

  it("a uniform image stays uniform at every byte value, up and down", () => {
    for (const [w, h, ow, oh] of [[64, 64, 224, 224], [512, 512, 224, 224], [96, 64, 336, 224], [5, 300, 224, 7]]) {
      const data = new Uint8Array(w * h * 3);
      for (let p = 0; p < w * h; p++) data.set([p % 256, 255 - (p % 256), 77], 3 * p);
      for (const value of [0, 1, 127, 128, 254, 255]) {
        data.fill(value);
        const out = resizeBicubic({ data, width: w, height: h, channels: 3 }, ow, oh);
        expect([out.width, out.height]).toEqual([ow, oh]);
        expect(out.data.every((v) => v === value), `${w}x${h} -> ${ow}x${oh} of ${value}`).toBe(true);
      }
    }
  });

  it("coefficients: a 2x upscale's first window, worked by hand", () => {
    // center 0.25, window [0, 2): bicubic(0.25) = 0.8671875, bicubic(1.25) = -0.0703125, sum 0.796875.
    const { ksize, first, count, weights } = bicubicCoefficients(4, 8);
    expect([ksize, first[0], count[0]]).toEqual([5, 0, 2]);
    expect(weights[0]).toBe(Math.trunc(0.5 + (0.8671875 / 0.796875) * 2 ** 22));
    expect(weights[1]).toBe(Math.trunc(-0.5 + (-0.0703125 / 0.796875) * 2 ** 22));
    // Shrinking 512 -> 224 widens the support to 2 * 512/224: windows of up to 2 * ceil(4.57) + 1 taps.
    expect(bicubicCoefficients(512, 224).ksize).toBe(11);
  });

  it("overshoot clips to 0..255: a hard edge upscaled rings inside the byte range", () => {
    const data = new Uint8Array(8 * 1 * 3);
    data.fill(255, 12); // left half 0, right half 255
    const out = resizeBicubic({ data, width: 8, height: 1, channels: 3 }, 32, 1);
    const row = Array.from({ length: 32 }, (_, x) => out.data[3 * x]);
    expect(row.slice(0, 8).every((v) => v === 0)).toBe(true);
    expect(row.slice(24).every((v) => v === 255)).toBe(true);
    expect(row.slice(8, 24).some((v) => v > 0 && v < 255)).toBe(true);
  });
});

describe("crop and settings", () => {
  it("a crop larger than the image is filled with 0 bytes, as Pillow's crop", () => {
    const image: RgbImage = { data: new Uint8Array(2 * 2 * 3).fill(200), width: 2, height: 2, channels: 3 };
    const cropped = resizeAndCrop(image, { ...settings, doResize: false, cropSize: 4 });
    // top = left = (2 - 4) // 2 = -1: the image lands at rows and columns 1..2.
    const at = (x: number, y: number) => cropped.data[(y * 4 + x) * 3];
    expect([at(0, 0), at(1, 1), at(2, 2), at(3, 3), at(1, 3), at(3, 1)]).toEqual([0, 200, 200, 0, 0, 0]);
  });

  it("bad settings are coded JSD_BAD_MODEL errors; bad images JSD_INVALID_ARGUMENT", () => {
    const image: RgbImage = { data: new Uint8Array(64 * 64 * 3), width: 64, height: 64, channels: 3 };
    const bad: Partial<Record<keyof FeatureExtractorSettings, unknown>>[] = [
      { resample: 2 },
      { resample: 1 },
      { doNormalize: false },
      { size: 0 },
      { cropSize: 2.5 },
      { doResize: "yes" },
      { imageMean: [0.5, 0.5] },
      { imageStd: [0.2, 0, 0.2] },
      { imageStd: [0.2, Number.NaN, 0.2] },
    ];
    for (const change of bad) {
      expect(codeOf(() => extractFeatures([image], { ...settings, ...change } as FeatureExtractorSettings)), JSON.stringify(change)).toBe("JSD_BAD_MODEL");
    }
    expect(codeOf(() => extractFeatures([], settings))).toBe("JSD_INVALID_ARGUMENT");
    expect(codeOf(() => extractFeatures([{ ...image, width: 63 }], settings))).toBe("JSD_INVALID_ARGUMENT");
    expect(codeOf(() => extractFeatures([{ ...image, channels: 2 as 3 }], settings))).toBe("JSD_INVALID_ARGUMENT");
    const uncropped = { ...settings, doCenterCrop: false };
    expect(codeOf(() => extractFeatures([image, { data: new Uint8Array(96 * 64 * 3), width: 96, height: 64, channels: 3 }], uncropped))).toBe("JSD_INVALID_ARGUMENT");
    expect(codeOf(() => resizeBicubic(image, 0, 10))).toBe("JSD_INVALID_ARGUMENT");
  });
});

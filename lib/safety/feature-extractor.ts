// transformers 4.25's CLIPFeatureExtractor (rinna's `feature_extractor/`), on 8-bit RGB pixels, as
// diffusers 0.8.1's `run_safety_checker` calls it on `numpy_to_pil(image)`:
//
// 1. resize (`ImageFeatureExtractionMixin.resize`, default_to_square=False): the shorter side
//    becomes `size` and the longer `int(size * long / short)` (Python's true division, then
//    truncation); an image whose shorter side already is `size` is left as it is (a square one
//    included). The resize is Pillow's bicubic (./pillow-bicubic.ts).
// 2. centre crop (`center_crop` on a PIL image): top = (height - crop) // 2, left = (width - crop) // 2
//    (floor division), `image.crop(...)`; Pillow fills what lies outside the image with 0.
// 3. normalize: `to_numpy_array(rescale=True)`: `u8.astype(float32) * (1 / 255.0)`, which numpy
//    does in float32 (the Python scalar becomes float32(1/255)); then `(x - mean) / std` with mean
//    and std cast to float32, in float32. Channels first. (The reference cases were made with
//    transformers 5.17, which rescales in float64 and then rounds, i.e. float32(u / 255): 325 of the
//    768 channel-and-byte values differ from 4.25's by one or two float32 ulps, at most 4.8e-7.)
// The batch is stacked as float32 NCHW `[B, 3, crop, crop]` (BatchFeature with return_tensors="pt").
import { JsdError, JsdRangeError, JsdTypeError } from "../errors.js";
import { MAX_RESAMPLE_SIDE, resizeBicubic, type PackedImage } from "./pillow-bicubic.js";

/** PIL's `Image.BICUBIC`, the only resample filter implemented here (and the one every CLIP config names). */
export const PIL_BICUBIC = 3;

/** A feature extractor's settings: `feature_extractor/preprocessor_config.json`, as the model file stores them. */
export interface FeatureExtractorSettings {
  size: number;
  cropSize: number;
  doResize: boolean;
  doCenterCrop: boolean;
  doNormalize: boolean;
  /** PIL's filter number; must be 3 (bicubic). */
  resample: number;
  imageMean: readonly [number, number, number];
  imageStd: readonly [number, number, number];
}

/** An 8-bit image: RGB (`channels` 3) or RGBA (4, the alpha is ignored, as PIL's convert("RGB")). */
export interface RgbImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 3 | 4;
}

/** The feature extractor's output: float32 NCHW `[batch, 3, height, width]`. */
export interface PixelValues {
  pixelValues: Float32Array;
  batch: number;
  height: number;
  width: number;
}

function badSettings(why: string): JsdError {
  return new JsdError("JSD_BAD_MODEL", `feature extractor settings: ${why}`);
}

/**
 * Checks settings as they come from a model file: a coded JSD_BAD_MODEL error for anything the
 * reference would not run with (a filter other than bicubic, do_normalize false, which makes 4.25's
 * extractor return PIL images instead of pixel values, sizes out of range, a zero std).
 */
export function checkFeatureExtractorSettings(settings: FeatureExtractorSettings): FeatureExtractorSettings {
  if (settings === null || typeof settings !== "object") throw badSettings("not an object");
  for (const name of ["size", "cropSize"] as const) {
    const v = settings[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > MAX_RESAMPLE_SIDE) throw badSettings(`${name} must be an integer from 1 to ${MAX_RESAMPLE_SIDE}, got ${String(v)}`);
  }
  for (const name of ["doResize", "doCenterCrop", "doNormalize"] as const) {
    if (typeof settings[name] !== "boolean") throw badSettings(`${name} must be a boolean, got ${String(settings[name])}`);
  }
  if (settings.resample !== PIL_BICUBIC) throw badSettings(`resample is ${String(settings.resample)}: only ${PIL_BICUBIC} (PIL's BICUBIC) is implemented`);
  if (!settings.doNormalize) throw badSettings("do_normalize is false: transformers 4.25's CLIPFeatureExtractor then returns PIL images, not pixel values");
  for (const name of ["imageMean", "imageStd"] as const) {
    const v = settings[name];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) throw badSettings(`${name} must be 3 finite numbers`);
  }
  if (settings.imageStd.some((s) => Math.fround(s) === 0)) throw badSettings("imageStd has a zero");
  return settings;
}

/** The resize's output size for a `width` x `height` image (transformers 4.25's rule, shorter side to `size`). */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  const [short, long] = width <= height ? [width, height] : [height, width];
  if (short === size) return { width, height };
  // int(size * long / short): Python multiplies the ints exactly, divides in double, truncates.
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? { width: size, height: newLong } : { width: newLong, height: size };
}

function checkImage(image: RgbImage, index: number): void {
  const { data, width, height, channels } = image;
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) throw new JsdTypeError(`image ${index}: pixels must be a Uint8Array`);
  if (channels !== 3 && channels !== 4) throw new JsdRangeError(`image ${index}: channels must be 3 (RGB) or 4 (RGBA), got ${String(channels)}`);
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_RESAMPLE_SIDE) throw new JsdRangeError(`image ${index}: ${name} must be an integer from 1 to ${MAX_RESAMPLE_SIDE}, got ${v}`);
  }
  if (data.length !== width * height * channels) throw new JsdRangeError(`image ${index} has ${data.length} bytes, expected ${width}x${height}x${channels}`);
}

/**
 * Steps 1 and 2: the image resized (when do_resize) and centre cropped (when do_center_crop), as
 * 8-bit pixels in the input's layout; what `to_numpy_array` then reads.
 */
export function resizeAndCrop(image: RgbImage, settings: FeatureExtractorSettings): PackedImage {
  const target = settings.doResize ? resizedSize(image.width, image.height, settings.size) : image;
  const src: PackedImage = target.width === image.width && target.height === image.height ? image : resizeBicubic(image, target.width, target.height);
  if (!settings.doCenterCrop) return src;
  const crop = settings.cropSize;
  const top = Math.floor((src.height - crop) / 2);
  const left = Math.floor((src.width - crop) / 2);
  const { channels } = src;
  const out = new Uint8Array(crop * crop * channels);
  for (let y = 0; y < crop; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= src.height) continue;
    // Columns inside the image; the rest stay 0, as Pillow's crop fills them.
    const x0 = Math.max(0, -left);
    const x1 = Math.min(crop, src.width - left);
    if (x1 > x0) out.set(src.data.subarray((sy * src.width + left + x0) * channels, (sy * src.width + left + x1) * channels), (y * crop + x0) * channels);
  }
  return { data: out, width: crop, height: crop, channels };
}

/**
 * Step 3 for one channel, as a table over the 256 byte values: `float32(u) * float32(1 / 255)`,
 * minus float32(mean), divided by float32(std), each step rounded to float32 as numpy does.
 */
function normalizeTable(mean: number, std: number): Float32Array {
  const scale = Math.fround(1 / 255);
  const m = Math.fround(mean);
  const s = Math.fround(std);
  const table = new Float32Array(256);
  for (let u = 0; u < 256; u++) table[u] = Math.fround(Math.fround(u * scale) - m) / s;
  return table;
}

/**
 * `feature_extractor(images, return_tensors="pt").pixel_values`: each image resized, centre
 * cropped and normalised, stacked NCHW. The images must come out the same size (they do with
 * do_center_crop, as in every CLIP config).
 */
export function extractFeatures(images: readonly RgbImage[], settingsIn: FeatureExtractorSettings): PixelValues {
  const settings = checkFeatureExtractorSettings(settingsIn);
  if (!Array.isArray(images) || images.length === 0) throw new JsdRangeError("images must be a non-empty array");
  images.forEach(checkImage);
  const tables = [0, 1, 2].map((c) => normalizeTable(settings.imageMean[c], settings.imageStd[c]));
  const cropped = images.map((image) => resizeAndCrop(image, settings));
  const { width, height } = cropped[0];
  const plane = width * height;
  const pixelValues = new Float32Array(cropped.length * 3 * plane);
  cropped.forEach((src, b) => {
    if (src.width !== width || src.height !== height) {
      throw new JsdRangeError(`image ${b} comes out ${src.width}x${src.height}, image 0 ${width}x${height}: the batch cannot be stacked`);
    }
    for (let c = 0; c < 3; c++) {
      const table = tables[c];
      const base = (b * 3 + c) * plane;
      for (let p = 0; p < plane; p++) pixelValues[base + p] = table[src.data[p * src.channels + c]];
    }
  });
  return { pixelValues, batch: cropped.length, height, width };
}

// diffusers 0.8.1's `run_safety_checker` as a pure function over an injected checker: the feature
// extractor on the 8-bit images (what `numpy_to_pil` gives), the vision tower and projection in one
// batched call (`embedImages`, the engine's), then the decisions; a flagged image comes back black
// (diffusers zeroes the float image, and `numpy_to_pil` of zeros is black; an alpha channel stays opaque).
import { JsdError } from "../errors.js";
import { decideFromEmbeddings, type ConceptTables, type SafetyDecision } from "./decisions.js";
import { extractFeatures, type FeatureExtractorSettings, type RgbImage } from "./feature-extractor.js";

/** What checkImages needs of a model's safety checker: its settings and tables, and the vision tower. */
export interface SafetyCheckerPort extends ConceptTables {
  featureExtractor: FeatureExtractorSettings;
  /**
   * `visual_projection(vision_model(pixel_values).pooler_output)`: float32 `[batch, projectionDim]`
   * for float32 NCHW `pixelValues` `[batch, 3, crop, crop]`.
   */
  embedImages(pixelValues: Float32Array, batch: number): Promise<Float32Array>;
}

/** One image after the check. */
export interface CheckedImage {
  /** diffusers' `nsfw_content_detected` for this image. */
  nsfwContentDetected: boolean;
  /** The pixels, in the input's layout: the input's own where not flagged, black (alpha 255) where flagged. */
  image: RgbImage;
  /** The scores behind the decision. */
  decision: SafetyDecision;
}

/** The image diffusers returns for a flagged one: zeros, with an alpha channel (if any) left opaque. */
function blackLike(image: RgbImage): RgbImage {
  const data = new Uint8Array(image.data.length);
  if (image.channels === 4) for (let i = 3; i < data.length; i += 4) data[i] = 255;
  return { data, width: image.width, height: image.height, channels: image.channels };
}

/**
 * Runs the safety checker over the images of one call (RGB or RGBA8, any sizes: the centre crop
 * makes them one batch) and returns, per image, the decision and the image to show.
 */
export async function checkImages(images: readonly RgbImage[], checker: SafetyCheckerPort): Promise<CheckedImage[]> {
  const { pixelValues, batch } = extractFeatures(images, checker.featureExtractor);
  const embeds = await checker.embedImages(pixelValues, batch);
  if (!(embeds instanceof Float32Array) || embeds.length !== batch * checker.projectionDim) {
    throw new JsdError("JSD_INTERNAL", `the safety checker's vision tower returned ${String((embeds as { length?: unknown } | null)?.length)} values for ${batch} images of ${checker.projectionDim}`);
  }
  const { decisions } = decideFromEmbeddings(embeds, checker);
  return images.map((image, i) => ({
    nsfwContentDetected: decisions[i].nsfw,
    image: decisions[i].nsfw ? blackLike(image) : image,
    decision: decisions[i],
  }));
}

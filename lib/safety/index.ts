// The safety checker of rinna's pipeline (diffusers 0.8.1's StableDiffusionSafetyChecker with
// transformers 4.25's CLIPFeatureExtractor), the parts in TypeScript: the feature extractor, the
// decisions, and the orchestration over an injected vision tower.
export { checkImages, type CheckedImage, type SafetyCheckerPort } from "./check.js";
export {
  checkConceptTables,
  conceptScore,
  cosineDistance,
  decide,
  decideFromEmbeddings,
  roundScore,
  SPECIAL_CARE_ADJUSTMENT,
  type ConceptTables,
  type SafetyDecision,
} from "./decisions.js";
export {
  checkFeatureExtractorSettings,
  extractFeatures,
  PIL_BICUBIC,
  resizeAndCrop,
  resizedSize,
  type FeatureExtractorSettings,
  type PixelValues,
  type RgbImage,
} from "./feature-extractor.js";
export { bicubicCoefficients, resizeBicubic, type AxisCoefficients, type PackedImage } from "./pillow-bicubic.js";

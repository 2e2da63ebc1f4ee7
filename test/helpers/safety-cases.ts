// The safety checker's reference cases (test/fixtures/reference/safety_checker/, format in its README)
// and the tiny checker's tables and feature-extractor settings (test/fixtures/tiny-safety-checker/).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { openCheckpoint } from "../../lib/formats/checkpoint.js";
import { readSafetensors, toFloat32, type RawTensor } from "../../lib/formats/safetensors.js";
import type { ConceptTables, FeatureExtractorSettings, SafetyCheckerPort } from "../../lib/safety/index.js";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;
const casesDir = join(fixtures, "reference", "safety_checker");
const checkerDir = join(fixtures, "tiny-safety-checker");

export interface SafetyCase {
  name: string;
  batch: number;
  height: number;
  width: number;
  /** u8 [B, H, W, 3] */
  images: Uint8Array;
  /** f32 [B, H, W, 3] */
  imagesFloat: Float32Array;
  /** f32 [B, 3, 224, 224] */
  pixelValues: Float32Array;
  /** f32 [B, projection_dim] */
  imageEmbeds: Float32Array;
  /** f32 [B, 17] */
  cosDist: Float32Array;
  /** f32 [B, 3] */
  specialCosDist: Float32Array;
  /** u8 [B] */
  hasNsfwConcepts: Uint8Array;
  /** u8 [B, H, W, 3] */
  checkedImages: Uint8Array;
}

function u8(tensor: RawTensor | undefined, name: string): Uint8Array {
  if (!tensor || tensor.dtype !== "U8") throw new Error(`case tensor ${name} is missing or not U8`);
  return tensor.data;
}

function f32(tensor: RawTensor | undefined, name: string): Float32Array {
  if (!tensor) throw new Error(`case tensor ${name} is missing`);
  return toFloat32(tensor);
}

export const SAFETY_CASE_NAMES: readonly string[] = readdirSync(casesDir)
  .filter((f) => f.endsWith(".safetensors"))
  .map((f) => f.replace(/\.safetensors$/, ""))
  .sort();

export async function loadSafetyCase(name: string): Promise<SafetyCase> {
  const { tensors, metadata } = await readSafetensors(join(casesDir, `${name}.safetensors`));
  if (metadata.kind !== "safety_checker") throw new Error(`${name}: kind is ${metadata.kind}`);
  const get = (n: string): RawTensor | undefined => tensors.get(n);
  const [batch, height, width] = get("images")?.shape ?? [];
  return {
    name,
    batch,
    height,
    width,
    images: u8(get("images"), "images"),
    imagesFloat: f32(get("images_float"), "images_float"),
    pixelValues: f32(get("pixel_values"), "pixel_values"),
    imageEmbeds: f32(get("image_embeds"), "image_embeds"),
    cosDist: f32(get("cos_dist"), "cos_dist"),
    specialCosDist: f32(get("special_cos_dist"), "special_cos_dist"),
    hasNsfwConcepts: u8(get("has_nsfw_concepts"), "has_nsfw_concepts"),
    checkedImages: u8(get("checked_images"), "checked_images"),
  };
}

/** The tiny checker's preprocessor_config.json, as the model file will carry it. */
export function tinyFeatureExtractorSettings(): FeatureExtractorSettings {
  const json = JSON.parse(readFileSync(join(checkerDir, "feature_extractor", "preprocessor_config.json"), "utf8")) as Record<string, unknown>;
  return {
    size: json.size as number,
    cropSize: json.crop_size as number,
    doResize: json.do_resize as boolean,
    doCenterCrop: json.do_center_crop as boolean,
    doNormalize: json.do_normalize as boolean,
    resample: json.resample as number,
    imageMean: json.image_mean as [number, number, number],
    imageStd: json.image_std as [number, number, number],
  };
}

/** The concept tables of the tiny checker's pytorch_model.bin, read with the package's own torch checkpoint reader. */
export async function tinyConceptTables(): Promise<ConceptTables> {
  const reader = await openCheckpoint(join(checkerDir, "safety_checker", "pytorch_model.bin"));
  try {
    const read = async (name: string) => toFloat32(await reader.read(name));
    const conceptEmbeds = await read("concept_embeds");
    return {
      conceptEmbeds,
      conceptWeights: await read("concept_embeds_weights"),
      specialCareEmbeds: await read("special_care_embeds"),
      specialCareWeights: await read("special_care_embeds_weights"),
      projectionDim: reader.info("concept_embeds").shape[1],
    };
  } finally {
    await reader.close();
  }
}

/** Each case's images in one embedImages call of the checker. */
export function embedWith(checker: Pick<SafetyCheckerPort, "embedImages">): (c: SafetyCase) => Promise<Float32Array> {
  return (c) => checker.embedImages(c.pixelValues, c.batch);
}

/** The largest |image_embeds - reference| over the cases; NaN where a case's embeddings have another size. */
export async function maxEmbedError(cases: readonly SafetyCase[], embed: (c: SafetyCase) => Promise<ArrayLike<number>>): Promise<number> {
  let worst = 0;
  for (const c of cases) {
    const embeds = await embed(c);
    if (embeds.length !== c.imageEmbeds.length) return NaN;
    for (let i = 0; i < embeds.length; i++) worst = Math.max(worst, Math.abs(embeds[i] - c.imageEmbeds[i]));
  }
  return worst;
}

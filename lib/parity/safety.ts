// The safety checker's reference cases (kind "safety_checker"): each stage of diffusers 0.8.1's
// `run_safety_checker` measured against the reference, each with its own tolerance (issue 19):
//   pixel_values      ≤ 1e-6   the feature extractor on the case's 8-bit images
//   image_embeds      ≤ 1e-4   the vision tower and projection on the reference pixel_values
//   cos_dist          ≤ 1e-5   both cosine tables, from this model's embeddings
//   decisions, checked_images: exact (the whole chain from the 8-bit images, as generate() runs it)
// A quantized or f16 file moves the embeddings by more: its lines report the errors against the
// f32 tolerances, and the decisions line says whether each decision still holds.
import { JsdError } from "../errors.js";
import { toFloat32, type RawTensor } from "../formats/safetensors.js";
import { checkImages, decideFromEmbeddings, extractFeatures, type SafetyCheckerPort } from "../safety/index.js";
import type { CaseFile } from "./cases.js";
import { compareArrays, type ErrorStats } from "./compare.js";

export const SAFETY_TOLERANCES = { pixelValues: 1e-6, imageEmbeds: 1e-4, cosDist: 1e-5 } as const;

export interface SafetyLine {
  name: string;
  stats: ErrorStats;
  pass: boolean;
  note?: string;
}

function raw(c: CaseFile, name: string): RawTensor {
  const t = c.tensors.get(name);
  if (!t) throw new JsdError("JSD_BAD_FILE", `${c.path} lacks tensor '${name}'`);
  return t;
}

function bytes(c: CaseFile, name: string): Uint8Array {
  const t = raw(c, name);
  if (t.dtype !== "U8") throw new JsdError("JSD_BAD_FILE", `${c.path}: tensor '${name}' is ${t.dtype}, not U8`);
  return t.data;
}

export async function runSafetyCase(checker: SafetyCheckerPort | null, c: CaseFile): Promise<SafetyLine[]> {
  if (checker === null) throw new JsdError("JSD_NO_SAFETY_CHECKER", "the model file has no safety checker (convert a folder with one, without --no-safety-checker)");
  const [batch, height, width] = raw(c, "images").shape;
  const images = bytes(c, "images");
  const plane = height * width * 3;
  const rgb = Array.from({ length: batch }, (_, b) => ({ data: images.subarray(b * plane, (b + 1) * plane), width, height, channels: 3 as const }));

  const pixelValues = extractFeatures(rgb, checker.featureExtractor).pixelValues;
  const referencePixels = toFloat32(raw(c, "pixel_values"));
  const pixelStats = compareArrays(pixelValues, referencePixels);

  const embeds = await checker.embedImages(referencePixels, batch);
  const embedStats = compareArrays(embeds, toFloat32(raw(c, "image_embeds")));
  const { cosDist, specialCosDist } = decideFromEmbeddings(embeds, checker);
  const cosStats = compareArrays([...cosDist, ...specialCosDist], [...toFloat32(raw(c, "cos_dist")), ...toFloat32(raw(c, "special_cos_dist"))]);

  const checked = await checkImages(rgb, checker);
  const flags = checked.map((i) => (i.nsfwContentDetected ? 1 : 0));
  const expectedFlags = [...bytes(c, "has_nsfw_concepts")];
  const decisionStats = compareArrays(flags, expectedFlags);
  const checkedPixels = new Uint8Array(batch * plane);
  checked.forEach((i, b) => checkedPixels.set(i.image.data, b * plane));
  const checkedStats = compareArrays(checkedPixels, bytes(c, "checked_images"));
  const flagged = flags.filter(Boolean).length;

  return [
    { name: `${c.name}:pixel_values`, stats: pixelStats, pass: pixelStats.maxAbs <= SAFETY_TOLERANCES.pixelValues },
    { name: `${c.name}:image_embeds`, stats: embedStats, pass: embedStats.maxAbs <= SAFETY_TOLERANCES.imageEmbeds },
    { name: `${c.name}:cos_dist`, stats: cosStats, pass: cosStats.maxAbs <= SAFETY_TOLERANCES.cosDist },
    { name: `${c.name}:decisions`, stats: decisionStats, pass: decisionStats.maxAbs === 0, note: `${flagged} of ${batch} flagged; reference ${expectedFlags.filter(Boolean).length}` },
    { name: `${c.name}:checked_images`, stats: checkedStats, pass: checkedStats.maxAbs === 0 },
  ];
}

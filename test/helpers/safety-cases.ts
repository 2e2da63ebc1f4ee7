// The safety checker's reference cases (test/fixtures/reference/safety_checker) run through a
// model's embedImages, each case's images in one call, and their error against the reference.
import { join } from "node:path";
import { toFloat32 } from "../../lib/formats/safetensors.js";
import type { Model } from "../../lib/model.js";
import { readCases, type CaseFile } from "../../lib/parity/cases.js";
import { referenceCases } from "./models.js";

export function readSafetyCases(): Promise<CaseFile[]> {
  return readCases(join(referenceCases, "safety_checker"));
}

/** Each case's image_embeds as the model computes them. */
export async function embedCases(model: Pick<Model, "embedImages">, cases: CaseFile[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const c of cases) {
    const pixels = c.tensors.get("pixel_values")!;
    out.push(await model.embedImages(toFloat32(pixels), pixels.shape[0]));
  }
  return out;
}

/** The largest |embeds - reference image_embeds| over every case; NaN where the sizes differ. */
export function maxEmbedError(embeds: ArrayLike<number>[], cases: CaseFile[]): number {
  let worst = 0;
  cases.forEach((c, i) => {
    const reference = toFloat32(c.tensors.get("image_embeds")!);
    if (embeds[i].length !== reference.length) worst = NaN;
    for (let j = 0; j < reference.length; j++) worst = Math.max(worst, Math.abs(embeds[i][j] - reference[j]));
  });
  return worst;
}

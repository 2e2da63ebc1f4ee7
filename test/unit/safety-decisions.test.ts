// The safety checker's decisions (lib/safety/decisions.ts) and orchestration (lib/safety/check.ts):
// against the reference cases (test/fixtures/reference/safety_checker/) with the concept tables of
// the tiny checker's pytorch_model.bin, read by the package's own torch checkpoint reader; then
// hand-made edge cases of diffusers 0.8.1's rule.
//
// Tolerances:
// - cos_dist, special_cos_dist from the reference image_embeds: max |ours - reference| <= 1e-5
//   (the issue's; measured about 1e-7);
// - has_nsfw_concepts and checked_images: exact;
// - checkImages is fed by an embedImages that returns the reference image_embeds only when it is
//   given pixel_values within 1e-6 of the reference (the feature extractor's tolerance).
import { describe, expect, it } from "vitest";
import { isJsdError } from "../../lib/errors.js";
import { unitHwcToRgba8 } from "../../lib/image/convert.js";
import {
  checkImages,
  cosineDistance,
  decide,
  decideFromEmbeddings,
  roundScore,
  type ConceptTables,
  type RgbImage,
  type SafetyCheckerPort,
} from "../../lib/safety/index.js";
import { loadSafetyCase, SAFETY_CASE_NAMES, tinyConceptTables, tinyFeatureExtractorSettings, type SafetyCase } from "../helpers/safety-cases.js";

const COS_TOLERANCE = 1e-5;
const PIXEL_VALUES_TOLERANCE = 1e-6;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

async function codeOf(run: () => unknown): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    return isJsdError(error) ? error.code : `uncoded: ${String(error)}`;
  }
  return undefined;
}

/** A checker whose vision tower answers the reference embeddings for the reference pixel_values, and nothing else. */
function referenceChecker(c: SafetyCase, tables: ConceptTables): SafetyCheckerPort & { calls: number[] } {
  const calls: number[] = [];
  return {
    ...tables,
    featureExtractor: tinyFeatureExtractorSettings(),
    calls,
    embedImages: async (pixelValues, batch) => {
      calls.push(batch);
      if (batch !== c.batch || maxAbsDiff(pixelValues, c.pixelValues) > PIXEL_VALUES_TOLERANCE) throw new Error("not the reference pixel_values");
      return c.imageEmbeds;
    },
  };
}

describe("decisions against the reference cases", () => {
  it("the concept tables of pytorch_model.bin have the tiny checker's shapes", async () => {
    const t = await tinyConceptTables();
    expect([t.projectionDim, t.conceptEmbeds.length, t.conceptWeights.length, t.specialCareEmbeds.length, t.specialCareWeights.length]).toEqual([16, 17 * 16, 17, 3 * 16, 3]);
  });

  it.each(SAFETY_CASE_NAMES)("%s: cosine distances within 1e-5, has_nsfw_concepts exact", async (name) => {
    const c = await loadSafetyCase(name);
    const tables = await tinyConceptTables();
    const { cosDist, specialCosDist, decisions } = decideFromEmbeddings(c.imageEmbeds, tables);
    const cos = maxAbsDiff(cosDist, c.cosDist);
    const special = maxAbsDiff(specialCosDist, c.specialCosDist);
    console.log(`${name}: cos_dist max |diff| ${cos.toExponential(2)}, special_cos_dist ${special.toExponential(2)}`);
    expect(cos).toBeLessThanOrEqual(COS_TOLERANCE);
    expect(special).toBeLessThanOrEqual(COS_TOLERANCE);
    expect(decisions.map((d) => (d.nsfw ? 1 : 0))).toEqual(Array.from(c.hasNsfwConcepts));
    // The reference's own similarities decide the same.
    expect(decide(c.cosDist, c.specialCosDist, tables).map((d) => d.nsfw)).toEqual(decisions.map((d) => d.nsfw));
  });

  it("the cases flag some images and pass others, and some are special care", async () => {
    const tables = await tinyConceptTables();
    const all = (await Promise.all(SAFETY_CASE_NAMES.map(loadSafetyCase))).flatMap((c) => decideFromEmbeddings(c.imageEmbeds, tables).decisions);
    expect(all.some((d) => d.nsfw)).toBe(true);
    expect(all.some((d) => !d.nsfw)).toBe(true);
    console.log(`flagged ${all.filter((d) => d.nsfw).length} of ${all.length}, special care ${all.filter((d) => d.specialCare).length}`);
  });

  it.each(SAFETY_CASE_NAMES)("%s: checkImages on the pipeline's RGBA8 pixels gives checked_images exactly, in one batch call", async (name) => {
    const c = await loadSafetyCase(name);
    const checker = referenceChecker(c, await tinyConceptTables());
    const size = c.width * c.height;
    const images: RgbImage[] = Array.from({ length: c.batch }, (_, b) => ({
      data: unitHwcToRgba8(c.imagesFloat.subarray(b * size * 3, (b + 1) * size * 3), c.width, c.height),
      width: c.width,
      height: c.height,
      channels: 4,
    }));
    const checked = await checkImages(images, checker);
    expect(checker.calls).toEqual([c.batch]);
    expect(checked.map((r) => (r.nsfwContentDetected ? 1 : 0))).toEqual(Array.from(c.hasNsfwConcepts));
    checked.forEach((r, b) => {
      expect(r.image.channels).toBe(4);
      const rgb = new Uint8Array(size * 3);
      let transparent = 0;
      for (let p = 0; p < size; p++) {
        rgb.set(r.image.data.subarray(4 * p, 4 * p + 3), 3 * p);
        if (r.image.data[4 * p + 3] !== 255) transparent++;
      }
      expect(transparent).toBe(0);
      expect(Buffer.from(rgb).equals(Buffer.from(c.checkedImages.subarray(b * size * 3, (b + 1) * size * 3))), `image ${b}`).toBe(true);
    });
  });
});

// Hand-made tables: thresholds 0.5 everywhere, so that a similarity of 0.5 + d scores round(d, 3).
function tables(concepts: number, specials: number): ConceptTables {
  return {
    conceptEmbeds: new Float32Array(concepts * 2).fill(1),
    conceptWeights: new Float32Array(concepts).fill(0.5),
    specialCareEmbeds: new Float32Array(specials * 2).fill(1),
    specialCareWeights: new Float32Array(specials).fill(0.5),
    projectionDim: 2,
  };
}
const f32 = (values: number[]) => Float32Array.from(values.map((v) => 0.5 + v));

describe("diffusers 0.8.1's decision rule, edge cases", () => {
  it("a score that rounds to 0.000 is not > 0; one that rounds to 0.001 is", () => {
    const [quiet] = decide(f32([0.0004]), f32([-0.1]), tables(1, 1));
    expect(quiet.conceptScores).toEqual([0]);
    expect(quiet.nsfw).toBe(false);
    const [flagged] = decide(f32([0.0006]), f32([-0.1]), tables(1, 1));
    expect(flagged.conceptScores).toEqual([0.001]);
    expect(flagged.nsfw).toBe(true);
    const [negative] = decide(f32([-0.0004]), f32([-0.1]), tables(1, 1));
    expect(negative.nsfw).toBe(false);
  });

  it("round(x, 3) is numpy's (rint(x * 1000) / 1000, ties to even), not Python's decimal round", () => {
    expect(roundScore(0.0005)).toBe(0); // Python's round(0.0005, 3) is 0.001
    expect(roundScore(0.0015)).toBe(0.002);
    expect(roundScore(0.0025)).toBe(0.002); // Python's gives 0.003
    expect(roundScore(-0.0126)).toBe(-0.013);
    expect(roundScore(0.1234)).toBe(0.123);
  });

  it("a special-care hit adds 0.01 to every later score, and that changes the decision", () => {
    const t = tables(2, 2);
    const [without] = decide(f32([-0.005, -0.02]), f32([-0.002, -0.1]), t);
    expect([without.specialCare, without.nsfw]).toEqual([false, false]);
    const [withCare] = decide(f32([-0.005, -0.02]), f32([0.002, -0.1]), t);
    expect([withCare.specialCare, withCare.nsfw, withCare.badConcepts]).toEqual([true, true, [0]]);
    expect(withCare.conceptScores).toEqual([0.005, -0.01]);
  });

  it("the adjustment reaches the later special concepts, not the earlier ones, and is reset per image", () => {
    const t = tables(1, 2);
    const [forward, backward, next] = decide(f32([-0.005, -0.005, -0.005]), f32([0.002, -0.008, -0.008, 0.002, -0.1, -0.1]), t);
    expect(forward.specialCareConcepts).toEqual([0, 1]);
    expect(backward.specialCareConcepts).toEqual([1]);
    expect([forward.nsfw, backward.nsfw]).toEqual([true, true]);
    expect([next.specialCare, next.nsfw]).toEqual([false, false]);
  });

  it("cosine similarity: F.normalize's eps keeps a zero embedding at 0, not NaN", () => {
    expect(Array.from(cosineDistance(Float32Array.from([3, 4, 0, 0]), Float32Array.from([1, 0, 0, 2]), 2))).toEqual([Math.fround(0.6), Math.fround(0.8), 0, 0]);
  });

  it("bad tables are JSD_BAD_MODEL; a vision tower answering the wrong size is JSD_INTERNAL", async () => {
    const good = tables(2, 1);
    const bad: Partial<ConceptTables>[] = [
      { conceptWeights: new Float32Array(3) },
      { specialCareEmbeds: new Float32Array(3) },
      { conceptEmbeds: [1, 1, 1, 1] as unknown as Float32Array },
      { conceptWeights: Float32Array.from([0.5, Number.NaN]) },
      { projectionDim: 0 },
      { conceptEmbeds: new Float32Array(0), conceptWeights: new Float32Array(0) },
    ];
    for (const change of bad) {
      expect(await codeOf(() => decide(new Float32Array(2), new Float32Array(1), { ...good, ...change })), Object.keys(change).join()).toBe("JSD_BAD_MODEL");
    }
    const image: RgbImage = { data: new Uint8Array(8 * 8 * 3), width: 8, height: 8, channels: 3 };
    const checker: SafetyCheckerPort = { ...good, featureExtractor: tinyFeatureExtractorSettings(), embedImages: async () => new Float32Array(3) };
    expect(await codeOf(() => checkImages([image], checker))).toBe("JSD_INTERNAL");
    const badSettings = { ...checker, featureExtractor: { ...checker.featureExtractor, resample: 0 } };
    expect(await codeOf(() => checkImages([image], badSettings))).toBe("JSD_BAD_MODEL");
  });

  it("checkImages blacks out only flagged images, keeping an RGB image's layout and the passed one's pixels", async () => {
    const t = tables(1, 1);
    t.conceptEmbeds = Float32Array.from([1, 0]);
    t.specialCareEmbeds = Float32Array.from([0, 1]);
    const rgb = (value: number): RgbImage => ({ data: new Uint8Array(16 * 16 * 3).fill(value), width: 16, height: 16, channels: 3 });
    // Image 0 points at the concept (cos 1 > 0.5), image 1 away from it (cos 0).
    const checker: SafetyCheckerPort = { ...t, featureExtractor: tinyFeatureExtractorSettings(), embedImages: async () => Float32Array.from([1, 0, 0, 1]) };
    const inputs = [rgb(90), rgb(91)];
    const [flagged, passed] = await checkImages(inputs, checker);
    expect([flagged.nsfwContentDetected, passed.nsfwContentDetected]).toEqual([true, false]);
    expect(flagged.image.channels).toBe(3);
    expect(flagged.image.data.every((v) => v === 0)).toBe(true);
    expect(inputs[0].data.every((v) => v === 90)).toBe(true);
    expect(passed.image.data.every((v) => v === 91)).toBe(true);
  });
});

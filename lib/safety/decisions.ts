// diffusers 0.8.1's StableDiffusionSafetyChecker after its vision tower: cosine similarities with the
// concept tables and the per-image decisions of `forward`.
//
// cosine_distance(a, b) = F.normalize(a) @ F.normalize(b).T in float32 (normalize: x / max(|x|_2, 1e-12)).
// Here the norms and dot products are summed in double and each stored value rounded to float32,
// which stays within a few float32 ulps of torch's (its summation order is its own).
//
// The decisions mirror the Python loop with the dtypes it had in rinna's environment (numpy 1.x):
// `concept_cos` is a numpy float32 scalar, `concept_threshold` a Python float (`.item()` of the
// float32 weight), `adjustment` a Python float (0.0, then 0.01 from the first special-care hit on).
// NumPy 1.x computes `concept_cos - concept_threshold + adjustment` in float64 (scalar with scalar),
// and the builtin `round(x, 3)` on a numpy scalar is numpy's own `__round__`, i.e. `np.around`:
// rint(x * 1000) / 1000 in float64, ties to even (not Python's correctly rounded decimal round:
// round(np.float64(0.0005), 3) is 0.0 where Python's round(0.0005, 3) is 0.001). A score counts when
// it is > 0. NumPy 2 (NEP 50) would do the same sums in float32; the two differ only within about
// 1e-8 of a rounding boundary.
import { JsdError } from "../errors.js";
import { roundHalfEven } from "../schedulers/common.js";

/** The checker's tables: 17 concept and 3 special-care embeddings with one threshold each (in CompVis's checker). */
export interface ConceptTables {
  /** float32 [concepts, projectionDim] */
  conceptEmbeds: Float32Array;
  /** float32 [concepts]: each concept's threshold (`concept_embeds_weights`). */
  conceptWeights: Float32Array;
  /** float32 [specialConcepts, projectionDim] */
  specialCareEmbeds: Float32Array;
  /** float32 [specialConcepts] (`special_care_embeds_weights`). */
  specialCareWeights: Float32Array;
  projectionDim: number;
}

/** One image's decision, with the scores diffusers keeps in `result_img`. */
export interface SafetyDecision {
  /** Some concept's score is > 0: diffusers' `has_nsfw_concepts`; the image is replaced by black. */
  nsfw: boolean;
  /** Some special-care concept's score is > 0 (which raised the adjustment to 0.01). */
  specialCare: boolean;
  /** round(cos - threshold + adjustment, 3) per concept, as numpy computes it. */
  conceptScores: number[];
  specialScores: number[];
  /** Indices of the concepts and special concepts whose score is > 0. */
  badConcepts: number[];
  specialCareConcepts: number[];
}

/** The adjustment diffusers 0.8.1 adds once a special-care concept is found. */
export const SPECIAL_CARE_ADJUSTMENT = 0.01;

function badTables(why: string): JsdError {
  return new JsdError("JSD_BAD_MODEL", `safety checker concept tables: ${why}`);
}

/** Checks the tables' types and lengths against each other (a coded JSD_BAD_MODEL error otherwise). */
export function checkConceptTables(tables: ConceptTables): ConceptTables {
  if (tables === null || typeof tables !== "object") throw badTables("not an object");
  const { conceptEmbeds, conceptWeights, specialCareEmbeds, specialCareWeights, projectionDim } = tables;
  if (typeof projectionDim !== "number" || !Number.isInteger(projectionDim) || projectionDim < 1) throw badTables(`projectionDim must be a positive integer, got ${String(projectionDim)}`);
  const arrays = { conceptEmbeds, conceptWeights, specialCareEmbeds, specialCareWeights };
  for (const [name, array] of Object.entries(arrays)) {
    if (!(array instanceof Float32Array)) throw badTables(`${name} must be a Float32Array`);
    if (!array.every(Number.isFinite)) throw badTables(`${name} holds a value that is not finite`);
  }
  for (const [embeds, weights, what] of [
    [conceptEmbeds, conceptWeights, "concept"],
    [specialCareEmbeds, specialCareWeights, "special-care"],
  ] as const) {
    if (embeds.length !== weights.length * projectionDim) {
      throw badTables(`${weights.length} ${what} thresholds need ${weights.length}x${projectionDim} embedding values, got ${embeds.length}`);
    }
  }
  if (conceptWeights.length === 0) throw badTables("there are no concepts");
  return tables;
}

/** F.normalize(rows, dim=1) in float32: each row divided by max(its L2 norm, 1e-12). */
function normalizeRows(rows: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(rows.length);
  for (let r = 0; r < rows.length / dim; r++) {
    let sq = 0;
    for (let i = 0; i < dim; i++) sq += rows[r * dim + i] * rows[r * dim + i];
    const norm = Math.max(Math.fround(Math.sqrt(sq)), 1e-12);
    for (let i = 0; i < dim; i++) out[r * dim + i] = rows[r * dim + i] / norm;
  }
  return out;
}

/** diffusers' `cosine_distance(image_embeds, embeds)`: float32 [batch, embeds rows]. */
export function cosineDistance(imageEmbeds: Float32Array, embeds: Float32Array, dim: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 1 || imageEmbeds.length % dim !== 0 || embeds.length % dim !== 0) {
    throw new JsdError("JSD_INTERNAL", `cosine distance of ${imageEmbeds.length} and ${embeds.length} values in rows of ${dim}`);
  }
  const a = normalizeRows(imageEmbeds, dim);
  const b = normalizeRows(embeds, dim);
  const rowsA = a.length / dim;
  const rowsB = b.length / dim;
  const out = new Float32Array(rowsA * rowsB);
  for (let i = 0; i < rowsA; i++) {
    for (let j = 0; j < rowsB; j++) {
      let dot = 0;
      for (let k = 0; k < dim; k++) dot += a[i * dim + k] * b[j * dim + k];
      out[i * rowsB + j] = dot;
    }
  }
  return out;
}

/** `round(x, 3)` on a numpy float64 scalar: np.around, rint(x * 1000) / 1000 in float64 (rint ties to even). */
export function roundScore(x: number): number {
  return roundHalfEven(x * 1000) / 1000;
}

/** One score as diffusers computes it: round(cos - threshold + adjustment, 3), in float64. */
export function conceptScore(cos: number, threshold: number, adjustment: number): number {
  return roundScore(cos - threshold + adjustment);
}

/**
 * The decisions of `StableDiffusionSafetyChecker.forward` for each image, from the cosine
 * similarities `cosDist` [batch, concepts] and `specialCosDist` [batch, specialConcepts]: special
 * concepts first, in order (the first hit raises the adjustment for the rest, special ones
 * included), then the concepts; any concept score > 0 flags the image.
 */
export function decide(cosDist: Float32Array, specialCosDist: Float32Array, tables: ConceptTables): SafetyDecision[] {
  const { conceptWeights, specialCareWeights } = checkConceptTables(tables);
  const concepts = conceptWeights.length;
  const specials = specialCareWeights.length;
  const batch = cosDist.length / concepts;
  if (!Number.isInteger(batch) || specialCosDist.length !== batch * specials) {
    throw new JsdError("JSD_INTERNAL", `${cosDist.length} concept and ${specialCosDist.length} special similarities do not fit ${concepts} and ${specials} concepts`);
  }
  const decisions: SafetyDecision[] = [];
  for (let i = 0; i < batch; i++) {
    let adjustment = 0;
    const specialScores: number[] = [];
    const specialCareConcepts: number[] = [];
    for (let c = 0; c < specials; c++) {
      const score = conceptScore(specialCosDist[i * specials + c], specialCareWeights[c], adjustment);
      specialScores.push(score);
      if (score > 0) {
        specialCareConcepts.push(c);
        adjustment = SPECIAL_CARE_ADJUSTMENT;
      }
    }
    const conceptScores: number[] = [];
    const badConcepts: number[] = [];
    for (let c = 0; c < concepts; c++) {
      const score = conceptScore(cosDist[i * concepts + c], conceptWeights[c], adjustment);
      conceptScores.push(score);
      if (score > 0) badConcepts.push(c);
    }
    decisions.push({ nsfw: badConcepts.length > 0, specialCare: specialCareConcepts.length > 0, conceptScores, specialScores, badConcepts, specialCareConcepts });
  }
  return decisions;
}

/** From the image embeddings [batch, projectionDim] to each image's decision (cosine similarities, then `decide`). */
export function decideFromEmbeddings(imageEmbeds: Float32Array, tables: ConceptTables): { cosDist: Float32Array; specialCosDist: Float32Array; decisions: SafetyDecision[] } {
  const cosDist = cosineDistance(imageEmbeds, tables.conceptEmbeds, tables.projectionDim);
  const specialCosDist = cosineDistance(imageEmbeds, tables.specialCareEmbeds, tables.projectionDim);
  return { cosDist, specialCosDist, decisions: decide(cosDist, specialCosDist, tables) };
}

// Emphasis on text-encoder states, as A1111's "Original" emphasis does it: every token's state
// vector is multiplied by the token's weight, then the whole chunk is rescaled so that the mean
// of all its values is what it was before weighting ("restoring original mean is likely not
// correct, but it seems to work well to prevent artifacts", says A1111). A1111 takes the mean
// over the batch of chunks it encodes together; here it is taken per chunk of one prompt, so a
// prompt's states do not depend on what else is encoded with it.
import { JsdRangeError } from "../errors.js";

const f = Math.fround;

/**
 * Applies per-token weights to text states [chunks, seqLength, hidden] (flattened) with the mean
 * restored per chunk. Returns `states` itself when every weight is 1 (bit for bit unchanged),
 * otherwise a new array. A chunk whose weighted mean is 0 (or whose ratio is not finite) is
 * only multiplied, not rescaled.
 */
export function applyEmphasis(states: Float32Array, weights: Float32Array, seqLength: number, hidden: number): Float32Array {
  if (!Number.isInteger(seqLength) || seqLength < 1 || !Number.isInteger(hidden) || hidden < 1) {
    throw new JsdRangeError("seqLength and hidden must be positive integers");
  }
  if (states.length !== weights.length * hidden || weights.length % seqLength !== 0) {
    throw new JsdRangeError(`states hold ${states.length} values, weights ${weights.length}: expected [chunks, ${seqLength}, ${hidden}]`);
  }
  if (weights.every((w) => w === 1)) return states;
  const out = new Float32Array(states.length);
  const chunkValues = seqLength * hidden;
  for (let c = 0; c < weights.length / seqLength; c++) {
    const base = c * chunkValues;
    let before = 0;
    let after = 0;
    for (let t = 0; t < seqLength; t++) {
      const w = f(weights[c * seqLength + t]);
      const at = base + t * hidden;
      for (let h = 0; h < hidden; h++) {
        const x = states[at + h];
        const y = f(x * w);
        out[at + h] = y;
        before += x;
        after += y;
      }
    }
    const ratio = f(before / chunkValues / (after / chunkValues));
    if (after === 0 || !Number.isFinite(ratio)) continue;
    for (let i = base; i < base + chunkValues; i++) out[i] = f(out[i] * ratio);
  }
  return out;
}

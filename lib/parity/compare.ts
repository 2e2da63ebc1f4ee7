import { JsdRangeError } from "../errors.js";
/** Error of a computed array against a reference: max abs, and max abs relative to the reference's range. */
export interface ErrorStats {
  maxAbs: number;
  maxRel: number;
  meanAbs: number;
}

export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>): ErrorStats {
  if (actual.length !== expected.length) throw new JsdRangeError(`length ${actual.length} differs from the reference's ${expected.length}`);
  let maxAbs = 0;
  let sumAbs = 0;
  let range = 0;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    // NaN never compares greater: make it count as an infinite error.
    if (!(diff <= maxAbs)) maxAbs = Number.isNaN(diff) ? Infinity : diff;
    sumAbs += Number.isNaN(diff) ? Infinity : diff;
    range = Math.max(range, Math.abs(expected[i]));
  }
  return { maxAbs, maxRel: range > 0 ? maxAbs / range : maxAbs, meanAbs: expected.length ? sumAbs / expected.length : 0 };
}

/** Merges stats of several outputs of one case: the worst of each. */
export function worst(stats: ErrorStats[]): ErrorStats {
  return stats.reduce(
    (a, b) => ({ maxAbs: Math.max(a.maxAbs, b.maxAbs), maxRel: Math.max(a.maxRel, b.maxRel), meanAbs: Math.max(a.meanAbs, b.meanAbs) }),
    { maxAbs: 0, maxRel: 0, meanAbs: 0 },
  );
}

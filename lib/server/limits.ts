// What one request may ask of the server: checked before a job is queued, so that a stranger's
// request cannot tie the model up for hours or fill the memory. Every limit lives here.
import { JsdTypeError, JsdRangeError } from "../errors.js";

export interface ServerLimits {
  /** Denoising steps per image. */
  maxSteps: number;
  /** Width and height, each (pixels; multiples of 8 as always). */
  maxSide: number;
  /** Width × height (pixels): 1024×1024 by default, so 512×2048 is refused too. */
  maxPixels: number;
  /** Images per request (A1111: batch_size × n_iter). */
  maxImages: number;
  /** Jobs waiting behind the running one; past it: 429 with Retry-After. */
  maxQueue: number;
  /** Unfinished jobs one client (one API key) may have; past it: 429. 0: no such cap. */
  maxJobsPerClient: number;
  /** Request body (bytes): room for two base64 PNGs of maxSide × maxSide (init image and mask). */
  bodyLimit: number;
  /** Prompt and negative prompt, each (characters). */
  maxPromptLength: number;
  /** Finished jobs kept for GET /v1/jobs/:id (oldest dropped first) ... */
  keepJobs: number;
  /** ... for at most this long after they finish (milliseconds) ... */
  keepJobsMs: number;
  /** ... and while their PNGs add up to at most this many bytes. */
  keepBytes: number;
}

export const DEFAULT_LIMITS: Readonly<ServerLimits> = Object.freeze({
  maxSteps: 150,
  maxSide: 1024,
  maxPixels: 1024 * 1024,
  maxImages: 8,
  maxQueue: 16,
  maxJobsPerClient: 0,
  bodyLimit: 32 * 1024 * 1024,
  maxPromptLength: 4000,
  keepJobs: 100,
  keepJobsMs: 60 * 60 * 1000,
  keepBytes: 256 * 1024 * 1024,
});

/** The defaults with the caller's changes, each checked (a typo must not lift a limit). */
export function resolveLimits(overrides: Partial<ServerLimits> = {}): ServerLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) throw new JsdTypeError(`unknown server limit ${key}`);
    if (typeof value !== "number" || !Number.isInteger(value) || value < (key === "maxQueue" || key === "maxJobsPerClient" ? 0 : 1)) {
      throw new JsdRangeError(`server limit ${key} must be a positive integer, got ${String(value)}`);
    }
    limits[key as keyof ServerLimits] = value;
  }
  return limits;
}

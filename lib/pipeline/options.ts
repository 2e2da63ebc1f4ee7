// generate()'s options: types, defaults and validation. Everything is checked here, before
// any native call, and a bad value throws a TypeError or RangeError that names the option.
import { PROMPT_MODES, type PromptMode } from "../prompt/tokens.js";
import type { SchedulerName } from "../schedulers/index.js";
import { KARRAS_SCHEDULERS, SCHEDULER_NAMES, takesKarras } from "../schedulers/index.js";
import type { LatentPreview } from "./preview.js";
import { JsdTypeError, JsdRangeError } from "../errors.js";
import { finite, integer, optionalBoolean } from "../validate.js";
import { LIMITS } from "../limits.js";

export type { PromptMode } from "../prompt/tokens.js";
export type { LatentPreview } from "./preview.js";

/** An image given to img2img or inpainting: PNG bytes, a PNG file path, or raw RGBA pixels. */
export type ImageInput = Uint8Array | string | { width: number; height: number; rgba: Uint8Array | Uint8ClampedArray };

export interface GenerateProgress {
  /** Steps done so far (1-based after the first step). */
  step: number;
  totalSteps: number;
  elapsedMs: number;
  /** Index of the image batch this progress belongs to (always 0: a call is one batch). */
  batch: number;
  /**
   * With `previewEvery: n`: on every n-th step and on the last one, a rough picture of the
   * current denoised estimate (the scheduler's x0 prediction, not the noisy latents) of the
   * batch's first image, at latent resolution (width/8 × height/8), RGBA 8-bit, made by a linear
   * projection of the latents (no VAE, well under a millisecond). Absent on the other steps.
   */
  preview?: LatentPreview;
}

export interface GenerateOptions {
  /** The text to draw (Japanese, English or mixed). Longer than 77 tokens is truncated as rinna's pipeline does, unless promptMode is "extended". */
  prompt: string;
  /** What to steer away from. Default "" (diffusers' unconditional prompt). */
  negativePrompt?: string;
  /**
   * How prompts are read. "reference" (default): as rinna's pipeline (diffusers), plain text
   * truncated at 77 tokens, exact parity. "extended": emphasis `(text)` `[text]` `(text:1.3)`,
   * `BREAK`, also in full-width `（）［］：ＢＲＥＡＫ`; long prompts are encoded in chunks of 75
   * tokens (none dropped), the negative prompt padded to the same number of chunks.
   */
  promptMode?: PromptMode;
  /** Image width in pixels, a multiple of 8. Default: the model's trained size (512 for JSD, 64 for the embedded model), or the init image's width. */
  width?: number;
  /** Image height in pixels, a multiple of 8. Default: as width. */
  height?: number;
  /** Denoising steps. Default 50. */
  steps?: number;
  /** Classifier-free guidance scale. Default 7.5; ≤ 1 skips the unconditional pass. */
  guidanceScale?: number;
  /** Sampler. Default "pndm" (rinna's default). */
  scheduler?: SchedulerName;
  /** Karras sigmas, for the schedulers in KARRAS_SCHEDULERS (lms, euler, euler_a, dpmpp_2m). Default false. */
  karras?: boolean;
  /**
   * Seed of torch.Generator("cpu"). Default: random (the result says which). A batch of n images
   * draws its noise in one call, like diffusers' num_images_per_prompt = n with this seed.
   */
  seed?: number | bigint;
  /** Images per call (one batch). Default 1. */
  numImages?: number;
  /** img2img / inpainting: the starting image. Its size must be a multiple of 8 (of 32 to match diffusers exactly). */
  initImage?: ImageInput;
  /** img2img / inpainting: how much of the schedule to run (0 keeps the image, 1 ignores it). Default 0.8. */
  strength?: number;
  /** Inpainting (rinna's legacy latent-mask method): white = repaint, black = keep. Needs initImage. */
  mask?: ImageInput;
  /** DDIM's eta (0 = deterministic). Default 0. Only valid with scheduler "ddim". */
  eta?: number;
  /**
   * Decode the image in overlapping 320×320 tiles, blended without seams, so that large images
   * need a fraction of the memory (the tiled image differs slightly from the untiled one).
   * Default "auto": tiles above 384×384 pixels.
   */
  vaeTiling?: boolean | "auto";
  /**
   * Run the model file's safety checker on each image, as rinna's pipeline does: a flagged image
   * comes back black, with `nsfwContentDetected` true. Default true; it runs only when the model
   * has a checker (`jsd convert` keeps rinna's unless told `--no-safety-checker`). false turns it off.
   */
  safetyChecker?: boolean;
  /** Called after every sampling step (UNet call; PNDM makes steps + 1 of them). */
  onProgress?: (progress: GenerateProgress) => void;
  /**
   * Give onProgress a `preview` every this many steps, and on the last step. An integer ≥ 1.
   * Default: no previews (and no preview work at all).
   */
  previewEvery?: number;
  /** Cancels the run between steps (and interrupts the step in progress); the promise rejects with an AbortError. */
  signal?: AbortSignal;
  /**
   * Finish early: when it fires, sampling stops after the step in progress and the promise
   * still resolves, with images decoded from the denoised estimate of the last step done (what
   * AUTOMATIC1111's "Interrupt" returns); before the first step, from the starting point (the
   * initial noise for txt2img, the init image for img2img/inpainting). Such images have
   * `stepsDone` below the full run and `parameters.interruptedAtStep` set, which their PNG
   * text records. `signal` wins when both fire.
   */
  interrupt?: AbortSignal;
}

export interface ResolvedOptions {
  prompt: string;
  negativePrompt: string;
  promptMode: PromptMode;
  width?: number;
  height?: number;
  steps: number;
  guidanceScale: number;
  scheduler: SchedulerName;
  karras: boolean;
  seed: bigint;
  numImages: number;
  initImage?: ImageInput;
  strength: number;
  mask?: ImageInput;
  eta: number;
  vaeTiling: boolean | "auto";
  safetyChecker: boolean;
  onProgress?: (progress: GenerateProgress) => void;
  previewEvery?: number;
  signal?: AbortSignal;
  interrupt?: AbortSignal;
}

const MAX_SEED = (1n << 64n) - 1n;

function side(name: string, value: unknown): number {
  const v = integer(name, value, 8, LIMITS.imageSideMax);
  if (v % 8 !== 0) throw new JsdRangeError(`${name} must be a multiple of 8, got ${v}`);
  return v;
}

function imageInput(name: string, value: unknown): ImageInput {
  if (typeof value === "string" || value instanceof Uint8Array) return value;
  if (value && typeof value === "object" && "rgba" in value) {
    const v = value as { width: unknown; height: unknown; rgba: unknown };
    integer(`${name}.width`, v.width, 1, LIMITS.imageSideMax);
    integer(`${name}.height`, v.height, 1, LIMITS.imageSideMax);
    if (!(v.rgba instanceof Uint8Array || v.rgba instanceof Uint8ClampedArray)) throw new JsdTypeError(`${name}.rgba must be a Uint8Array`);
    if (v.rgba.length !== (v.width as number) * (v.height as number) * 4) throw new JsdRangeError(`${name}.rgba must hold width*height*4 bytes`);
    return value as ImageInput;
  }
  throw new JsdTypeError(`${name} must be PNG bytes, a file path or { width, height, rgba }`);
}

/** A value for an error message; never throws (objects without a prototype cannot be stringified). */
function describe(value: unknown): string {
  return typeof value === "string" ? value : typeof value;
}

export function randomSeed(): bigint {
  return BigInt(Math.floor(Math.random() * 2 ** 32));
}

export function resolveOptions(options: GenerateOptions): ResolvedOptions {
  if (options === null || typeof options !== "object") throw new JsdTypeError("generate() expects an options object");
  const o = options;
  if (typeof o.prompt !== "string") throw new JsdTypeError("prompt must be a string");
  if (o.negativePrompt !== undefined && typeof o.negativePrompt !== "string") throw new JsdTypeError("negativePrompt must be a string");
  const promptMode = o.promptMode ?? "reference";
  if (typeof promptMode !== "string") throw new JsdTypeError(`promptMode must be a string, got ${typeof promptMode}`);
  if (!PROMPT_MODES.includes(promptMode)) throw new JsdRangeError(`promptMode must be one of ${PROMPT_MODES.join(", ")}, got ${promptMode}`);
  const scheduler = o.scheduler ?? "pndm";
  if (!SCHEDULER_NAMES.includes(scheduler)) throw new JsdRangeError(`scheduler must be one of ${SCHEDULER_NAMES.join(", ")}, got ${describe(scheduler)}`);
  let seed: bigint;
  if (o.seed === undefined) seed = randomSeed();
  else if (typeof o.seed === "bigint") seed = o.seed;
  else if (typeof o.seed === "number") seed = BigInt(integer("seed", o.seed, 0, Number.MAX_SAFE_INTEGER));
  else throw new JsdTypeError("seed must be a number or a bigint");
  if (seed < 0n || seed > MAX_SEED) throw new JsdRangeError("seed must be from 0 to 2^64 - 1");
  const eta = o.eta === undefined ? 0 : finite("eta", o.eta);
  if (eta < 0) throw new JsdRangeError("eta must be ≥ 0");
  if (eta !== 0 && scheduler !== "ddim") throw new JsdRangeError(`eta is a DDIM option; scheduler is ${scheduler}`);
  const karras = o.karras ?? false;
  if (typeof karras !== "boolean") throw new JsdTypeError("karras must be a boolean");
  if (karras && !takesKarras(scheduler)) throw new JsdRangeError(`karras needs one of the schedulers ${KARRAS_SCHEDULERS.join(", ")}, not ${scheduler}`);
  const strength = o.strength === undefined ? 0.8 : finite("strength", o.strength);
  if (strength < 0 || strength > 1) throw new JsdRangeError(`strength must be from 0 to 1, got ${strength}`);
  if (o.mask !== undefined && o.initImage === undefined) throw new JsdTypeError("mask needs initImage (inpainting repaints part of an image)");
  const vaeTiling = o.vaeTiling ?? "auto";
  if (vaeTiling !== "auto" && typeof vaeTiling !== "boolean") throw new JsdTypeError('vaeTiling must be true, false or "auto"');
  if (o.onProgress !== undefined && typeof o.onProgress !== "function") throw new JsdTypeError("onProgress must be a function");
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new JsdTypeError("signal must be an AbortSignal");
  if (o.interrupt !== undefined && !(o.interrupt instanceof AbortSignal)) throw new JsdTypeError("interrupt must be an AbortSignal");
  if (o.previewEvery !== undefined) {
    if (typeof o.previewEvery !== "number") throw new JsdTypeError(`previewEvery must be a number, got ${typeof o.previewEvery}`);
    if (!Number.isSafeInteger(o.previewEvery) || o.previewEvery < 1) throw new JsdRangeError(`previewEvery must be an integer ≥ 1, got ${o.previewEvery}`);
  }
  return {
    prompt: o.prompt,
    negativePrompt: o.negativePrompt ?? "",
    promptMode,
    width: o.width === undefined ? undefined : side("width", o.width),
    height: o.height === undefined ? undefined : side("height", o.height),
    steps: o.steps === undefined ? 50 : integer("steps", o.steps, 1, 1000),
    guidanceScale: o.guidanceScale === undefined ? 7.5 : finite("guidanceScale", o.guidanceScale),
    scheduler,
    karras,
    seed,
    numImages: o.numImages === undefined ? 1 : integer("numImages", o.numImages, 1, 16),
    initImage: o.initImage === undefined ? undefined : imageInput("initImage", o.initImage),
    strength,
    mask: o.mask === undefined ? undefined : imageInput("mask", o.mask),
    eta,
    vaeTiling,
    safetyChecker: optionalBoolean("safetyChecker", o.safetyChecker) ?? true,
    onProgress: o.onProgress,
    previewEvery: o.previewEvery,
    signal: o.signal,
    interrupt: o.interrupt,
  };
}

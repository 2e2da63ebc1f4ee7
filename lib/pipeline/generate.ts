// generate(): options in, PNG images out, on top of the sampling loop.
import { LIMITS } from "../limits.js";
import { abortError } from "./abort.js";
import { JsdError, isJsdError, JsdRangeError } from "../errors.js";
import { MODEL_KEYS } from "../formats/model-keys.js";
import { vaeOutputToRgba8 } from "../image/convert.js";
import { decodeImage, encodePng } from "../image/png.js";
import type { DiffusionModel } from "./model-port.js";
import { version } from "../system-info.js";
import { denoise, type PixelImage } from "./denoise.js";
import { resolveOptions, type GenerateOptions, type ImageInput } from "./options.js";
import { formatParameters, type GenerationParameters } from "./parameters.js";
import type { PromptMode } from "../prompt/tokens.js";
import { checkImages } from "../safety/index.js";
import type { SafetyCheckerRun } from "./parameters.js";

export interface GeneratedImage {
  /** PNG file bytes, with the generation parameters in `parameters` (A1111 style) and `jsd` (JSON) text chunks. */
  png: Uint8Array;
  /** Raw pixels, RGBA 8-bit, row-major. */
  rgba: Uint8Array;
  width: number;
  height: number;
  /** The seed of the batch (random unless given); with the index below it reproduces this image. */
  seed: number | bigint;
  /** Position in the batch (numImages > 1). */
  batchIndex: number;
  /** Prompt tokens cut at the 77-token limit (rinna's pipeline truncates silently); 0 in extended prompt mode. */
  droppedTokens: number;
  /** How the prompts were read ("reference" unless promptMode "extended" was asked for). */
  promptMode: PromptMode;
  parameters: GenerationParameters;
  /** The largest total of compute buffers the engine held at once during this call (bytes; weights not included). */
  peakComputeBytes: number;
  /**
   * diffusers' `nsfw_content_detected`: the model's safety checker flagged this image, and its
   * pixels (`rgba`, `png`) are black. False where the checker did not run (`parameters.safetyChecker` says why).
   */
  nsfwContentDetected: boolean;
  /**
   * Sampling steps run (UNet calls, as GenerateProgress.step counts them: PNDM makes steps + 1,
   * img2img fewer). Below the full count only when `interrupt` fired; `parameters.interruptedAtStep` then says so.
   */
  stepsDone: number;
}

async function toPixels(name: string, input: ImageInput): Promise<PixelImage> {
  if (typeof input === "object" && !(input instanceof Uint8Array)) return input;
  const image = await decodeImage(input);
  return { width: image.width, height: image.height, rgba: image.rgba };
}

function sizeOf(options: { width?: number; height?: number }, init: PixelImage | undefined, defaultSize: number) {
  if (!init) return { width: options.width ?? defaultSize, height: options.height ?? defaultSize };
  const max = LIMITS.imageSideMax;
  if (init.width > max || init.height > max) throw new JsdRangeError(`initImage is ${init.width}x${init.height}; its sides must be at most ${max}`);
  if (init.width % 8 !== 0 || init.height % 8 !== 0) {
    throw new JsdRangeError(`initImage is ${init.width}x${init.height}; its sides must be multiples of 8 (resize it first)`);
  }
  if ((options.width !== undefined && options.width !== init.width) || (options.height !== undefined && options.height !== init.height)) {
    throw new JsdRangeError(`width/height (${options.width}x${options.height}) differ from initImage's size ${init.width}x${init.height}`);
  }
  return { width: init.width, height: init.height };
}

/**
 * Runs one stretch of network calls under the call's abort signal: an abort interrupts the native
 * call in progress too (not just the loop between calls) and rejects with an AbortError; either way
 * the compute buffers are released afterwards, so an idle model keeps only its weights (a 512x512
 * run's buffers are hundreds of MB; a model closed meanwhile has freed everything already).
 */
async function underSignal<T>(model: DiffusionModel, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
  if (signal?.aborted) throw abortError(signal);
  const onAbort = () => model.abortCurrent();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await run();
  } catch (error) {
    if (signal?.aborted && (isJsdError(error) ? error.code === "JSD_ABORTED" : true)) throw abortError(signal);
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await model.releaseComputeBuffers().catch(() => undefined);
  }
}

/** rinna's pipeline's last step: the safety checker over the batch's images (one vision-tower call), flagged images blackened in place. */
async function runSafetyChecker(checker: NonNullable<DiffusionModel["safetyChecker"]>, pixels: Uint8Array[], width: number, height: number): Promise<boolean[]> {
  const checked = await checkImages(pixels.map((data) => ({ data, width, height, channels: 4 as const })), checker);
  // Only flagged images change (to black); the others are the pixels given.
  checked.forEach((c, b) => c.nsfwContentDetected && pixels[b].set(c.image.data));
  return checked.map((c) => c.nsfwContentDetected);
}

export async function generateImages(model: DiffusionModel, options: GenerateOptions): Promise<GeneratedImage[]> {
  const o = resolveOptions(options);
  const signal = o.signal;
  if (signal?.aborted) throw abortError(signal);
  const initImage = o.initImage === undefined ? undefined : await toPixels("initImage", o.initImage);
  const mask = o.mask === undefined ? undefined : await toPixels("mask", o.mask);
  if (mask && initImage && (mask.width !== initImage.width || mask.height !== initImage.height)) {
    throw new JsdRangeError(`mask is ${mask.width}x${mask.height} but initImage is ${initImage.width}x${initImage.height}`);
  }
  const { width, height } = sizeOf(o, initImage, model.defaultImageSize);
  model.resetPeakComputeBytes();

  const trace = await underSignal(model, signal, () =>
    denoise(
      model,
      {
        ...o,
        width,
        height,
        initImage,
        mask,
        checkAborted: () => {
          if (signal?.aborted) throw abortError(signal);
        },
      },
      o.onProgress,
    ),
  );

  const pixels = Array.from({ length: o.numImages }, (_, b) => vaeOutputToRgba8(trace.decoded, width, height, b));
  const checker = model.safetyChecker ?? null;
  const safetyChecker: SafetyCheckerRun = checker === null ? "absent" : o.safetyChecker ? "ran" : "off";
  const flagged = safetyChecker === "ran" ? await underSignal(model, signal, () => runSafetyChecker(checker!, pixels, width, height)) : pixels.map(() => false);

  const peakComputeBytes = model.peakComputeBytes();
  const seed = typeof options.seed === "bigint" ? o.seed : Number(o.seed);
  const sha = model.metadata[MODEL_KEYS.dataSha256];
  const images: GeneratedImage[] = [];
  for (let b = 0; b < o.numImages; b++) {
    const rgb = pixels[b];
    const parameters: GenerationParameters = {
      prompt: o.prompt,
      negativePrompt: o.negativePrompt,
      promptMode: trace.promptMode,
      ...(trace.promptMode === "extended" ? { promptChunks: trace.promptChunks } : {}),
      steps: o.steps,
      scheduler: o.scheduler,
      karras: o.karras,
      guidanceScale: o.guidanceScale,
      seed: o.seed.toString(),
      batchIndex: b,
      width,
      height,
      strength: initImage ? o.strength : undefined,
      mode: mask ? "inpaint" : initImage ? "img2img" : "txt2img",
      droppedTokens: trace.droppedTokens,
      model: model.metadata[MODEL_KEYS.name] ?? "jsd",
      backend: model.backend,
      modelSha256: sha,
      version: version(),
      ...(trace.interrupted ? { interruptedAtStep: trace.stepsDone, totalSteps: trace.timesteps.length } : {}),
      safetyChecker,
      nsfwContentDetected: flagged[b],
    };
    // PNG text cannot hold NUL (the prompt may): U+FFFD stands in for it there, JSON escapes it.
    const png = encodePng(rgb, width, height, { parameters: formatParameters(parameters).replace(/\0/g, "\uFFFD"), json: parameters });
    images.push({ png, rgba: rgb, width, height, seed, batchIndex: b, droppedTokens: trace.droppedTokens, promptMode: trace.promptMode, parameters, peakComputeBytes, nsfwContentDetected: flagged[b], stepsDone: trace.stepsDone });
  }
  if (images.length === 0) throw new JsdError("JSD_INTERNAL", "no image was produced");
  return images;
}

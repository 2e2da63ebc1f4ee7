// The sampling loop of rinna's pipelines (diffusers 0.8.1 StableDiffusionPipeline, its
// img2img pipeline and the legacy latent-mask inpainting), step for step and in float32.
import { JsdError } from "../errors.js";
import { sectionKey } from "../formats/model-keys.js";
import { rgba8ToSignedNchw, maskToLatentKeep } from "../image/convert.js";
import type { DiffusionModel, Shape4 } from "./model-port.js";
import { encodeExtendedPrompts } from "../prompt/encode.js";
import type { PromptMode } from "../prompt/tokens.js";
import { TorchGenerator } from "../rng/torch-generator.js";
import { createScheduler, img2imgStart, type Scheduler } from "../schedulers/index.js";
import type { GenerateProgress, ResolvedOptions } from "./options.js";
import { latentsToPreview } from "./preview.js";
import { decodeLatentsTiled, VAE_TILING_THRESHOLD } from "./vae-tiles.js";

export interface PixelImage {
  width: number;
  height: number;
  rgba: Uint8Array | Uint8ClampedArray;
}

export interface DenoiseInput extends Omit<ResolvedOptions, "initImage" | "mask" | "width" | "height" | "promptMode" | "vaeTiling" | "safetyChecker"> {
  /** Default "auto". */
  vaeTiling?: boolean | "auto";
  width: number;
  height: number;
  /** Default "reference". */
  promptMode?: PromptMode;
  initImage?: PixelImage;
  mask?: PixelImage;
  /** Throws when the run should stop (checked before every step). */
  checkAborted?: () => void;
  /** Give onProgress a preview every this many steps and on the last (only with onProgress). */
  previewEvery?: number;
  /** When aborted, sampling stops after the step in progress and the denoised estimate is decoded. */
  interrupt?: AbortSignal;
}

export interface DenoiseTrace {
  /** Reference mode: the 77 ids; extended mode: the chunks' ids one after the other (chunks × 77). */
  promptIds: Int32Array;
  negativeIds?: Int32Array;
  droppedTokens: number;
  negativeDroppedTokens: number;
  promptMode: PromptMode;
  /** Text-encoder windows per prompt (1 in reference mode). */
  promptChunks: number;
  textStates: Float32Array;
  timesteps: Float64Array;
  /** txt2img: the raw N(0,1) draw; img2img/inpaint: the noised latents the loop starts from. */
  initialLatents: Float32Array;
  stepLatents: Float32Array[];
  /** The latents the loop ended with (after stepsDone steps). */
  finalLatents: Float32Array;
  /** Sampling steps run: timesteps.length unless interrupted. */
  stepsDone: number;
  /** Whether `interrupt` stopped the loop before its last step. */
  interrupted: boolean;
  /**
   * VAE output NCHW, about [-1, 1]: of finalLatents, or when interrupted of the denoised estimate
   * of the last step done (of the starting point when no step was).
   */
  decoded: Float32Array;
}

const f = Math.fround;
/** The model file's scheduler_config.json, verbatim. */
const SCHEDULER_CONFIG_KEY = sectionKey("scheduler", "config");

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function repeat(a: Float32Array, times: number): Float32Array {
  return concat(Array.from({ length: times }, () => a));
}

/**
 * Encodes prompt (and, with guidance, the negative prompt) as the pipeline feeds the UNet:
 * [uncond×n; cond×n]. Extended prompt mode: each prompt is [chunks × 77, hidden], both padded
 * to the same number of chunks (lib/prompt/encode.ts).
 */
async function encodePrompts(model: DiffusionModel, input: DenoiseInput, guided: boolean) {
  if (input.promptMode === "extended") return encodePromptsExtended(model, input, guided);
  const cond = model.tokenize(input.prompt);
  const uncond = guided ? model.tokenize(input.negativePrompt) : undefined;
  const ids = uncond ? concatInt(uncond.ids, cond.ids) : cond.ids;
  const states = await model.encodeText(ids, uncond ? 2 : 1);
  const per = states.length / (uncond ? 2 : 1);
  const condStates = repeat(states.subarray(uncond ? per : 0, uncond ? 2 * per : per), input.numImages);
  const textStates = uncond ? concat([repeat(states.subarray(0, per), input.numImages), condStates]) : condStates;
  return { cond, uncond, textStates, chunks: 1 };
}

async function encodePromptsExtended(model: DiffusionModel, input: DenoiseInput, guided: boolean) {
  const e = await encodeExtendedPrompts(model, input.prompt, guided ? input.negativePrompt : undefined);
  const condStates = repeat(e.condStates, input.numImages);
  const textStates = e.uncondStates ? concat([repeat(e.uncondStates, input.numImages), condStates]) : condStates;
  return { cond: e.cond, uncond: e.uncond, textStates, chunks: e.chunks };
}

function concatInt(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** 0.18215 * (mean + std * eps), with eps the generator's first draw, as DiagonalGaussianDistribution.sample does. */
async function encodeInitImage(model: DiffusionModel, image: PixelImage, generator: TorchGenerator, numImages: number): Promise<Float32Array> {
  const pixels = rgba8ToSignedNchw(image.rgba, image.width, image.height);
  const { mean, logvar, shape } = await model.encodeImage(pixels, [1, 3, image.height, image.width]);
  const eps = generator.randn(shape);
  const scale = f(model.scalingFactor);
  const latents = new Float32Array(mean.length);
  for (let i = 0; i < mean.length; i++) {
    const std = f(Math.exp(f(0.5 * logvar[i])));
    latents[i] = f(scale * f(mean[i] + f(std * eps[i])));
  }
  return repeat(latents, numImages);
}

export async function denoise(model: DiffusionModel, input: DenoiseInput, onProgress?: (p: GenerateProgress) => void): Promise<DenoiseTrace> {
  const started = performance.now();
  const factor = model.vaeScaleFactor;
  const latentShape: Shape4 = [input.numImages, model.latentChannels, input.height / factor, input.width / factor];
  const guided = input.guidanceScale > 1;
  const config = JSON.parse(model.metadata[SCHEDULER_CONFIG_KEY] ?? "{}") as Record<string, unknown>;
  const scheduler: Scheduler = createScheduler(input.scheduler, config, input.steps, { eta: input.eta, karras: input.karras });
  const generator = new TorchGenerator(input.seed);
  input.checkAborted?.();

  const { cond, uncond, textStates, chunks } = await encodePrompts(model, input, guided);

  let timesteps = scheduler.timesteps;
  let latents: Float32Array;
  let initialLatents: Float32Array;
  let keep: Float32Array | undefined;
  let initLatents: Float32Array | undefined;
  let noise: Float32Array | undefined;
  if (input.initImage) {
    initLatents = await encodeInitImage(model, input.initImage, generator, input.numImages);
    const start = img2imgStart(scheduler, input.strength);
    timesteps = start.timesteps;
    noise = generator.randn(latentShape);
    latents = timesteps.length > 0 ? scheduler.addNoise(initLatents, noise, start.noiseTimestep) : initLatents;
    initialLatents = latents;
    if (input.mask) {
      const m = maskToLatentKeep(input.mask.rgba, input.mask.width, input.mask.height);
      if (m.keep.length * input.numImages !== latents.length) throw new JsdError("JSD_INVALID_ARGUMENT", "mask size does not match the image size");
      keep = repeat(m.keep, input.numImages);
    }
  } else {
    initialLatents = generator.randn(latentShape);
    const sigma = f(scheduler.initNoiseSigma);
    latents = initialLatents.map((x) => f(x * sigma));
  }

  // The x0 estimate of the first `count` values (inpainting: the kept area is the init image's).
  const denoised = (noisePred: Float32Array, t: number, sample: Float32Array, count: number): Float32Array => {
    const x0 = scheduler.predictOriginal(noisePred.subarray(0, count), t, sample.subarray(0, count));
    if (keep && initLatents) for (let j = 0; j < count; j++) x0[j] = f(f(initLatents[j] * keep[j]) + f(x0[j] * f(1 - keep[j])));
    return x0;
  };
  const previewEvery = onProgress ? input.previewEvery : undefined;
  const previewShape: Shape4 = [1, latentShape[1], latentShape[2], latentShape[3]];
  const perImage = latents.length / input.numImages;

  const stepLatents: Float32Array[] = [];
  const batch = guided ? 2 * input.numImages : input.numImages;
  const unetShape: Shape4 = [batch, latentShape[1], latentShape[2], latentShape[3]];
  const g = f(input.guidanceScale);
  let interrupted = input.interrupt?.aborted === true && timesteps.length > 0;
  // What an interrupted run decodes: with no step done, the clean start (txt2img has only its noise).
  let estimate: Float32Array = initLatents ?? initialLatents;
  let stepsDone = 0;
  for (let i = 0; !interrupted && i < timesteps.length; i++) {
    input.checkAborted?.();
    const t = timesteps[i];
    const sample = latents;
    const scaled = scheduler.scaleModelInput(latents, t);
    const unetInput = guided ? concat([scaled, scaled]) : scaled;
    const prediction = await model.predictNoise({
      latents: unetInput,
      shape: unetShape,
      timesteps: new Float32Array(batch).fill(t),
      textStates,
    });
    let noisePred = prediction;
    if (guided) {
      const half = prediction.length / 2;
      noisePred = new Float32Array(half);
      for (let j = 0; j < half; j++) {
        const u = prediction[j];
        noisePred[j] = f(u + f(g * f(prediction[half + j] - u)));
      }
    }
    latents = scheduler.step(noisePred, t, latents, scheduler.acceptsGenerator ? generator : undefined);
    if (keep && initLatents && noise) {
      const proper = scheduler.addNoise(initLatents, noise, t);
      for (let j = 0; j < latents.length; j++) latents[j] = f(f(proper[j] * keep[j]) + f(latents[j] * f(1 - keep[j])));
    }
    stepLatents.push(latents);
    stepsDone = i + 1;
    const last = stepsDone === timesteps.length;
    const progress: GenerateProgress = { step: stepsDone, totalSteps: timesteps.length, elapsedMs: performance.now() - started, batch: 0 };
    if (previewEvery !== undefined && (stepsDone % previewEvery === 0 || last)) {
      progress.preview = latentsToPreview(denoised(noisePred, t, sample, perImage), previewShape);
    }
    onProgress?.(progress);
    // Checked after onProgress, which may be what fires it; a run that has done its last step is complete.
    if (!last && input.interrupt?.aborted) {
      interrupted = true;
      estimate = denoised(noisePred, t, sample, latents.length);
    }
  }

  input.checkAborted?.();
  const inverse = f(1 / model.scalingFactor);
  const scaled = (interrupted ? estimate : latents).map((x) => f(x * inverse));
  const tiled = input.vaeTiling === true || (input.vaeTiling !== false && latentShape[2] * latentShape[3] > VAE_TILING_THRESHOLD);
  const decoded = tiled ? await decodeLatentsTiled(model, scaled, latentShape) : await model.decodeLatents(scaled, latentShape);
  return {
    promptIds: cond.ids,
    negativeIds: uncond?.ids,
    droppedTokens: cond.droppedTokens,
    negativeDroppedTokens: uncond?.droppedTokens ?? 0,
    promptMode: input.promptMode ?? "reference",
    promptChunks: chunks,
    textStates,
    timesteps,
    initialLatents,
    stepLatents,
    finalLatents: latents,
    stepsDone,
    interrupted,
    decoded,
  };
}

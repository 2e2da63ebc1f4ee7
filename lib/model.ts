// A loaded JSD model: the tokenizer plus the engine's low-level calls (text encoder, UNet,
// VAE). The pipeline (generate) is built on these; they are public for tools and tests.
import { JsdError, JsdTypeError, JsdRangeError } from "./errors.js";
import { verifyModelFile } from "./verify.js";
import { sectionKey } from "./formats/model-keys.js";
import { abortError } from "./pipeline/abort.js";
import { generateImages, type GeneratedImage } from "./pipeline/generate.js";
import type { GenerateOptions } from "./pipeline/options.js";
import {
  native,
  packageRoot,
  type NativeComponentMemory,
  type NativeModel,
  type NativeModelInfo,
  type NativePlacement,
  type NativeSafetyCheckerInfo,
} from "./native/addon.js";
import type { DiffusionModel, EncodedImage, PredictNoiseInput, Shape4 } from "./pipeline/model-port.js";
import { SentencePieceModel } from "./prompt/sentencepiece.js";
import { tokenizeExtended, tokenizeReference, PROMPT_MODES, type ExtendedPromptTokens, type PromptTokens, type ReferencePromptTokens, type TokenizeOptions } from "./prompt/tokens.js";
import { JsdTokenizer } from "./prompt/tokenizer.js";
import { join } from "node:path";

import { backendOfRegistryName } from "./native/backends.js";
import { nativeLoadOptions, type LoadModelOptions } from "./load-options.js";
import { LIMITS } from "./limits.js";
import { checkConceptTables, checkFeatureExtractorSettings, type SafetyCheckerPort } from "./safety/index.js";
import { float32Array, integer, shape4 } from "./validate.js";
export type { Shape4, PredictNoiseInput, EncodedImage, DiffusionModel } from "./pipeline/model-port.js";

export { BACKENDS, type BackendName, type LoadModelOptions } from "./load-options.js";

const UNET_CONFIG_KEY = sectionKey("unet", "config");

/** diffusers' default size: the UNet's sample_size (from its stored config) × the VAE's scale factor. */
function defaultImageSize(path: string, info: NativeModelInfo): number {
  let config: { sample_size?: unknown };
  try {
    config = JSON.parse(info.metadata[UNET_CONFIG_KEY] ?? "{}") as { sample_size?: unknown };
  } catch (error) {
    throw new JsdError("JSD_BAD_MODEL", `${path}: ${UNET_CONFIG_KEY} is not valid JSON`, { cause: error });
  }
  const size = config?.sample_size;
  const sampleSize = typeof size === "number" && Number.isInteger(size) && size > 0 ? Math.min(size, 512) : 64;
  return sampleSize * info.vaeScaleFactor;
}

/** The model file's safety checker as the pipeline uses it (lib/safety's port): settings, concept tables, the vision tower. */
export interface ModelSafetyChecker extends SafetyCheckerPort {
  /** The side of the square pixel_values the vision tower takes (224). */
  readonly imageSize: number;
}

/** The native info's checker, its settings and tables checked as lib/safety reads them (JSD_BAD_MODEL otherwise). */
function safetyCheckerPort(info: NativeSafetyCheckerInfo, embedImages: SafetyCheckerPort["embedImages"]): ModelSafetyChecker {
  const { featureExtractor: f, imageSize, projectionDim, conceptEmbeds, conceptWeights, specialCareEmbeds, specialCareWeights } = info;
  const featureExtractor = checkFeatureExtractorSettings({
    ...f,
    imageMean: [f.imageMean[0], f.imageMean[1], f.imageMean[2]],
    imageStd: [f.imageStd[0], f.imageStd[1], f.imageStd[2]],
  });
  const tables = checkConceptTables({ conceptEmbeds, conceptWeights, specialCareEmbeds, specialCareWeights, projectionDim });
  return { ...tables, imageSize, featureExtractor, embedImages };
}

export class Model implements DiffusionModel {
  readonly path: string;
  readonly tokenizer: JsdTokenizer;
  readonly #native: NativeModel;
  readonly #info: NativeModelInfo;
  #closed = false;
  readonly #defaultImageSize: number;
  readonly #safetyChecker: ModelSafetyChecker | null;
  /** generate() calls run one after another: each owns the model's thread and abort switch while it runs. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string, model: NativeModel) {
    this.path = path;
    this.#native = model;
    this.#info = model.info();
    this.#defaultImageSize = defaultImageSize(path, this.#info);
    const checker = this.#info.safetyChecker;
    this.#safetyChecker = checker === null ? null : safetyCheckerPort(checker, (pixelValues, batch) => this.embedImages(pixelValues, batch));
    const t = this.#info.tokenizer;
    this.tokenizer = new JsdTokenizer(SentencePieceModel.fromBytes(this.#info.sentencepiece), {
      padId: t.padId,
      eosId: t.eosId,
      unkId: t.unkId,
      maxLength: t.modelMaxLength,
      doLowerCase: t.doLowerCase,
    });
  }

  /** @internal use loadModel() */
  static async load(path: string, options: LoadModelOptions = {}): Promise<Model> {
    if (typeof path !== "string" || path.length === 0) throw new JsdTypeError("path must be a non-empty string");
    const nativeOptions = nativeLoadOptions(options);
    if (options.verify) await verifyModelFile(path);
    const model = await native().loadModel(path, nativeOptions);
    try {
      return new Model(path, model);
    } catch (error) {
      await model.close(); // a metadata problem found on the TS side: free the native model
      throw error;
    }
  }

  /** Configs and provenance stored in the model file (JSON text under `jsd.*.config`). */
  get metadata(): Readonly<Record<string, string>> {
    return this.#info.metadata;
  }

  get textHiddenSize(): number {
    return this.#info.textHiddenSize;
  }

  get textMaxLength(): number {
    return this.#info.textMaxLength;
  }

  get latentChannels(): number {
    return this.#info.latentChannels;
  }

  get vaeScaleFactor(): number {
    return this.#info.vaeScaleFactor;
  }

  /** The VAE's latent scaling factor (0.18215 for SD v1 / JSD). */
  get scalingFactor(): number {
    return this.#info.scalingFactor;
  }

  /**
   * The model file's safety checker, or null when it has none: its feature extractor's settings, its
   * concept tables and `embedImages` (this model's), what generate() runs it with (lib/safety).
   */
  get safetyChecker(): ModelSafetyChecker | null {
    return this.#safetyChecker;
  }

  /** The image size the UNet was trained for (diffusers: sample_size × VAE scale factor): 512 for JSD, 64 for the embedded model. */
  get defaultImageSize(): number {
    return this.#defaultImageSize;
  }

  /** The backend this model computes on: "cpu", "cuda", "vulkan" or "metal". */
  get backend(): string {
    return backendOfRegistryName(this.#info.backend);
  }

  get threads(): number {
    return this.#info.threads;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #open(): NativeModel {
    if (this.#closed) throw new JsdError("JSD_CLOSED", "the model is closed");
    return this.#native;
  }

  /** Where each network runs and why, decided before the weights were loaded (sizes are device bytes). */
  placement(): NativePlacement {
    return this.#open().placement();
  }

  /** Bytes of weights (by buffer) and of the current compute buffers, per network, with the backend each runs on. */
  memory(): NativeComponentMemory[] {
    return this.#open()
      .memory()
      .map((m) => ({ ...m, backend: backendOfRegistryName(m.backend) }));
  }

  /**
   * The largest total of compute buffers the engine held at once since the last generate() began
   * (or since load): with the weights (memory()), what a run needs on its backend.
   * generate() frees its buffers when it ends, so an idle model holds only its weights.
   */
  peakComputeBytes(): number {
    return this.#open().peakComputeBytes(false);
  }

  /** @internal generate() starts a new peak measurement. */
  resetPeakComputeBytes(): void {
    this.#open().peakComputeBytes(true);
  }

  /** Frees the compute buffers the networks keep between calls (generate() does when it ends); the weights stay. */
  async releaseComputeBuffers(): Promise<void> {
    await this.#open().releaseComputeBuffers();
  }

  /**
   * Tokenizes a prompt. Default (mode "reference"): exactly as rinna's pipeline does (lower-case,
   * 77 ids, `</s>`, padding, truncation), with `count` (the text's tokens) against `limit` (76).
   * Mode "extended": the prompt syntax (emphasis, weights, BREAK) parsed and the tokens split
   * into chunks of 75, each wrapped to 77 ids; `count` against `limit` = chunks × 75, nothing
   * dropped. `formatTokenListing()` prints either.
   */
  tokenize(text: string, options?: { mode?: "reference" }): ReferencePromptTokens;
  tokenize(text: string, options: { mode: "extended" }): ExtendedPromptTokens;
  tokenize(text: string, options?: TokenizeOptions): PromptTokens;
  tokenize(text: string, options: TokenizeOptions = {}): PromptTokens {
    this.#open();
    if (options === null || typeof options !== "object") throw new JsdTypeError("options must be an object");
    const mode = options.mode ?? "reference";
    if (!PROMPT_MODES.includes(mode)) throw new JsdRangeError(`mode must be one of ${PROMPT_MODES.join(", ")}, got ${String(mode)}`);
    return mode === "extended" ? tokenizeExtended(this.tokenizer, text) : tokenizeReference(this.tokenizer, text);
  }

  /** Runs the text encoder on [batch, length] ids; returns the last hidden state [batch, length, hidden]. */
  async encodeText(ids: Int32Array, batch = 1): Promise<Float32Array> {
    const model = this.#open();
    if (!(ids instanceof Int32Array)) throw new JsdTypeError("ids must be an Int32Array");
    if (!Number.isInteger(batch) || batch < 1 || ids.length % batch !== 0 || ids.length === 0) {
      throw new JsdRangeError("ids must hold batch sequences of equal length");
    }
    return model.encodeText(ids, batch, ids.length / batch);
  }

  /** One UNet evaluation: the predicted noise for a batch of latents at their timesteps. */
  async predictNoise(input: PredictNoiseInput): Promise<Float32Array> {
    const model = this.#open();
    const shape = shape4("shape", input?.shape);
    const [n, c, h, w] = shape;
    const latents = float32Array("latents", input.latents, n * c * h * w);
    const timesteps = Float32Array.from(input.timesteps ?? []);
    if (timesteps.length !== n) throw new JsdRangeError(`timesteps must hold one value per batch entry (${n})`);
    const hidden = this.#info.textHiddenSize;
    const textStates = input.textStates;
    if (!(textStates instanceof Float32Array) || textStates.length === 0 || textStates.length % (n * hidden) !== 0) {
      throw new JsdRangeError(`textStates must be a Float32Array of [${n}, length, ${hidden}]`);
    }
    return model.predictNoise(latents, shape, timesteps, textStates, textStates.length / (n * hidden), hidden);
  }

  /** VAE decoder: latents (already multiplied by 1/scalingFactor) to an image NCHW in about [-1, 1]. */
  async decodeLatents(latents: Float32Array, shape: Shape4): Promise<Float32Array> {
    const model = this.#open();
    shape4("shape", shape);
    float32Array("latents", latents, shape[0] * shape[1] * shape[2] * shape[3]);
    return model.decodeLatents(latents, shape);
  }

  /** VAE encoder: an image NCHW in [-1, 1] to the posterior's mean and log-variance. */
  async encodeImage(pixels: Float32Array, shape: Shape4): Promise<EncodedImage> {
    const model = this.#open();
    shape4("shape", shape);
    float32Array("pixels", pixels, shape[0] * shape[1] * shape[2] * shape[3]);
    const moments = await model.encodeImage(pixels, shape);
    const f = this.#info.vaeScaleFactor;
    const latent = this.#info.latentChannels;
    const [n, , h, w] = shape;
    const plane = latent * (h / f) * (w / f);
    const mean = new Float32Array(n * plane);
    const logvar = new Float32Array(n * plane);
    for (let b = 0; b < n; b++) {
      mean.set(moments.subarray(2 * b * plane, (2 * b + 1) * plane), b * plane);
      const lv = moments.subarray((2 * b + 1) * plane, (2 * b + 2) * plane);
      for (let i = 0; i < plane; i++) logvar[b * plane + i] = Math.min(Math.max(lv[i], -30), 20);
    }
    return { mean, logvar, shape: [n, latent, h / f, w / f] };
  }

  /**
   * The safety checker's image embeddings (`visual_projection` of the CLIP vision tower's pooled
   * output), [batch, projectionDim], of the feature extractor's pixel_values [batch, 3, imageSize,
   * imageSize]. Rejects with JSD_NO_SAFETY_CHECKER when the model file has no checker.
   */
  async embedImages(pixelValues: Float32Array, batch = 1): Promise<Float32Array> {
    const model = this.#open();
    const checker = this.#info.safetyChecker;
    if (checker === null) throw new JsdError("JSD_NO_SAFETY_CHECKER", `${this.path} has no safety checker`);
    integer("batch", batch, 1, LIMITS.batchMax);
    float32Array("pixelValues", pixelValues, batch * 3 * checker.imageSize * checker.imageSize);
    return model.embedImages(pixelValues, batch);
  }

  /**
   * Generates images: txt2img, img2img (initImage) or inpainting (initImage + mask), with
   * rinna's pipelines' exact semantics. Calls on one model are queued and run in order;
   * an aborted call waiting in the queue rejects at once.
   */
  generate(options: GenerateOptions): Promise<GeneratedImage[]> {
    try {
      this.#open();
    } catch (error) {
      return Promise.reject(error);
    }
    const signal = options?.signal instanceof AbortSignal ? options.signal : undefined;
    let started = false;
    let leaveQueue: ((reason: unknown) => void) | undefined;
    const onAbort = () => {
      // Still waiting for earlier calls: leave at once. Once running, the run rejects itself.
      if (!started) leaveQueue?.(abortError(signal!));
    };
    const run = this.#queue.then(() => {
      started = true;
      this.#open();
      return generateImages(this, options);
    });
    this.#queue = run.catch(() => undefined);
    if (!signal) return run;
    signal.addEventListener("abort", onAbort, { once: true });
    const settled = run.finally(() => signal.removeEventListener("abort", onAbort));
    return Promise.race([settled, new Promise<never>((_, reject) => (leaveQueue = reject))]);
  }

  /** Stops the computation in progress at its next graph node; that call rejects with JSD_ABORTED. */
  abortCurrent(): void {
    if (!this.#closed) this.#native.abort();
  }

  /** Frees the native memory once pending calls finish. Later calls throw JSD_CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#native.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The model shipped with the package: tiny-jsd-shapes, a 7 M-parameter JSD-architecture model
 * trained by this project on simple coloured shapes and a few Japanese motifs, 64×64 only.
 */
export const DEFAULT_MODEL_PATH = join(packageRoot, "models", "tiny-jsd-shapes.gguf");

/**
 * Loads a JSD model file (GGUF written by `jsd convert`), validating it before any compute.
 * Without a path, loads the embedded default model.
 */
export function loadModel(path: string = DEFAULT_MODEL_PATH, options?: LoadModelOptions): Promise<Model> {
  return Model.load(path, options);
}

/** Where each network of a model (text encoder, UNet, VAE) runs, and why. */
export type Placement = NativePlacement;

/**
 * The placement loadModel() would make with these options, without loading any weight: which
 * networks go on the GPU and which on the CPU, with their device bytes (weights and the compute
 * buffer the planned image size needs). Rejects with JSD_OOM where loadModel() would.
 */
export async function planModel(path: string = DEFAULT_MODEL_PATH, options: LoadModelOptions = {}): Promise<Placement> {
  if (typeof path !== "string" || path.length === 0) throw new JsdTypeError("path must be a non-empty string");
  return native().planModel(path, nativeLoadOptions(options));
}

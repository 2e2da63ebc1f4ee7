// What the pipeline needs from a model, and nothing more: the tokenizer, the three networks and
// a few facts. `Model` (lib/model.ts) implements it over the native engine; tests can hand the
// pipeline a fake written in TypeScript. The pipeline imports no concrete model.
import type { ReferencePromptTokens } from "../prompt/tokens.js";
import type { JsdTokenizer } from "../prompt/tokenizer.js";
import type { SafetyCheckerPort } from "../safety/index.js";

import type { Shape4 } from "../shape.js";

export type { Shape4 };

export interface PredictNoiseInput {
  /** Latents, NCHW flattened. */
  latents: Float32Array;
  /** [batch, channels, height, width] of the latents. */
  shape: Shape4;
  /** One timestep per batch entry (fractional values allowed, as K-diffusion schedulers use). */
  timesteps: Float32Array | readonly number[];
  /** Text-encoder states [batch, length, hidden], flattened. */
  textStates: Float32Array;
}

export interface EncodedImage {
  /** Posterior mean [batch, latentChannels, h/8, w/8], NCHW flattened. */
  mean: Float32Array;
  /** Posterior log-variance, clamped to [-30, 20] as diffusers does. */
  logvar: Float32Array;
  shape: Shape4;
}

export interface DiffusionModel {
  /** The model file's metadata (GGUF key → string value). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly tokenizer: JsdTokenizer;
  readonly textHiddenSize: number;
  readonly latentChannels: number;
  /** Pixels per latent along each side (8 for SD v1). */
  readonly vaeScaleFactor: number;
  /** The VAE's latent scaling factor (0.18215 for SD v1). */
  readonly scalingFactor: number;
  readonly defaultImageSize: number;
  /** Where it computes ("cpu", "cuda", ...), for the PNG's parameters. */
  readonly backend: string;
  /** The model file's safety checker (its settings, tables and vision tower), or null/absent when it has none. */
  readonly safetyChecker?: SafetyCheckerPort | null;
  tokenize(text: string): ReferencePromptTokens;
  /** Last hidden state [batch, length, hidden] of [batch, length] ids. */
  encodeText(ids: Int32Array, batch?: number): Promise<Float32Array>;
  predictNoise(input: PredictNoiseInput): Promise<Float32Array>;
  decodeLatents(latents: Float32Array, shape: Shape4): Promise<Float32Array>;
  encodeImage(pixels: Float32Array, shape: Shape4): Promise<EncodedImage>;
  /** Interrupts the network call in progress (abort). */
  abortCurrent(): void;
  /** Frees the compute buffers kept between calls (the weights stay). */
  releaseComputeBuffers(): Promise<void>;
  resetPeakComputeBytes(): void;
  peakComputeBytes(): number;
}

import type { TorchGenerator } from "../rng/torch-generator.js";
import type { SchedulerConfig } from "./config.js";

export type SchedulerName = "pndm" | "ddim" | "lms" | "euler" | "euler_a" | "dpmpp_2m";

export interface SchedulerOptions {
  /** DDIM only: the eta of the DDIM paper (0 = deterministic). With eta > 0, step() needs a generator. */
  eta?: number;
  /** Karras et al. (2022) sigmas (rho = 7) instead of the linear timestep spacing: the schedulers in KARRAS_SCHEDULERS only. */
  karras?: boolean;
}

/**
 * A diffusers 0.8.1 scheduler with its timesteps already set. Tensors are flat float32 arrays in
 * row-major order and may hold a batch ([B, 4, h, w]); all operations are element-wise, and the noise
 * a step draws is `generator.randn` of the sample's full shape, which only depends on the element
 * count. Schedulers are stateful (multistep history): use one instance per generation, and call
 * step() once per timestep, in order.
 */
export interface Scheduler {
  readonly name: SchedulerName;
  /** The diffusers class this reproduces. */
  readonly className: string;
  readonly config: Readonly<SchedulerConfig>;
  readonly numInferenceSteps: number;
  /** The timesteps as diffusers holds them: integers for PNDM/DDIM/DPMSolver, float64 for LMS/Euler. */
  readonly timesteps: Float64Array;
  /** The sigma of each timestep plus a final 0 (float32), for the sigma-based schedulers and DPM-Solver++ with Karras sigmas. */
  readonly sigmas?: Float32Array;
  /** Multiply the initial N(0, 1) latents by this (float32 value). */
  readonly initNoiseSigma: number;
  /** The `steps_offset` diffusers 0.8.1 sees for this scheduler: the config's for PNDM and DDIM, else 0. */
  readonly stepsOffset: number;
  /** Whether diffusers passes `generator` to this scheduler's step() (it draws from it: DDIM, Euler, Euler ancestral). */
  readonly acceptsGenerator: boolean;
  /** Re-computes the timesteps for `steps` inference steps and clears the multistep state. */
  setTimesteps(steps: number): void;
  /** The UNet input for timestep t (a new array). */
  scaleModelInput(sample: Float32Array, t: number): Float32Array;
  /** One denoising step from t; returns the new sample (a new array). */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, generator?: TorchGenerator): Float32Array;
  /**
   * The denoised estimate x0 (diffusers' `pred_original_sample`) that `modelOutput`, the noise
   * predicted at t for `sample` (the latents given to step() for t), implies; a new array, and
   * the scheduler's state is left alone, so it may be called before or after step(). It is what
   * live previews show and what an interrupted run decodes: the noisy latents themselves would
   * mostly show noise until the last steps.
   */
  predictOriginal(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array;
  /** Noises `original` to timestep t (a new array). */
  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array;
}

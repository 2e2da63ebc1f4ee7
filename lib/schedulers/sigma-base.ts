// Timesteps, sigmas and the x0 estimate shared by the sigma-based schedulers of diffusers 0.8.1
// (LMSDiscrete, EulerDiscrete, EulerAncestralDiscrete).
import { JsdError } from "../errors.js";
import { resolveSchedulerConfig, type SchedulerConfig } from "./config.js";
import {
  addNoiseSigma,
  indexOfTimestep,
  interpUnitGrid,
  karrasSchedule,
  noiseSchedule,
  npLinspace,
  predictOriginalSigma,
  scaleBySigma,
  trainingSigmas,
} from "./common.js";
import { checkSteps } from "./pndm.js";

export abstract class SigmaScheduler {
  abstract readonly className: string;
  readonly config: Readonly<SchedulerConfig>;
  readonly alphasCumprod: Float32Array;
  /** sqrt((1 - ac) / ac) per training timestep (ascending t), float32. */
  readonly trainSigmas: Float32Array;
  /** diffusers 0.8.1: the largest training sigma, whatever the number of steps. */
  readonly initNoiseSigma: number;
  readonly stepsOffset = 0;
  readonly karras: boolean;
  numInferenceSteps = 0;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);

  constructor(config: Partial<SchedulerConfig>, karras: boolean) {
    this.config = resolveSchedulerConfig(config);
    this.karras = karras;
    this.alphasCumprod = noiseSchedule(this.config).alphasCumprod;
    this.trainSigmas = trainingSigmas(this.alphasCumprod);
    let max = -Infinity;
    for (const s of this.trainSigmas) if (s > max) max = s;
    this.initNoiseSigma = max;
  }

  setTimesteps(steps: number): void {
    const numTrain = this.config.num_train_timesteps;
    checkSteps(steps, numTrain, this.className);
    this.numInferenceSteps = steps;
    const sigmas = new Float32Array(steps + 1);
    let timesteps: Float64Array;
    if (this.karras) {
      const k = karrasSchedule(this.trainSigmas, steps);
      timesteps = k.timesteps;
      sigmas.set(k.sigmas);
    } else {
      timesteps = npLinspace(0, numTrain - 1, steps).reverse();
      for (let i = 0; i < steps; i++) sigmas[i] = interpUnitGrid(timesteps[i], this.trainSigmas);
    }
    sigmas[steps] = 0;
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.resetState();
  }

  protected abstract resetState(): void;

  protected stepIndex(t: number, who: string): number {
    if (this.numInferenceSteps === 0) throw new JsdError("JSD_INVALID_ARGUMENT", `${this.className}: call setTimesteps first`);
    return indexOfTimestep(this.timesteps, t, who);
  }

  scaleModelInput(sample: Float32Array, t: number): Float32Array {
    return scaleBySigma(sample, this.sigmas[this.stepIndex(t, `${this.className}.scaleModelInput`)]);
  }

  /** x - sigma*eps with the sigma of timestep t, as Euler's and LMS's step() compute pred_original_sample. */
  predictOriginal(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    const sigma = this.sigmas[this.stepIndex(t, `${this.className}.predictOriginal`)];
    return predictOriginalSigma(sigma, modelOutput, sample, this.className);
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    const sigma = this.sigmas[this.stepIndex(t, `${this.className}.addNoise`)];
    return addNoiseSigma(sigma, original, noise, this.className);
  }
}

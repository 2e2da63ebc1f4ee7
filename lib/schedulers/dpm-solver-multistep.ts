// DPMSolverMultistepScheduler: DPM-Solver++ (data prediction), multistep, order 1 or 2, on one of
// two schedules.
//
// Default: diffusers 0.8.1, with its quirks kept:
// - timesteps are linspace(0, T-1, n+1).round() reversed without the last (t = 0) entry;
// - the last step goes to t = 0, i.e. alphas_cumprod[0], not to sigma = 0;
// - second order from the second call on; first order on the last step only when n < 15.
//
// `karras: true` ("DPM++ 2M Karras"): later diffusers' use_karras_sigmas = True with its defaults
// (final_sigmas_type "zero"), which is also k-diffusion's sample_dpmpp_2m on get_sigmas_karras:
// - the noise levels are n Karras sigmas (rho 7) from the training schedule's largest sigma to its
//   smallest, then 0; each sigma becomes alpha = 1/sqrt(sigma² + 1), sigma_t = sigma*alpha;
// - the UNet is called at each sigma's fractional timestep (log-sigma interpolation), as our Euler
//   and LMS with Karras sigmas do and as k-diffusion does (A1111's default, no quantization). Later
//   diffusers rounds these timesteps to integers for the UNet while its update uses the exact sigma;
//   we keep timestep and sigma the same point of the schedule;
// - the first step is first order (no history), every other step second order, and the last step,
//   to sigma 0, first order whatever the step count: diffusers forces it for final_sigmas_type "zero"
//   and k-diffusion for sigma_next = 0. It returns x0 itself (alpha 1, sigma 0, e^-h = 0).
import { JsdError } from "../errors.js";
import type { TorchGenerator } from "../rng/torch-generator.js";
import { resolveSchedulerConfig, type SchedulerConfig } from "./config.js";
import {
  addNoiseAlpha,
  addNoiseVp,
  checkSameLength,
  indexOfTimestep,
  karrasSchedule,
  noiseSchedule,
  npLinspace,
  predictOriginalAlpha,
  predictOriginalVp,
  roundHalfEven,
  trainIndex,
  trainingSigmas,
} from "./common.js";
import { alphaCumprodLevel, firstOrderUpdate, secondOrderUpdate, sigmaLevel, type NoiseLevel } from "./dpm-solver-update.js";
import { checkSteps } from "./pndm.js";
import type { Scheduler } from "./types.js";

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly name = "dpmpp_2m" as const;
  readonly className = "DPMSolverMultistepScheduler";
  readonly config: Readonly<SchedulerConfig>;
  readonly initNoiseSigma = 1;
  readonly stepsOffset = 0;
  readonly acceptsGenerator = false;
  readonly karras: boolean;
  readonly alphasCumprod: Float32Array;
  /** The level of each training timestep, float32. */
  readonly trainLevels: readonly NoiseLevel[];
  numInferenceSteps = 0;
  timesteps: Float64Array = new Float64Array(0);
  /** With Karras sigmas only: the sigma of each timestep plus the final 0 (float32). */
  sigmas?: Float32Array;
  /** The level of each timestep, then the one the last step goes to. */
  #levels: NoiseLevel[] = [];
  #modelOutputs: (Float32Array | null)[] = [];
  #lowerOrderNums = 0;

  constructor(config: Partial<SchedulerConfig> = {}, steps?: number, options: { karras?: boolean } = {}) {
    this.config = resolveSchedulerConfig(config);
    const c = this.config;
    if (c.algorithm_type !== "dpmsolver++") throw unsupported(`algorithm_type ${c.algorithm_type}`);
    if (c.solver_order !== 1 && c.solver_order !== 2) throw unsupported(`solver_order ${c.solver_order}`);
    if (c.solver_type !== "midpoint" && c.solver_type !== "heun") throw unsupported(`solver_type ${c.solver_type}`);
    if (!c.predict_epsilon) throw unsupported("predict_epsilon = false");
    if (c.thresholding) throw unsupported("thresholding");
    this.karras = options.karras ?? false;
    this.alphasCumprod = noiseSchedule(c).alphasCumprod;
    this.trainLevels = Array.from(this.alphasCumprod, alphaCumprodLevel);
    if (steps !== undefined) this.setTimesteps(steps);
  }

  setTimesteps(steps: number): void {
    const numTrain = this.config.num_train_timesteps;
    checkSteps(steps, numTrain, this.className);
    this.numInferenceSteps = steps;
    if (this.karras) {
      const k = karrasSchedule(trainingSigmas(this.alphasCumprod), steps);
      const sigmas = new Float32Array(steps + 1); // the last stays 0
      sigmas.set(k.sigmas);
      this.timesteps = k.timesteps;
      this.sigmas = sigmas;
      this.#levels = Array.from(sigmas, sigmaLevel);
    } else {
      const grid = npLinspace(0, numTrain - 1, steps + 1);
      this.timesteps = Float64Array.from({ length: steps }, (_, i) => roundHalfEven(grid[steps - i]));
      this.#levels = [...Array.from(this.timesteps, (t) => this.trainLevels[t]), this.trainLevels[0]];
    }
    this.#modelOutputs = new Array<Float32Array | null>(this.config.solver_order).fill(null);
    this.#lowerOrderNums = 0;
  }

  scaleModelInput(sample: Float32Array, _t: number): Float32Array {
    return sample.slice();
  }

  /** The step a timestep belongs to. diffusers 0.8.1 takes an unknown timestep as the last step; with Karras sigmas it is an error. */
  #stepIndex(t: number, who: string): number {
    if (this.numInferenceSteps === 0) throw new JsdError("JSD_INVALID_ARGUMENT", `${this.className}: call setTimesteps first`);
    if (this.karras) return indexOfTimestep(this.timesteps, t, who);
    const i = this.timesteps.indexOf(t);
    return i < 0 ? this.timesteps.length - 1 : i;
  }

  /** The level of the sample at t: 0.8.1 reads it from t itself (even past the fallback above), Karras from the schedule. */
  #level(t: number, who: string): NoiseLevel {
    if (this.karras) return this.#levels[this.#stepIndex(t, who)];
    return this.trainLevels[trainIndex(t, this.config.num_train_timesteps, who)];
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, _generator?: TorchGenerator): Float32Array {
    const who = `${this.className}.step`;
    const stepIndex = this.#stepIndex(t, who);
    checkSameLength(who, modelOutput, sample);
    const last = this.timesteps.length - 1;
    // Karras: the step to sigma 0 is first order at any step count (see the top of the file).
    const lowerOrderFinal = stepIndex === last && (this.karras || (this.config.lower_order_final && this.timesteps.length < 15));

    // convert_model_output: the x0 prediction, the very one predictOriginal() gives previews.
    const current = this.#level(t, who);
    const x0 = this.predictOriginal(modelOutput, t, sample);
    const outputs = this.#modelOutputs;
    for (let i = 0; i < outputs.length - 1; i++) outputs[i] = outputs[i + 1];
    outputs[outputs.length - 1] = x0;

    const next = this.#levels[stepIndex + 1];
    let out: Float32Array;
    if (this.config.solver_order === 1 || this.#lowerOrderNums < 1 || lowerOrderFinal) {
      out = firstOrderUpdate(current, next, sample, x0);
    } else {
      // The previous model output belongs to the timestep before this one (a repeated first step has none).
      if (stepIndex === 0) throw new JsdError("JSD_INVALID_ARGUMENT", `${who}: timestep ${t} has no step before it for a second-order update`);
      out = secondOrderUpdate(this.config.solver_type, this.#levels[stepIndex - 1], current, next, sample, x0, outputs[outputs.length - 2]!);
    }
    if (this.#lowerOrderNums < this.config.solver_order) this.#lowerOrderNums++;
    return out;
  }

  /**
   * DPM-Solver++ works on data predictions: its convert_model_output is the x0 of
   * x = alpha_t*x0 + sigma_t*eps, (x - sigma_t*eps) / alpha_t, which is what step() feeds the solver.
   */
  predictOriginal(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    if (!this.karras) return predictOriginalAlpha(this.alphasCumprod, modelOutput, t, sample, this.className);
    const who = `${this.className}.predictOriginal`;
    const n = checkSameLength(who, modelOutput, sample);
    const level = this.#level(t, who);
    return predictOriginalVp(level.alpha, level.sigma, modelOutput, sample, n);
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    if (!this.karras) return addNoiseAlpha(this.alphasCumprod, original, noise, t, this.className);
    const who = `${this.className}.addNoise`;
    const n = checkSameLength(who, original, noise);
    const level = this.#level(t, who);
    return addNoiseVp(level.alpha, level.sigma, original, noise, n);
  }
}

function unsupported(what: string): JsdError {
  return new JsdError("JSD_INVALID_ARGUMENT", `DPMSolverMultistepScheduler: ${what} is not supported`);
}

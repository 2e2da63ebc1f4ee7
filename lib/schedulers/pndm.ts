// PNDMScheduler of diffusers 0.8.1 with skip_prk_steps (pseudo linear multistep only).
import { JsdError } from "../errors.js";
import type { TorchGenerator } from "../rng/torch-generator.js";
import { AlphaScheduler } from "./alpha-base.js";
import type { SchedulerConfig } from "./config.js";
import { addNoiseAlpha, checkSameLength, f, sqrtf, trainIndex } from "./common.js";
import type { Scheduler } from "./types.js";

export class PNDMScheduler extends AlphaScheduler implements Scheduler {
  readonly name = "pndm" as const;
  readonly className = "PNDMScheduler";
  readonly acceptsGenerator = false;
  numInferenceSteps = 0;
  timesteps: Float64Array = new Float64Array(0);
  #ets: Float32Array[] = [];
  #counter = 0;
  #curSample: Float32Array | null = null;

  constructor(config: Partial<SchedulerConfig> = {}, steps?: number) {
    super(config);
    if (!this.config.skip_prk_steps) {
      throw new JsdError("JSD_INVALID_ARGUMENT", "PNDMScheduler: only skip_prk_steps = true is supported");
    }
    if (steps !== undefined) this.setTimesteps(steps);
  }

  setTimesteps(steps: number): void {
    checkSteps(steps, this.config.num_train_timesteps, "PNDMScheduler");
    this.numInferenceSteps = steps;
    const base = this.leadingTimesteps(steps);
    // [t0, t1, ..., t_{n-2}, t_{n-2}, t_{n-1}] reversed: the first PLMS step is done twice.
    const plms = [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
    this.timesteps = Float64Array.from(plms);
    this.#ets = [];
    this.#counter = 0;
    this.#curSample = null;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, _generator?: TorchGenerator): Float32Array {
    if (this.numInferenceSteps === 0) throw new JsdError("JSD_INVALID_ARGUMENT", "PNDMScheduler: call setTimesteps first");
    const n = checkSameLength("PNDMScheduler.step", modelOutput, sample);
    const ratio = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    let timestep = t;
    let prevTimestep = t - ratio;
    if (this.#counter !== 1) {
      this.#ets.push(modelOutput.slice());
    } else {
      prevTimestep = t;
      timestep = t + ratio;
    }
    const ets = this.#ets;
    let eps: Float32Array;
    if (ets.length === 1 && this.#counter === 0) {
      eps = modelOutput;
      this.#curSample = sample.slice();
    } else if (ets.length === 1 && this.#counter === 1) {
      const e1 = ets[0];
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f(modelOutput[i] + e1[i]) / 2;
      sample = this.#curSample!;
      this.#curSample = null;
    } else if (ets.length === 2) {
      const [e2, e1] = ets.slice(-2);
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f(f(3 * e1[i]) - e2[i]) / 2;
    } else if (ets.length === 3) {
      const [e3, e2, e1] = ets.slice(-3);
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f(f(f(23 * e1[i]) - f(16 * e2[i])) + f(5 * e3[i])) / 12;
    } else {
      const [e4, e3, e2, e1] = ets.slice(-4);
      const c = f(1 / 24);
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        eps[i] = c * f(f(f(f(55 * e1[i]) - f(59 * e2[i])) + f(37 * e3[i])) - f(9 * e4[i]));
      }
    }
    if (ets.length > 4) ets.shift(); // only the last four are ever read
    const prev = this.#prevSample(sample, timestep, prevTimestep, eps);
    this.#counter++;
    return prev;
  }

  /** Formula (9) of the PNDM paper, in float32 as diffusers computes it. */
  #prevSample(sample: Float32Array, timestep: number, prevTimestep: number, eps: Float32Array): Float32Array {
    const numTrain = this.config.num_train_timesteps;
    const a = this.alphasCumprod[trainIndex(timestep, numTrain, "PNDMScheduler.step")];
    const aPrev = prevTimestep >= 0 ? this.alphasCumprod[trainIndex(prevTimestep, numTrain, "PNDMScheduler.step")] : this.finalAlphaCumprod;
    const b = f(1 - a);
    const bPrev = f(1 - aPrev);
    const sampleCoeff = sqrtf(f(aPrev / a));
    const denom = f(f(a * sqrtf(bPrev)) + sqrtf(f(f(a * b) * aPrev)));
    const diff = f(aPrev - a);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = f(sampleCoeff * sample[i]) - f(f(diff * eps[i]) / denom);
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    return addNoiseAlpha(this.alphasCumprod, original, noise, t, "PNDMScheduler");
  }
}

export function checkSteps(steps: number, numTrain: number, who: string): void {
  if (!Number.isSafeInteger(steps) || steps < 1 || steps > numTrain) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `${who}: the number of inference steps must be an integer in [1, ${numTrain}], got ${steps}`);
  }
}

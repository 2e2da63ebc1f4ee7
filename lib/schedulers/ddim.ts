// DDIMScheduler of diffusers 0.8.1 (leading timestep spacing, eta, optional clip_sample).
import { JsdError } from "../errors.js";
import type { TorchGenerator } from "../rng/torch-generator.js";
import { AlphaScheduler } from "./alpha-base.js";
import type { SchedulerConfig } from "./config.js";
import { addNoiseAlpha, checkSameLength, f, requireGenerator, sqrtf, trainIndex } from "./common.js";
import { checkSteps } from "./pndm.js";
import type { Scheduler } from "./types.js";

export class DDIMScheduler extends AlphaScheduler implements Scheduler {
  readonly name = "ddim" as const;
  readonly className = "DDIMScheduler";
  readonly acceptsGenerator = true;
  readonly eta: number;
  numInferenceSteps = 0;
  timesteps: Float64Array = new Float64Array(0);

  constructor(config: Partial<SchedulerConfig> = {}, steps?: number, eta = 0) {
    super(config);
    if (!(Number.isFinite(eta) && eta >= 0)) throw new JsdError("JSD_INVALID_ARGUMENT", `DDIMScheduler: eta must be >= 0, got ${eta}`);
    this.eta = eta;
    if (steps !== undefined) this.setTimesteps(steps);
  }

  setTimesteps(steps: number): void {
    checkSteps(steps, this.config.num_train_timesteps, "DDIMScheduler");
    this.numInferenceSteps = steps;
    this.timesteps = Float64Array.from(this.leadingTimesteps(steps).reverse());
  }

  #alphaPair(t: number): [number, number] {
    const ratio = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    const prevT = t - ratio;
    const numTrain = this.config.num_train_timesteps;
    const a = this.alphasCumprod[trainIndex(t, numTrain, "DDIMScheduler.step")];
    const aPrev = prevT >= 0 ? this.alphasCumprod[trainIndex(prevT, numTrain, "DDIMScheduler.step")] : this.finalAlphaCumprod;
    return [a, aPrev];
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, generator?: TorchGenerator): Float32Array {
    if (this.numInferenceSteps === 0) throw new JsdError("JSD_INVALID_ARGUMENT", "DDIMScheduler: call setTimesteps first");
    const n = checkSameLength("DDIMScheduler.step", modelOutput, sample);
    const [a, aPrev] = this.#alphaPair(t);
    const b = f(1 - a);
    const sqrtB = sqrtf(b);
    const sqrtA = sqrtf(a);
    // _get_variance
    const bPrev = f(1 - aPrev);
    const variance = f(f(bPrev / b) * f(1 - f(a / aPrev)));
    const eta = f(this.eta);
    const stdDev = f(eta * sqrtf(variance));
    const dirCoeff = sqrtf(f(f(1 - aPrev) - f(stdDev * stdDev)));
    const sqrtAPrev = sqrtf(aPrev);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let x0 = f(f(sample[i] - f(sqrtB * modelOutput[i])) / sqrtA);
      if (this.config.clip_sample) x0 = Math.min(1, Math.max(-1, x0));
      out[i] = f(sqrtAPrev * x0) + f(dirCoeff * modelOutput[i]);
    }
    if (this.eta > 0) {
      const noise = requireGenerator(generator, "DDIMScheduler with eta > 0").randn([n]);
      const scale = f(sqrtf(variance) * eta);
      for (let i = 0; i < n; i++) out[i] = out[i] + f(scale * noise[i]);
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    return addNoiseAlpha(this.alphasCumprod, original, noise, t, "DDIMScheduler");
  }
}

// DPMSolverMultistepScheduler of diffusers 0.8.1: DPM-Solver++ (data prediction), multistep,
// order 1 or 2. Quirks of 0.8.1 kept here:
// - timesteps are linspace(0, T-1, n+1).round() reversed without the last (t = 0) entry;
// - the last step goes to t = 0, i.e. alphas_cumprod[0], not to sigma = 0;
// - second order from the second call on; first order on the last step only when n < 15.
import { JsdError } from "../errors.js";
import type { TorchGenerator } from "../rng/torch-generator.js";
import { resolveSchedulerConfig, type SchedulerConfig } from "./config.js";
import { addNoiseAlpha, checkSameLength, expf, f, logf, noiseSchedule, npLinspace, predictOriginalAlpha, roundHalfEven, sqrtf, trainIndex } from "./common.js";
import { checkSteps } from "./pndm.js";
import type { Scheduler } from "./types.js";

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly name = "dpmpp_2m" as const;
  readonly className = "DPMSolverMultistepScheduler";
  readonly config: Readonly<SchedulerConfig>;
  readonly initNoiseSigma = 1;
  readonly stepsOffset = 0;
  readonly acceptsGenerator = false;
  readonly alphasCumprod: Float32Array;
  /** sqrt(ac), sqrt(1 - ac) and log(alpha) - log(sigma) per training timestep, float32. */
  readonly alphaT: Float32Array;
  readonly sigmaT: Float32Array;
  readonly lambdaT: Float32Array;
  numInferenceSteps = 0;
  timesteps: Float64Array = new Float64Array(0);
  #modelOutputs: (Float32Array | null)[] = [];
  #lowerOrderNums = 0;

  constructor(config: Partial<SchedulerConfig> = {}, steps?: number) {
    this.config = resolveSchedulerConfig(config);
    const c = this.config;
    if (c.algorithm_type !== "dpmsolver++") throw unsupported(`algorithm_type ${c.algorithm_type}`);
    if (c.solver_order !== 1 && c.solver_order !== 2) throw unsupported(`solver_order ${c.solver_order}`);
    if (c.solver_type !== "midpoint" && c.solver_type !== "heun") throw unsupported(`solver_type ${c.solver_type}`);
    if (!c.predict_epsilon) throw unsupported("predict_epsilon = false");
    if (c.thresholding) throw unsupported("thresholding");
    this.alphasCumprod = noiseSchedule(c).alphasCumprod;
    const n = this.alphasCumprod.length;
    this.alphaT = new Float32Array(n);
    this.sigmaT = new Float32Array(n);
    this.lambdaT = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const ac = this.alphasCumprod[i];
      this.alphaT[i] = sqrtf(ac);
      this.sigmaT[i] = sqrtf(f(1 - ac));
      this.lambdaT[i] = f(logf(this.alphaT[i]) - logf(this.sigmaT[i]));
    }
    if (steps !== undefined) this.setTimesteps(steps);
  }

  setTimesteps(steps: number): void {
    const numTrain = this.config.num_train_timesteps;
    checkSteps(steps, numTrain, this.className);
    this.numInferenceSteps = steps;
    const grid = npLinspace(0, numTrain - 1, steps + 1);
    this.timesteps = Float64Array.from({ length: steps }, (_, i) => roundHalfEven(grid[steps - i]));
    this.#modelOutputs = new Array<Float32Array | null>(this.config.solver_order).fill(null);
    this.#lowerOrderNums = 0;
  }

  scaleModelInput(sample: Float32Array, _t: number): Float32Array {
    return sample.slice();
  }

  #index(t: number, who: string): number {
    return trainIndex(t, this.config.num_train_timesteps, who);
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, _generator?: TorchGenerator): Float32Array {
    if (this.numInferenceSteps === 0) throw new JsdError("JSD_INVALID_ARGUMENT", `${this.className}: call setTimesteps first`);
    const n = checkSameLength(`${this.className}.step`, modelOutput, sample);
    const who = `${this.className}.step`;
    const timesteps = this.timesteps;
    const last = timesteps.length - 1;
    let stepIndex = timesteps.indexOf(t);
    if (stepIndex < 0) stepIndex = last; // diffusers 0.8.1 does the same
    const prevT = stepIndex === last ? 0 : timesteps[stepIndex + 1];
    const lowerOrderFinal = stepIndex === last && this.config.lower_order_final && timesteps.length < 15;

    // convert_model_output: the x0 prediction, the very one predictOriginal() gives previews.
    const s = this.#index(t, who);
    const sigmaS = this.sigmaT[s];
    const x0 = this.predictOriginal(modelOutput, t, sample);
    const outputs = this.#modelOutputs;
    for (let i = 0; i < outputs.length - 1; i++) outputs[i] = outputs[i + 1];
    outputs[outputs.length - 1] = x0;

    const tt = this.#index(prevT, who);
    const alphaTT = this.alphaT[tt];
    const ratio = f(this.sigmaT[tt] / sigmaS);
    const h = f(this.lambdaT[tt] - this.lambdaT[s]);
    const expm1 = f(expf(-h) - 1);
    const d0Coeff = f(alphaTT * expm1);
    const out = new Float32Array(n);
    if (this.config.solver_order === 1 || this.#lowerOrderNums < 1 || lowerOrderFinal) {
      for (let i = 0; i < n; i++) out[i] = f(ratio * sample[i]) - f(d0Coeff * x0[i]);
    } else {
      // Second order: the previous model output belongs to timesteps[stepIndex - 1].
      const s1 = this.#index(timesteps[stepIndex - 1], who);
      const m1 = outputs[outputs.length - 2]!;
      const h0 = f(this.lambdaT[s] - this.lambdaT[s1]);
      const r0 = f(h0 / h);
      const invR0 = f(1 / r0);
      let d1Coeff: number;
      let d1Sign: number;
      if (this.config.solver_type === "midpoint") {
        d1Coeff = f(0.5 * d0Coeff);
        d1Sign = -1;
      } else {
        d1Coeff = f(alphaTT * f(f(expm1 / h) + 1));
        d1Sign = 1;
      }
      for (let i = 0; i < n; i++) {
        const d1 = f(invR0 * f(x0[i] - m1[i]));
        const a = f(f(ratio * sample[i]) - f(d0Coeff * x0[i]));
        out[i] = a + d1Sign * f(d1Coeff * d1);
      }
    }
    if (this.#lowerOrderNums < this.config.solver_order) this.#lowerOrderNums++;
    return out;
  }

  /**
   * DPM-Solver++ works on data predictions: its convert_model_output is the alpha-based x0,
   * (x - sigma_t*eps) / alpha_t, which is what step() feeds the solver.
   */
  predictOriginal(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    return predictOriginalAlpha(this.alphasCumprod, modelOutput, t, sample, this.className);
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    return addNoiseAlpha(this.alphasCumprod, original, noise, t, this.className);
  }
}

function unsupported(what: string): JsdError {
  return new JsdError("JSD_INVALID_ARGUMENT", `DPMSolverMultistepScheduler: ${what} is not supported`);
}

// What DDIM and PNDM share in diffusers 0.8.1: the cumulative alpha schedule, "leading"
// timestep spacing shifted by steps_offset, the alpha used past the last step, no input
// scaling, and the x0 estimate.
import { resolveSchedulerConfig, type SchedulerConfig } from "./config.js";
import { noiseSchedule, predictOriginalAlpha } from "./common.js";

export abstract class AlphaScheduler {
  abstract readonly className: string;
  readonly config: Readonly<SchedulerConfig>;
  readonly initNoiseSigma = 1;
  readonly alphasCumprod: Float32Array;
  /** alphas_cumprod[prev_t] for prev_t < 0: 1 with set_alpha_to_one, else alphas_cumprod[0]. */
  readonly finalAlphaCumprod: number;

  protected constructor(config: Partial<SchedulerConfig>) {
    this.config = resolveSchedulerConfig(config);
    this.alphasCumprod = noiseSchedule(this.config).alphasCumprod;
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  get stepsOffset(): number {
    return this.config.steps_offset;
  }

  /** i * (num_train_timesteps // steps) + steps_offset for i = 0..steps-1, ascending. */
  protected leadingTimesteps(steps: number): number[] {
    const ratio = Math.floor(this.config.num_train_timesteps / steps);
    return Array.from({ length: steps }, (_, i) => i * ratio + this.config.steps_offset);
  }

  scaleModelInput(sample: Float32Array, _t: number): Float32Array {
    return sample.slice();
  }

  /**
   * DDIM's pred_original_sample, without clip_sample (a preview clamps its colours anyway). For
   * PNDM it is the estimate of the noise predicted at t itself, not of the multistep blend step()
   * uses, so on its repeated second timestep it reflects the sample that was actually evaluated.
   */
  predictOriginal(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    return predictOriginalAlpha(this.alphasCumprod, modelOutput, t, sample, this.className);
  }
}

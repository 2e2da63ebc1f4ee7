// EulerDiscreteScheduler of diffusers 0.8.1 (s_churn = 0: plain Euler steps on the sigma ODE).
import type { TorchGenerator } from "../rng/torch-generator.js";
import type { SchedulerConfig } from "./config.js";
import { checkSameLength, f } from "./common.js";
import { SigmaScheduler } from "./sigma-base.js";
import type { Scheduler } from "./types.js";

export class EulerDiscreteScheduler extends SigmaScheduler implements Scheduler {
  readonly name = "euler" as const;
  readonly className = "EulerDiscreteScheduler";
  readonly acceptsGenerator = true;

  constructor(config: Partial<SchedulerConfig> = {}, steps?: number, options: { karras?: boolean } = {}) {
    super(config, options.karras ?? false);
    if (steps !== undefined) this.setTimesteps(steps);
  }

  protected resetState(): void {}

  /**
   * With the default s_churn = 0 the update is deterministic, but diffusers 0.8.1 still draws
   * `randn(sample.shape, generator)` every step; the draw is reproduced when a generator is given so
   * that the generator ends in the same state.
   */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, generator?: TorchGenerator): Float32Array {
    const n = checkSameLength("EulerDiscreteScheduler.step", modelOutput, sample);
    const index = this.stepIndex(t, "EulerDiscreteScheduler.step");
    const sigma = this.sigmas[index];
    generator?.randn([n]);
    const sigmaHat = sigma; // sigma * (gamma + 1) with gamma = 0
    const dt = f(this.sigmas[index + 1] - sigmaHat);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const x0 = f(sample[i] - f(sigmaHat * modelOutput[i]));
      const derivative = f(f(sample[i] - x0) / sigmaHat);
      out[i] = sample[i] + f(derivative * dt);
    }
    return out;
  }
}

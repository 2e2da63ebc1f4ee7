// EulerAncestralDiscreteScheduler of diffusers 0.8.1: an Euler step to sigma_down, then fresh noise
// scaled by sigma_up, drawn from the generator after the deterministic update.
import type { TorchGenerator } from "../rng/torch-generator.js";
import type { SchedulerConfig } from "./config.js";
import { checkSameLength, f, requireGenerator, sqrtf } from "./common.js";
import { SigmaScheduler } from "./sigma-base.js";
import type { Scheduler } from "./types.js";

export class EulerAncestralDiscreteScheduler extends SigmaScheduler implements Scheduler {
  readonly name = "euler_a" as const;
  readonly className = "EulerAncestralDiscreteScheduler";
  readonly acceptsGenerator = true;

  constructor(config: Partial<SchedulerConfig> = {}, steps?: number, options: { karras?: boolean } = {}) {
    super(config, options.karras ?? false);
    if (steps !== undefined) this.setTimesteps(steps);
  }

  protected resetState(): void {}

  /** sigma_up and sigma_down of step `index`, in float32. */
  ancestralSigmas(index: number): { sigmaUp: number; sigmaDown: number } {
    const from = this.sigmas[index];
    const to = this.sigmas[index + 1];
    const to2 = f(to * to);
    const from2 = f(from * from);
    const sigmaUp = sqrtf(f(f(to2 * f(from2 - to2)) / from2));
    const sigmaDown = sqrtf(f(to2 - f(sigmaUp * sigmaUp)));
    return { sigmaUp, sigmaDown };
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, generator?: TorchGenerator): Float32Array {
    const n = checkSameLength("EulerAncestralDiscreteScheduler.step", modelOutput, sample);
    const gen = requireGenerator(generator, "EulerAncestralDiscreteScheduler");
    const index = this.stepIndex(t, "EulerAncestralDiscreteScheduler.step");
    const sigma = this.sigmas[index];
    const { sigmaUp, sigmaDown } = this.ancestralSigmas(index);
    const dt = f(sigmaDown - sigma);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const x0 = f(sample[i] - f(sigma * modelOutput[i]));
      const derivative = f(f(sample[i] - x0) / sigma);
      out[i] = sample[i] + f(derivative * dt);
    }
    const noise = gen.randn([n]);
    for (let i = 0; i < n; i++) out[i] = out[i] + f(noise[i] * sigmaUp);
    return out;
  }
}

// Schedulers reproducing diffusers 0.8.1, as rinna's Japanese Stable Diffusion pipelines use them.
import { JsdError } from "../errors.js";
import type { SchedulerConfig } from "./config.js";
import { DDIMScheduler } from "./ddim.js";
import { DPMSolverMultistepScheduler } from "./dpm-solver-multistep.js";
import { EulerAncestralDiscreteScheduler } from "./euler-ancestral.js";
import { EulerDiscreteScheduler } from "./euler.js";
import { LMSDiscreteScheduler } from "./lms.js";
import { PNDMScheduler } from "./pndm.js";
import type { Scheduler, SchedulerName, SchedulerOptions } from "./types.js";

export type { Scheduler, SchedulerName, SchedulerOptions } from "./types.js";
export { SD_V1_SCHEDULER_CONFIG, resolveSchedulerConfig, type SchedulerConfig, type BetaSchedule } from "./config.js";
export { karrasSchedule, karrasSigmas, noiseSchedule, trainingSigmas, sigmaToTimestep, type NoiseSchedule } from "./common.js";
export { PNDMScheduler, DDIMScheduler, LMSDiscreteScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler };

export const SCHEDULER_NAMES: readonly SchedulerName[] = ["pndm", "ddim", "lms", "euler", "euler_a", "dpmpp_2m"];

/**
 * The schedulers that take Karras sigmas (`karras: true`): the sigma-based ones and DPM-Solver++
 * ("DPM++ 2M Karras"). generate(), the CLI and the servers ask here.
 */
export const KARRAS_SCHEDULERS: readonly SchedulerName[] = ["lms", "euler", "euler_a", "dpmpp_2m"];

export function takesKarras(name: SchedulerName): boolean {
  return KARRAS_SCHEDULERS.includes(name);
}

/** The diffusers class name of each scheduler. */
export const SCHEDULER_CLASS_NAMES: Readonly<Record<SchedulerName, string>> = {
  pndm: "PNDMScheduler",
  ddim: "DDIMScheduler",
  lms: "LMSDiscreteScheduler",
  euler: "EulerDiscreteScheduler",
  euler_a: "EulerAncestralDiscreteScheduler",
  dpmpp_2m: "DPMSolverMultistepScheduler",
};

/**
 * A scheduler with `set_timesteps(steps)` done. `config` is a diffusers scheduler config (e.g. the
 * model's scheduler_config.json), with SD v1 defaults for missing keys.
 */
export function createScheduler(
  name: SchedulerName,
  config: Partial<SchedulerConfig> | Record<string, unknown> = {},
  steps: number,
  options: SchedulerOptions = {},
): Scheduler {
  const cfg = config as Partial<SchedulerConfig>;
  if (options.karras && !takesKarras(name)) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `Karras sigmas are only available for ${KARRAS_SCHEDULERS.join(", ")}, not ${name}`);
  }
  if (options.eta !== undefined && options.eta !== 0 && name !== "ddim") {
    throw new JsdError("JSD_INVALID_ARGUMENT", `eta is a DDIM option; ${name} does not take it`);
  }
  switch (name) {
    case "pndm":
      return new PNDMScheduler(cfg, steps);
    case "ddim":
      return new DDIMScheduler(cfg, steps, options.eta ?? 0);
    case "lms":
      return new LMSDiscreteScheduler(cfg, steps, { karras: options.karras });
    case "euler":
      return new EulerDiscreteScheduler(cfg, steps, { karras: options.karras });
    case "euler_a":
      return new EulerAncestralDiscreteScheduler(cfg, steps, { karras: options.karras });
    case "dpmpp_2m":
      return new DPMSolverMultistepScheduler(cfg, steps, { karras: options.karras });
    default:
      throw new JsdError("JSD_INVALID_ARGUMENT", `unknown scheduler ${JSON.stringify(name)} (expected one of ${SCHEDULER_NAMES.join(", ")})`);
  }
}

export interface Img2ImgStart {
  /** min(int(n*strength) + offset, n). */
  initTimestep: number;
  /** max(n - initTimestep + offset, 0): the index of the first timestep run. */
  tStart: number;
  /** scheduler.timesteps[tStart:]: the timesteps of the denoising loop (for PNDM, an index into its n+1 list). */
  timesteps: Float64Array;
  /** The timestep the init latents are noised to: timesteps[0]. */
  noiseTimestep: number;
}

/**
 * Where img2img and (legacy) inpainting start, as the reference pipelines compute it, with
 * `offset` = the scheduler's steps_offset as diffusers 0.8.1 sees it (PNDM/DDIM: the config's, else 0).
 */
export function img2imgStart(scheduler: Scheduler, strength: number): Img2ImgStart {
  if (!(typeof strength === "number" && strength >= 0 && strength <= 1)) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `strength must be in [0, 1], got ${strength}`);
  }
  const n = scheduler.numInferenceSteps;
  const offset = scheduler.stepsOffset;
  const initTimestep = Math.min(Math.trunc(n * strength) + offset, n);
  const tStart = Math.max(n - initTimestep + offset, 0);
  const timesteps = scheduler.timesteps.slice(tStart);
  if (timesteps.length === 0) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `strength ${strength} with ${n} steps leaves no denoising step; raise strength or steps`);
  }
  return { initTimestep, tStart, timesteps, noiseTimestep: timesteps[0] };
}

// Scheduler configuration: the keys of a diffusers `scheduler_config.json`, with the defaults of
// Stable Diffusion v1 (and rinna's Japanese Stable Diffusion), so that a model's config file can be
// passed in as parsed.
import { JsdError } from "../errors.js";

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";

export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  /** Explicit betas (stored as float32); overrides beta_start/beta_end/beta_schedule. */
  trained_betas: readonly number[] | null;
  /** Added to PNDM/DDIM timesteps. The other schedulers have no such key in diffusers 0.8.1 and ignore it. */
  steps_offset: number;
  /** PNDM/DDIM: the alpha product used past the last step (false: alphas_cumprod[0]). */
  set_alpha_to_one: boolean;
  /** PNDM: skip the Runge-Kutta warm-up (only true is supported). */
  skip_prk_steps: boolean;
  /** DDIM: clamp the predicted x0 to [-1, 1]. */
  clip_sample: boolean;
  /** DPMSolverMultistep: 1 or 2. */
  solver_order: number;
  /** DPMSolverMultistep: only "dpmsolver++" is supported. */
  algorithm_type: "dpmsolver++" | "dpmsolver";
  /** DPMSolverMultistep second-order formula. */
  solver_type: "midpoint" | "heun";
  /** DPMSolverMultistep: first order on the last step (and no third order near the end) when fewer than 15 steps. */
  lower_order_final: boolean;
  /** DPMSolverMultistep: the model predicts noise (only true is supported). */
  predict_epsilon: boolean;
  /** DPMSolverMultistep dynamic thresholding (only false is supported). */
  thresholding: boolean;
}

export const SD_V1_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  trained_betas: null,
  steps_offset: 1,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  clip_sample: false,
  solver_order: 2,
  algorithm_type: "dpmsolver++",
  solver_type: "midpoint",
  lower_order_final: true,
  predict_epsilon: true,
  thresholding: false,
});

function bad(message: string): JsdError {
  return new JsdError("JSD_INVALID_ARGUMENT", `scheduler config: ${message}`);
}

/**
 * Fills in SD v1 defaults and checks the values. Unknown keys (`_class_name`, `_diffusers_version`,
 * keys of other schedulers) are ignored, as diffusers does.
 */
export function resolveSchedulerConfig(partial: Partial<SchedulerConfig> | Record<string, unknown> = {}): SchedulerConfig {
  const src = partial as Record<string, unknown>;
  const config = { ...SD_V1_SCHEDULER_CONFIG } as SchedulerConfig;
  for (const key of Object.keys(SD_V1_SCHEDULER_CONFIG) as (keyof SchedulerConfig)[]) {
    if (src[key] !== undefined) (config as unknown as Record<string, unknown>)[key] = src[key];
  }
  if (!Number.isSafeInteger(config.num_train_timesteps) || config.num_train_timesteps < 2) {
    throw bad(`num_train_timesteps must be an integer >= 2, got ${config.num_train_timesteps}`);
  }
  if (config.trained_betas !== null) {
    if (!Array.isArray(config.trained_betas) || config.trained_betas.length !== config.num_train_timesteps) {
      throw bad(`trained_betas must hold num_train_timesteps (${config.num_train_timesteps}) numbers`);
    }
  } else {
    if (!["linear", "scaled_linear", "squaredcos_cap_v2"].includes(config.beta_schedule)) {
      throw bad(`unsupported beta_schedule ${JSON.stringify(config.beta_schedule)}`);
    }
    if (!(typeof config.beta_start === "number" && typeof config.beta_end === "number" && config.beta_start >= 0 && config.beta_end < 1)) {
      throw bad(`invalid beta_start/beta_end ${config.beta_start}, ${config.beta_end}`);
    }
  }
  if (!Number.isSafeInteger(config.steps_offset) || config.steps_offset < 0) throw bad(`steps_offset must be a non-negative integer`);
  for (const key of ["set_alpha_to_one", "skip_prk_steps", "clip_sample", "lower_order_final", "predict_epsilon", "thresholding"] as const) {
    if (typeof config[key] !== "boolean") throw bad(`${key} must be a boolean`);
  }
  return config;
}

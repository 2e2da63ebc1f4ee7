// AUTOMATIC1111's sampler and scheduler names, mapped to ours. The labels are the ones our PNGs
// already carry (SAMPLER_LABELS); A1111 calls PNDM without its Runge-Kutta warm-up "PLMS".
import { SAMPLER_LABELS } from "../../pipeline/parameters.js";
import { SCHEDULER_NAMES, takesKarras, type SchedulerName } from "../../schedulers/index.js";

const EXTRA_ALIASES: Partial<Record<SchedulerName, string[]>> = {
  pndm: ["PLMS", "plms"],
  euler_a: ["k_euler_a", "k_euler_ancestral"],
  euler: ["k_euler"],
  lms: ["k_lms"],
  dpmpp_2m: ["k_dpmpp_2m"],
};

export interface SamplerChoice {
  scheduler: SchedulerName;
  karras: boolean;
}

export interface A1111Sampler {
  name: string;
  aliases: string[];
  options: Record<string, string>;
}

/** GET /sdapi/v1/samplers: every scheduler, then the Karras variants (old-style names, still sent by clients). */
export function a1111Samplers(): A1111Sampler[] {
  const plain = SCHEDULER_NAMES.map((s) => ({ name: SAMPLER_LABELS[s], aliases: [s, ...(EXTRA_ALIASES[s] ?? [])], options: {} }));
  const karras = SCHEDULER_NAMES.filter(takesKarras).map((s) => ({ name: `${SAMPLER_LABELS[s]} Karras`, aliases: [`${s}_karras`], options: { scheduler: "karras" } }));
  return [...plain, ...karras];
}

/** GET /sdapi/v1/schedulers: A1111 ≥ 1.9 names the noise schedule apart from the sampler. */
export const A1111_SCHEDULERS = [
  { name: "automatic", label: "Automatic", aliases: null, default_rho: -1, need_inner_model: false },
  { name: "karras", label: "Karras", aliases: ["Karras"], default_rho: 7, need_inner_model: false },
];

/**
 * A sampler name (and the separate `scheduler` field) as our scheduler and Karras flag;
 * undefined for a name we do not know. Names compare without case.
 */
export function parseSampler(samplerName: string, schedulerName?: string | null): SamplerChoice | undefined {
  const wanted = samplerName.trim().toLowerCase();
  const match = a1111Samplers().find((s) => [s.name, ...s.aliases].some((n) => n.toLowerCase() === wanted));
  if (!match) return undefined;
  const scheduler = match.aliases[0].replace(/_karras$/, "") as SchedulerName;
  const schedule = (schedulerName ?? "automatic").trim().toLowerCase();
  if (schedule !== "automatic" && schedule !== "karras") return undefined;
  return { scheduler, karras: match.options.scheduler === "karras" || schedule === "karras" };
}

/** Our scheduler as A1111 names it (for `info` and /progress). */
export function samplerName(choice: SamplerChoice): string {
  return SAMPLER_LABELS[choice.scheduler] + (choice.karras ? " Karras" : "");
}

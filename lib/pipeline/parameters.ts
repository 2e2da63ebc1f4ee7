// What a generated PNG says about how it was made: an A1111-style `parameters` text (read by
// common image tools) and the same facts as JSON.
import type { PromptMode } from "../prompt/tokens.js";
import type { SchedulerName } from "../schedulers/index.js";

export interface GenerationParameters {
  prompt: string;
  negativePrompt: string;
  /** How the prompts were read: "reference" (rinna, truncated at 77) or "extended" (syntax, chunks). */
  promptMode: PromptMode;
  /** Text-encoder chunks per prompt (extended mode only). */
  promptChunks?: number;
  steps: number;
  scheduler: SchedulerName;
  karras: boolean;
  guidanceScale: number;
  seed: string;
  batchIndex: number;
  width: number;
  height: number;
  strength?: number;
  mode: "txt2img" | "img2img" | "inpaint";
  /** Prompt tokens cut at the 77-token limit (always 0 in extended mode). */
  droppedTokens: number;
  model: string;
  /** Where it was computed: "cpu", "cuda", ... */
  backend: string;
  modelSha256?: string;
  version: string;
  /**
   * Set only when `interrupt` ended sampling early: the sampling steps done (progress steps,
   * as GeneratedImage.stepsDone); the image is the denoised estimate at that point, not the
   * full run.
   */
  interruptedAtStep?: number;
  /** With interruptedAtStep: the sampling steps the full run would have taken (PNDM: steps + 1; img2img: fewer). */
  totalSteps?: number;
  /**
   * The model's safety checker on this image: "ran" (rinna's pipeline's default), "off"
   * (`safetyChecker: false`), or "absent" (the model file has none).
   */
  safetyChecker: SafetyCheckerRun;
  /** diffusers' `nsfw_content_detected`: the checker flagged the image, whose pixels are then black. Always false unless it ran. */
  nsfwContentDetected: boolean;
}

export type SafetyCheckerRun = "ran" | "off" | "absent";

/** Each scheduler under its AUTOMATIC1111 sampler name (the server's /sdapi API speaks these too). */
export const SAMPLER_LABELS: Readonly<Record<SchedulerName, string>> = {
  pndm: "PNDM",
  ddim: "DDIM",
  lms: "LMS",
  euler: "Euler",
  euler_a: "Euler a",
  dpmpp_2m: "DPM++ 2M",
};

/**
 * A1111's layout: prompt, "Negative prompt: …", then "Key: value, …" on the last line. The
 * prompt mode is listed when it is "extended" (with the chunk count); reference mode, the
 * default, adds nothing, so such images carry the same text as before the option existed.
 * Likewise "Interrupted at step: k/n" appears only on images of an interrupted run, and
 * "Safety checker: passed | flagged (image blacked out) | off" only where the model has a checker.
 */
export function formatParameters(p: GenerationParameters): string {
  const fields: Array<[string, string | number]> = [
    ["Steps", p.steps],
    ["Sampler", SAMPLER_LABELS[p.scheduler] + (p.karras ? " Karras" : "")],
    ["CFG scale", p.guidanceScale],
    ["Seed", p.seed],
    ["Size", `${p.width}x${p.height}`],
    ["Model", p.model],
  ];
  if (p.modelSha256) fields.push(["Model hash", p.modelSha256.slice(0, 10)]);
  if (p.strength !== undefined) fields.push(["Denoising strength", p.strength]);
  if (p.batchIndex > 0) fields.push(["Batch pos", p.batchIndex]);
  if (p.promptMode === "extended") {
    fields.push(["Prompt mode", "extended"]);
    if (p.promptChunks !== undefined) fields.push(["Prompt chunks", p.promptChunks]);
  }
  if (p.droppedTokens > 0) fields.push(["Truncated tokens", p.droppedTokens]);
  // Absent from images of models without a checker, so that their text is as it was before checkers.
  if (p.safetyChecker === "ran") fields.push(["Safety checker", p.nsfwContentDetected ? "flagged (image blacked out)" : "passed"]);
  else if (p.safetyChecker === "off") fields.push(["Safety checker", "off"]);
  if (p.interruptedAtStep !== undefined) {
    fields.push(["Interrupted at step", p.totalSteps === undefined ? p.interruptedAtStep : `${p.interruptedAtStep}/${p.totalSteps}`]);
  }
  fields.push(["Version", `japanese-stable-diffusion ${p.version}`]);
  const lines = [p.prompt];
  if (p.negativePrompt) lines.push(`Negative prompt: ${p.negativePrompt}`);
  lines.push(fields.map(([k, v]) => `${k}: ${String(v).replace(/[,\n]/g, " ")}`).join(", "));
  return lines.join("\n");
}

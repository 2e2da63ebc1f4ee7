// Whole-pipeline reference cases: rerun rinna's pipeline with the case's parameters and
// compare the starting latents and the final image.
import { toFloat32, toInt32 } from "../formats/safetensors.js";
import { vaeOutputToUnitHwc } from "../image/convert.js";
import type { Model } from "../model.js";
import { denoise } from "../pipeline/denoise.js";
import { SCHEDULER_CLASS_NAMES, type SchedulerName } from "../schedulers/index.js";
import type { CaseFile } from "./cases.js";
import { compareArrays, type ErrorStats } from "./compare.js";

/** Issue #5's tolerances: initial latents ≤ 1e-6; final image mean abs ≤ 1/255 and max abs ≤ 4/255. */
export const PIPELINE_TOLERANCES = { initialLatents: 1e-6, imageMean: 1 / 255, imageMax: 4 / 255 };

interface PipelineParams {
  mode: "txt2img" | "img2img" | "inpaint_legacy";
  prompt: string;
  negative_prompt: string | null;
  guidance_scale: number;
  num_inference_steps: number;
  scheduler: string;
  seed: number;
  height: number;
  width: number;
  strength?: number;
  eta?: number;
}

function unitToRgba(values: Float32Array, width: number, height: number, channels: 1 | 3): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) rgba[4 * p + c] = Math.round(values[p * channels + (channels === 3 ? c : 0)] * 255);
    rgba[4 * p + 3] = 255;
  }
  return rgba;
}

/** The case's run as generate() and denoise() take it (rinna's pipeline's parameters, one image). */
export function pipelineCaseInput(c: CaseFile) {
  const p = JSON.parse(c.metadata.params_json) as PipelineParams;
  const scheduler = (Object.entries(SCHEDULER_CLASS_NAMES).find(([, cls]) => cls === p.scheduler)?.[0] ?? p.scheduler) as SchedulerName;
  const t = (name: string) => toFloat32(c.tensors.get(name)!);
  const initImage = c.tensors.has("init_image") ? { width: p.width, height: p.height, rgba: unitToRgba(t("init_image"), p.width, p.height, 3) } : undefined;
  const mask = c.tensors.has("mask") ? { width: p.width, height: p.height, rgba: unitToRgba(t("mask"), p.width, p.height, 1) } : undefined;
  return {
    prompt: p.prompt,
    negativePrompt: p.negative_prompt ?? "",
    width: p.width,
    height: p.height,
    steps: p.num_inference_steps,
    guidanceScale: p.guidance_scale,
    scheduler,
    karras: false,
    seed: BigInt(p.seed),
    numImages: 1,
    strength: p.strength ?? 0.8,
    eta: p.eta ?? 0,
    initImage,
    mask,
  };
}

export async function runPipelineCase(model: Model, c: CaseFile): Promise<{ stats: ErrorStats; note: string; pass: boolean }> {
  const t = (name: string) => toFloat32(c.tensors.get(name)!);
  const input = pipelineCaseInput(c);
  const trace = await denoise(model, input);
  const ids = compareArrays(trace.promptIds, toInt32(c.tensors.get("prompt_input_ids")!));
  const initial = compareArrays(trace.initialLatents, t("initial_latents"));
  const image = compareArrays(vaeOutputToUnitHwc(trace.decoded, input.width, input.height), t("image"));
  const latents = compareArrays(trace.finalLatents, t("final_latents"));
  const pass =
    ids.maxAbs === 0 &&
    initial.maxAbs <= PIPELINE_TOLERANCES.initialLatents &&
    image.meanAbs <= PIPELINE_TOLERANCES.imageMean &&
    image.maxAbs <= PIPELINE_TOLERANCES.imageMax;
  const note = `initial ${initial.maxAbs.toExponential(1)}, final latents ${latents.maxAbs.toExponential(1)}, image mean ${image.meanAbs.toExponential(1)}`;
  return { stats: image, note, pass };
}

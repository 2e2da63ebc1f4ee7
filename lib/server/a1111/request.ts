// AUTOMATIC1111's txt2img / img2img request bodies: the fields we honour (typed: a wrong type is a
// 422), everything else accepted and reported back as ignored, as clients send many fields (hires
// fix, restore faces, scripts, extension arguments) that have no meaning here.
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { decodeImageBytes } from "../../image/png.js";
import { randomSeed } from "../../pipeline/options.js";
import { ServerError } from "../errors.js";
import type { JobOptions, JobRequest } from "../jobs.js";
import type { ServerLimits } from "../limits.js";
import { parseSampler, type SamplerChoice } from "./samplers.js";

/** Clients send null for "not set" (A1111's pydantic models default most fields to None). */
const maybe = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

const COMMON = {
  prompt: maybe(Type.String()),
  negative_prompt: maybe(Type.String()),
  seed: maybe(Type.Integer({ minimum: -1 })),
  sampler_name: maybe(Type.String()),
  sampler_index: maybe(Type.String()),
  scheduler: maybe(Type.String()),
  batch_size: maybe(Type.Integer({ minimum: 1 })),
  n_iter: maybe(Type.Integer({ minimum: 1 })),
  steps: maybe(Type.Integer({ minimum: 1 })),
  cfg_scale: maybe(Type.Number()),
  width: maybe(Type.Integer({ minimum: 8, multipleOf: 8 })),
  height: maybe(Type.Integer({ minimum: 8, multipleOf: 8 })),
  eta: maybe(Type.Number({ minimum: 0 })),
  send_images: maybe(Type.Boolean()),
};

export const Txt2ImgBody = Type.Object(COMMON, { additionalProperties: true });
export const Img2ImgBody = Type.Object(
  {
    ...COMMON,
    init_images: Type.Array(Type.String(), { minItems: 1 }),
    mask: maybe(Type.String()),
    denoising_strength: maybe(Type.Number({ minimum: 0, maximum: 1 })),
    inpainting_fill: maybe(Type.Integer({ minimum: 0, maximum: 3 })),
    inpainting_mask_invert: maybe(Type.Integer({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: true },
);
export type Txt2ImgRequest = Static<typeof Txt2ImgBody>;
export type Img2ImgRequest = Static<typeof Img2ImgBody>;

/** A1111's defaults where a field is absent (its API models'), except the size: the model's own. */
const A1111_DEFAULTS = { steps: 50, cfg_scale: 7.0, denoising_strength: 0.75, sampler: "PLMS" };

export interface MappedRequest {
  job: JobRequest;
  sampler: SamplerChoice;
  /** Fields accepted but without effect here. */
  ignored: string[];
  width: number;
  height: number;
  batchSize: number;
  nIter: number;
}

function refuse(field: string, message: string): never {
  throw new ServerError("JSD_INVALID_ARGUMENT", `${field}: ${message}`);
}

/** A base64 image (bare or a data: URL) as PNG pixels; never a path. */
export function decodeBase64Png(field: string, value: string): { width: number; height: number; rgba: Uint8Array } {
  const comma = value.startsWith("data:") ? value.indexOf(",") : -1;
  const base64 = comma >= 0 ? value.slice(comma + 1) : value;
  if (!/^[A-Za-z0-9+/=\s_-]*$/.test(base64)) refuse(field, "is not base64");
  const bytes = new Uint8Array(Buffer.from(base64, "base64"));
  if (bytes.length === 0) refuse(field, "is empty");
  try {
    const image = decodeImageBytes(bytes);
    return { width: image.width, height: image.height, rgba: image.rgba };
  } catch (error) {
    refuse(field, (error as Error).message);
  }
}

/** The limits every request must keep, checked before it is queued. */
export function checkLimits(limits: ServerLimits, o: { steps: number; width: number; height: number; images: number; prompt: string; negativePrompt: string }, names: Record<string, string>): void {
  if (o.steps > limits.maxSteps) refuse(names.steps, `at most ${limits.maxSteps} on this server, got ${o.steps}`);
  for (const [key, value] of [["width", o.width], ["height", o.height]] as const) {
    if (value > limits.maxSide) refuse(names[key], `at most ${limits.maxSide} on this server, got ${value}`);
  }
  if (o.width * o.height > limits.maxPixels) refuse(`${names.width}×${names.height}`, `at most ${limits.maxPixels} pixels on this server, got ${o.width * o.height}`);
  if (o.images > limits.maxImages) refuse(names.images, `at most ${limits.maxImages} images per request on this server, got ${o.images}`);
  for (const [key, value] of [["prompt", o.prompt], ["negativePrompt", o.negativePrompt]] as const) {
    if (value.length > limits.maxPromptLength) refuse(names[key], `at most ${limits.maxPromptLength} characters on this server`);
  }
}

const A1111_NAMES = { steps: "steps", width: "width", height: "height", images: "batch_size × n_iter", prompt: "prompt", negativePrompt: "negative_prompt" };

/** A txt2img or img2img body as a job, with what it ignored; throws ServerError for values we refuse. */
export function mapA1111Request(body: Txt2ImgRequest | Img2ImgRequest, mode: "txt2img" | "img2img", limits: ServerLimits, defaultSize: number): MappedRequest {
  const known = new Set(Object.keys(mode === "img2img" ? Img2ImgBody.properties : Txt2ImgBody.properties));
  const ignored = Object.keys(body).filter((k) => !known.has(k) && (body as Record<string, unknown>)[k] !== null);

  const samplerField = body.sampler_name ?? body.sampler_index ?? A1111_DEFAULTS.sampler;
  const sampler = parseSampler(samplerField, body.scheduler);
  if (!sampler) refuse(body.sampler_name ? "sampler_name" : body.scheduler ? "scheduler" : "sampler_index", `unknown sampler or scheduler ${JSON.stringify(samplerField)}${body.scheduler ? ` / ${JSON.stringify(body.scheduler)}` : ""} (GET /sdapi/v1/samplers lists them)`);
  if (body.sampler_index && body.sampler_name) ignored.push("sampler_index");

  const options: JobOptions = {
    prompt: body.prompt ?? "",
    negativePrompt: body.negative_prompt ?? "",
    steps: body.steps ?? A1111_DEFAULTS.steps,
    guidanceScale: body.cfg_scale ?? A1111_DEFAULTS.cfg_scale,
    scheduler: sampler.scheduler,
    karras: sampler.karras,
  };
  if (body.eta !== undefined && body.eta !== null) {
    if (sampler.scheduler === "ddim") options.eta = body.eta;
    else ignored.push("eta");
  }

  let width = body.width ?? defaultSize;
  let height = body.height ?? defaultSize;
  if (mode === "img2img") {
    const b = body as Img2ImgRequest;
    const init = decodeBase64Png("init_images[0]", b.init_images[0]);
    if (b.init_images.length > 1) ignored.push("init_images[1:]");
    // A1111 resizes the init image to width × height; we keep its size (no resampling here).
    if ((b.width != null && b.width !== init.width) || (b.height != null && b.height !== init.height)) ignored.push("width", "height");
    width = init.width;
    height = init.height;
    options.initImage = init;
    options.strength = b.denoising_strength ?? A1111_DEFAULTS.denoising_strength;
    if (b.mask) {
      const mask = decodeBase64Png("mask", b.mask);
      if (mask.width !== width || mask.height !== height) refuse("mask", `is ${mask.width}x${mask.height}, the init image ${width}x${height}`);
      if (b.inpainting_mask_invert === 1) {
        for (let i = 0; i < mask.rgba.length; i += 4) for (let c = 0; c < 3; c++) mask.rgba[i + c] = 255 - mask.rgba[i + c];
      }
      options.mask = mask;
      // Ours is diffusers' legacy inpainting: the masked part starts from the original ("original", 1).
      if (b.inpainting_fill != null && b.inpainting_fill !== 1) ignored.push("inpainting_fill");
    } else {
      for (const k of ["inpainting_fill", "inpainting_mask_invert"] as const) if (b[k] != null) ignored.push(k);
    }
  }
  options.width = width;
  options.height = height;

  const batchSize = body.batch_size ?? 1;
  const nIter = body.n_iter ?? 1;
  checkLimits(limits, { steps: options.steps!, width, height, images: batchSize * nIter, prompt: options.prompt, negativePrompt: options.negativePrompt ?? "" }, A1111_NAMES);
  const seed = body.seed == null || body.seed === -1 ? randomSeed() : BigInt(body.seed);
  if (body.send_images === false) ignored.push("send_images");
  return { job: { options, seed, images: batchSize * nIter }, sampler, ignored: [...new Set(ignored)].sort(), width, height, batchSize, nIter };
}

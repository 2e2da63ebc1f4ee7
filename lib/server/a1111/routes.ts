// AUTOMATIC1111's /sdapi/v1 API, so that clients written for it work unchanged: txt2img and
// img2img (synchronous: the answer comes when the images are done), progress with a preview,
// interrupt and skip, samplers, models and options, and empty lists for what we do not have.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { formatParameters } from "../../pipeline/parameters.js";
import { version } from "../../system-info.js";
import type { ModelInfo, ServerContext } from "../context.js";
import { ServerError } from "../errors.js";
import { submitJob } from "../submit.js";
import type { Job } from "../jobs.js";
import { Img2ImgBody, mapA1111Request, Txt2ImgBody, type Img2ImgRequest, type MappedRequest, type Txt2ImgRequest } from "./request.js";
import { A1111_SCHEDULERS, a1111Samplers, samplerName } from "./samplers.js";

/** A1111's checkpoint title: "file [short hash]". */
const titleOf = (m: ModelInfo) => (m.hash ? `${m.file} [${m.hash}]` : m.file);

const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");

/** Resolves when the job has finished, whatever the outcome. */
function finished(job: Job): Promise<void> {
  if (job.finished) return Promise.resolve();
  return new Promise((resolve) => job.on("event", (e) => e.type === "finished" && resolve()));
}

/** A1111's `info`: a JSON string with the run's facts, one infotext per image, and what was ignored. */
function infoOf(ctx: ServerContext, mapped: MappedRequest, job: Job) {
  const o = mapped.job.options;
  const seeds = job.images.map((i) => Number(i.seed));
  const firstSeed = Number(mapped.job.seed);
  return {
    prompt: o.prompt,
    all_prompts: job.images.map(() => o.prompt),
    negative_prompt: o.negativePrompt,
    all_negative_prompts: job.images.map(() => o.negativePrompt),
    seed: firstSeed,
    all_seeds: seeds,
    subseed: -1,
    all_subseeds: seeds.map(() => -1),
    subseed_strength: 0,
    width: mapped.width,
    height: mapped.height,
    sampler_name: samplerName(mapped.sampler),
    cfg_scale: o.guidanceScale,
    steps: o.steps,
    batch_size: mapped.batchSize,
    n_iter: mapped.nIter,
    denoising_strength: o.strength ?? null,
    restore_faces: false,
    sd_model_name: ctx.models.current()?.name ?? null,
    sd_model_hash: ctx.models.current()?.hash ?? null,
    seed_resize_from_w: -1,
    seed_resize_from_h: -1,
    styles: [],
    job_timestamp: new Date(job.startedAt ?? job.createdAt).toISOString().replace(/[-:T]/g, "").slice(0, 14),
    clip_skip: 1,
    is_using_inpainting_conditioning: false,
    infotexts: job.images.map((i) => formatParameters(i.parameters)),
    interrupted: job.interrupted,
    // Not A1111's (it has no checker): diffusers' name, one per image; a flagged image is black.
    nsfw_content_detected: job.images.map((i) => i.parameters.nsfwContentDetected === true),
    version: `japanese-stable-diffusion ${version()}`,
    ignored: mapped.ignored,
  };
}

async function generate(ctx: ServerContext, mode: "txt2img" | "img2img", request: FastifyRequest, reply: FastifyReply) {
  const body = request.body as Txt2ImgRequest | Img2ImgRequest;
  const mapped = mapA1111Request(body, mode, ctx.limits, ctx.models.defaultImageSize());
  const job = await submitJob(ctx, request, mapped.job);
  // A client that goes away takes its job with it: nobody would get the images.
  const onClose = () => {
    if (!reply.raw.writableFinished) void ctx.jobs.cancel(job).catch(() => undefined);
  };
  reply.raw.on("close", onClose);
  await finished(job);
  reply.raw.off("close", onClose);
  if (job.status === "failed") {
    const code = job.error?.code === "JSD_INVALID_ARGUMENT" ? "JSD_INVALID_ARGUMENT" : "JSD_INTERNAL";
    throw new ServerError(code, job.error?.message ?? "the job failed");
  }
  if (job.status === "cancelled") throw new ServerError("JSD_SHUTTING_DOWN", "the job was cancelled");
  const images = body.send_images === false ? [] : job.images.map((i) => base64(i.png));
  return { images, parameters: body, info: JSON.stringify(infoOf(ctx, mapped, job)) };
}

const EMPTY_LISTS: Record<string, unknown> = {
  loras: [],
  upscalers: [],
  "latent-upscale-modes": [],
  "sd-vae": [],
  hypernetworks: [],
  "face-restorers": [],
  "realesrgan-models": [],
  "prompt-styles": [],
  extensions: [],
  scripts: { txt2img: [], img2img: [] },
  "script-info": [],
  embeddings: { loaded: {}, skipped: {} },
};

export async function a1111Routes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  const tags = ["AUTOMATIC1111"];
  app.post("/sdapi/v1/txt2img", { schema: { tags, body: Txt2ImgBody } }, (request, reply) => generate(ctx, "txt2img", request, reply));
  app.post("/sdapi/v1/img2img", { schema: { tags, body: Img2ImgBody } }, (request, reply) => generate(ctx, "img2img", request, reply));

  app.get("/sdapi/v1/progress", { schema: { tags } }, async () => {
    const job = await ctx.jobs.current();
    const waiting = await ctx.jobs.waiting();
    if (!job) {
      return {
        progress: 0,
        eta_relative: 0,
        state: { skipped: false, interrupted: false, job: "", job_count: waiting, job_timestamp: "0", job_no: 0, sampling_step: 0, sampling_steps: 0 },
        current_image: null,
        textinfo: waiting > 0 ? `${waiting} waiting` : null,
      };
    }
    return {
      progress: job.progress(),
      eta_relative: job.etaSeconds() ?? 0,
      state: {
        skipped: false,
        interrupted: job.interrupted,
        job: `job ${job.id}`,
        job_count: job.request.images,
        job_timestamp: new Date(job.startedAt ?? job.createdAt).toISOString().replace(/[-:T]/g, "").slice(0, 14),
        job_no: job.image,
        sampling_step: job.step,
        sampling_steps: job.totalSteps,
      },
      current_image: job.preview ? base64(job.preview.png) : null,
      textinfo: `image ${job.image + 1}/${job.request.images}, step ${job.step}/${job.totalSteps}${waiting > 0 ? `; ${waiting} waiting` : ""}`,
    };
  });
  app.post("/sdapi/v1/interrupt", { schema: { tags } }, async () => (await ctx.jobs.interrupt(), null));
  app.post("/sdapi/v1/skip", { schema: { tags } }, async () => (await ctx.jobs.skip(), null));
  app.get("/sdapi/v1/samplers", { schema: { tags } }, async () => a1111Samplers());
  app.get("/sdapi/v1/schedulers", { schema: { tags } }, async () => A1111_SCHEDULERS);

  app.get("/sdapi/v1/sd-models", { schema: { tags } }, async () =>
    (await ctx.models.list()).map((m) => ({ title: titleOf(m), model_name: m.name, hash: m.hash, sha256: null, filename: m.file, config: null })),
  );
  app.post("/sdapi/v1/refresh-checkpoints", { schema: { tags } }, async () => null);

  app.get("/sdapi/v1/options", { schema: { tags } }, async () => {
    const current = ctx.models.current();
    return {
      sd_model_checkpoint: current ? titleOf(current) : null,
      sd_checkpoint_hash: current?.hash ?? null,
      samples_format: "png",
      CLIP_stop_at_last_layers: 1,
      eta_ddim: 0,
      live_previews_enable: true,
    };
  });
  app.post("/sdapi/v1/options", { schema: { tags, body: { type: "object", additionalProperties: true } } }, async (request) => {
    const wanted = (request.body as Record<string, unknown>).sd_model_checkpoint;
    if (wanted === undefined || wanted === null) return null;
    if (typeof wanted !== "string") throw new ServerError("JSD_INVALID_ARGUMENT", "sd_model_checkpoint must be a string");
    await ctx.models.select(wanted);
    return null;
  });
  app.get("/sdapi/v1/cmd-flags", { schema: { tags } }, async () => ctx.flags);
  for (const [name, value] of Object.entries(EMPTY_LISTS)) app.get(`/sdapi/v1/${name}`, { schema: { tags } }, async () => value);
}

// Our own asynchronous API, in generate()'s option names: POST a job (202), follow it by polling
// or as Server-Sent Events (progress and preview frames), fetch its PNGs, cancel it. Plus the
// tokenizer for the page's token counter and the facts the page needs (/v1/info).
import { Type, type Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply } from "fastify";
import { PROMPT_MODES } from "../prompt/index.js";
import { SCHEDULER_NAMES } from "../schedulers/index.js";
import { version } from "../system-info.js";
import { decodeBase64Png, checkLimits } from "./a1111/request.js";
import { a1111Samplers } from "./a1111/samplers.js";
import type { ServerContext } from "./context.js";
import { ServerError } from "./errors.js";
import { submitJob } from "./submit.js";
import type { Job, JobEvent, JobOptions } from "./jobs.js";
import { randomSeed, resolveOptions } from "../pipeline/options.js";

const JobBody = Type.Object(
  {
    prompt: Type.String(),
    negativePrompt: Type.Optional(Type.String()),
    promptMode: Type.Optional(Type.Union(PROMPT_MODES.map((m) => Type.Literal(m)))),
    width: Type.Optional(Type.Integer({ minimum: 8, multipleOf: 8 })),
    height: Type.Optional(Type.Integer({ minimum: 8, multipleOf: 8 })),
    steps: Type.Optional(Type.Integer({ minimum: 1 })),
    guidanceScale: Type.Optional(Type.Number()),
    scheduler: Type.Optional(Type.Union(SCHEDULER_NAMES.map((s) => Type.Literal(s)))),
    karras: Type.Optional(Type.Boolean()),
    seed: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: "^[0-9]{1,20}$" })], { description: "random when absent; a string for seeds above 2^53" })),
    numImages: Type.Optional(Type.Integer({ minimum: 1, description: "images, each with its own seed: seed, seed + 1, ..." })),
    initImage: Type.Optional(Type.String({ description: "img2img: a base64 PNG (or data: URL)" })),
    strength: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    mask: Type.Optional(Type.String({ description: "inpainting: a base64 PNG, white = repaint" })),
    eta: Type.Optional(Type.Number({ minimum: 0 })),
    vaeTiling: Type.Optional(Type.Union([Type.Boolean(), Type.Literal("auto")])),
  },
  { additionalProperties: false },
);
type JobBodyType = Static<typeof JobBody>;

const IdParams = Type.Object({ id: Type.String({ format: "uuid" }) });
const ImageParams = Type.Object({ id: Type.String({ format: "uuid" }), file: Type.String({ pattern: "^[0-9]{1,3}\\.png$" }) });
const TokenizeBody = Type.Object({ text: Type.String(), mode: Type.Optional(Type.Union(PROMPT_MODES.map((m) => Type.Literal(m)))) }, { additionalProperties: false });

const NAMES = { steps: "steps", width: "width", height: "height", images: "numImages", prompt: "prompt", negativePrompt: "negativePrompt" };

function jobUrl(job: Job): string {
  return `/v1/jobs/${job.id}`;
}

/** A job as GET /v1/jobs/:id shows it. */
export async function jobView(ctx: ServerContext, job: Job) {
  return {
    id: job.id,
    status: job.status,
    queuePosition: await ctx.jobs.position(job),
    image: job.image,
    images: job.request.images,
    step: job.step,
    totalSteps: job.totalSteps,
    progress: job.progress(),
    etaSeconds: job.etaSeconds(),
    interrupted: job.interrupted,
    /** Behind a queue: the worker that ran it. */
    worker: job.worker ?? null,
    error: job.error ?? null,
    createdAt: new Date(job.createdAt).toISOString(),
    startedAt: job.startedAt ? new Date(job.startedAt).toISOString() : null,
    finishedAt: job.finishedAt ? new Date(job.finishedAt).toISOString() : null,
    results: job.images.map((i) => ({ index: i.index, seed: i.seed, width: i.width, height: i.height, stepsDone: i.stepsDone, nsfwContentDetected: i.parameters.nsfwContentDetected === true, url: `${jobUrl(job)}/images/${i.index}.png` })),
  };
}

function toJobOptions(ctx: ServerContext, body: JobBodyType): { options: JobOptions; seed: bigint; images: number } {
  const initImage = body.initImage === undefined ? undefined : decodeBase64Png("initImage", body.initImage);
  const mask = body.mask === undefined ? undefined : decodeBase64Png("mask", body.mask);
  const size = ctx.models.defaultImageSize();
  const options: JobOptions = {
    prompt: body.prompt,
    negativePrompt: body.negativePrompt,
    promptMode: body.promptMode,
    // generate() refuses a width/height that differs from the init image's size.
    width: body.width ?? initImage?.width ?? size,
    height: body.height ?? initImage?.height ?? size,
    steps: body.steps,
    guidanceScale: body.guidanceScale,
    scheduler: body.scheduler,
    karras: body.karras,
    initImage,
    strength: body.strength,
    mask,
    eta: body.eta,
    vaeTiling: body.vaeTiling,
  };
  if (initImage && (options.width !== initImage.width || options.height !== initImage.height)) {
    throw new ServerError("JSD_INVALID_ARGUMENT", `width/height (${options.width}x${options.height}) differ from initImage's size ${initImage.width}x${initImage.height}`);
  }
  if (mask && initImage && (mask.width !== initImage.width || mask.height !== initImage.height)) {
    throw new ServerError("JSD_INVALID_ARGUMENT", `mask is ${mask.width}x${mask.height} but initImage is ${initImage.width}x${initImage.height}`);
  }
  const seed = body.seed === undefined ? randomSeed() : BigInt(body.seed);
  const images = body.numImages ?? 1;
  // generate()'s own checks, now, rather than when the job's turn comes.
  resolveOptions({ ...options, seed });
  checkLimits(ctx.limits, { steps: options.steps ?? 50, width: options.width!, height: options.height!, images, prompt: options.prompt, negativePrompt: options.negativePrompt ?? "" }, NAMES);
  if (seed + BigInt(images - 1) >= 1n << 64n) throw new ServerError("JSD_INVALID_ARGUMENT", "seed + numImages - 1 must be below 2^64");
  return { options, seed, images };
}

function sse(reply: FastifyReply, id: number, event: string, data: unknown): void {
  reply.raw.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** A job event as an SSE message (previews as base64 PNGs, images as URLs). */
function eventData(job: Job, e: JobEvent): [string, unknown] {
  switch (e.type) {
    case "preview":
      return ["preview", { image: e.image, step: e.step, png: Buffer.from(e.png).toString("base64") }];
    case "image":
      return ["image", { index: e.image.index, seed: e.image.seed, stepsDone: e.image.stepsDone, nsfwContentDetected: e.image.parameters.nsfwContentDetected === true, url: `${jobUrl(job)}/images/${e.image.index}.png` }];
    case "finished":
      return ["finished", { status: e.status, error: e.error ?? null }];
    case "progress": {
      const { type: _type, ...data } = e;
      return ["progress", data];
    }
    default:
      return [e.type, {}];
  }
}

export async function jobsRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  const tags = ["jobs"];
  const notFound = (id: string) => new ServerError("JSD_NOT_FOUND", `no job ${id} (finished jobs are kept for a limited time)`);
  const find = async (id: string) => {
    const job = await ctx.jobs.get(id);
    if (!job) throw notFound(id);
    return job;
  };

  app.post("/v1/jobs", { schema: { tags, body: JobBody } }, async (request, reply) => {
    const job = await submitJob(ctx, request, toJobOptions(ctx, request.body as JobBodyType));
    return reply.status(202).header("location", jobUrl(job)).send({ id: job.id, status: job.status, queuePosition: await ctx.jobs.position(job), statusUrl: jobUrl(job), eventsUrl: `${jobUrl(job)}/events` });
  });

  app.get("/v1/jobs/:id", { schema: { tags, params: IdParams } }, async (request) => jobView(ctx, await find((request.params as { id: string }).id)));

  app.delete("/v1/jobs/:id", { schema: { tags, params: IdParams } }, async (request) => {
    const job = await find((request.params as { id: string }).id);
    if (!(await ctx.jobs.cancel(job))) throw new ServerError("JSD_CONFLICT", `job ${job.id} has already finished (${job.status})`);
    return { id: job.id, status: job.status === "cancelled" ? "cancelled" : "cancelling" };
  });

  app.get("/v1/jobs/:id/images/:file", { schema: { tags, params: ImageParams } }, async (request, reply) => {
    const { id, file } = request.params as { id: string; file: string };
    const job = await find(id);
    const image = job.images[Number.parseInt(file, 10)];
    if (!image) throw new ServerError("JSD_NOT_FOUND", `job ${id} has no image ${file}`);
    return reply.type("image/png").header("content-disposition", `inline; filename="jsd-${image.seed}.png"`).send(Buffer.from(image.png));
  });

  app.get("/v1/jobs/:id/events", { schema: { tags, params: IdParams } }, async (request, reply) => {
    const job = await find((request.params as { id: string }).id);
    const status = await jobView(ctx, job);
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
    let id = 0;
    sse(reply, ++id, "status", status);
    // Images made before the client connected, as the events it missed.
    for (const image of job.images) sse(reply, ++id, ...eventData(job, { type: "image", image }));
    if (job.finished) {
      sse(reply, ++id, "finished", { status: job.status, error: job.error ?? null });
      reply.raw.end();
      return;
    }
    const keepAlive = setInterval(() => reply.raw.write(": keep-alive\n\n"), 15_000);
    const onEvent = (e: JobEvent) => {
      const [name, data] = eventData(job, e);
      sse(reply, ++id, name, data);
      if (e.type === "finished") stop();
    };
    const stop = () => {
      clearInterval(keepAlive);
      job.off("event", onEvent);
      reply.raw.end();
    };
    job.on("event", onEvent);
    reply.raw.on("close", stop);
  });

  app.post("/v1/tokenize", { schema: { tags, body: TokenizeBody } }, async (request) => {
    const { text, mode } = request.body as Static<typeof TokenizeBody>;
    if (text.length > ctx.limits.maxPromptLength) throw new ServerError("JSD_INVALID_ARGUMENT", `text: at most ${ctx.limits.maxPromptLength} characters on this server`);
    const tokens = await ctx.models.tokenize(text, mode ?? "reference");
    return { mode: tokens.mode, count: tokens.count, limit: tokens.limit, dropped: tokens.mode === "reference" ? tokens.droppedTokens : 0, pieces: tokens.pieces };
  });

  app.get("/v1/info", { schema: { tags } }, async () => ({
    version: version(),
    model: ctx.models.current()?.name ?? null,
    defaultSize: ctx.models.defaultImageSize(),
    backend: ctx.models.backendName(),
    schedulers: SCHEDULER_NAMES,
    samplers: a1111Samplers().map((s) => ({ name: s.name, scheduler: s.aliases[0].replace(/_karras$/, ""), karras: s.options.scheduler === "karras" })),
    promptModes: PROMPT_MODES,
    limits: ctx.limits,
    queue: { running: (await ctx.jobs.current()) ? 1 : 0, waiting: await ctx.jobs.waiting() },
  }));
}

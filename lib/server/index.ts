// `createServer()`: the model behind an HTTP server (Fastify): AUTOMATIC1111's /sdapi/v1 API, our
// /v1 jobs API, the page at /, and /openapi.json. `jsd serve` is this with command-line flags.
//
//   import { createServer } from "japanese-stable-diffusion/server";
//   const server = await createServer({ model: "jsd-q8_0.gguf", port: 7860 });
//   console.log(await server.listen());      // http://127.0.0.1:7860
//   ...
//   await server.close();                    // waiting jobs cancelled, the running one too, model closed
import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance } from "fastify";
import { JsdError } from "../errors.js";
import { loadModel, type LoadModelOptions } from "../model.js";
import { RemoteJobs, RemoteModels } from "../queue/remote-backend.js";
import { version } from "../system-info.js";
import { a1111Routes } from "./a1111/routes.js";
import { isLoopback, requireKey } from "./auth.js";
import type { JobBackend, ModelCatalog, ServerContext } from "./context.js";
import { sendError, ServerError } from "./errors.js";
import { JobQueue } from "./jobs.js";
import { jobsRoutes } from "./jobs-api.js";
import { resolveLimits, type ServerLimits } from "./limits.js";
import { LocalJobs, LocalModels } from "./local-backend.js";
import { ModelHolder } from "./models.js";
import { pageRoutes } from "./page.js";

export { DEFAULT_LIMITS, type ServerLimits } from "./limits.js";
export { SERVER_ERRORS, ServerError, type ServerErrorCode } from "./errors.js";
export type { Job, JobStatus, JobEvent } from "./jobs.js";

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 7860;

export interface ServerOptions {
  /** Model file (default: the first .gguf of modelsDir, else the embedded tiny model). */
  model?: string;
  /** A folder of .gguf files that clients may switch between (A1111's sd_model_checkpoint). */
  modelsDir?: string;
  /** loadModel()'s options: threads, backend, releaseIdleWeights (low memory), ... */
  load?: LoadModelOptions;
  /** Default 127.0.0.1. Any other address needs apiKey (or noAuth). */
  host?: string;
  /** Default 7860; 0 picks a free port. */
  port?: number;
  /**
   * Every API route then needs `Authorization: Bearer <key>`. Several keys are several clients:
   * limits.maxJobsPerClient counts each key's unfinished jobs.
   */
  apiKey?: string | string[];
  /** Listen beyond loopback without a key (you have another gate in front). */
  noAuth?: boolean;
  limits?: Partial<ServerLimits>;
  /** Live previews every n steps (default 1; 0 turns them off). */
  previewEvery?: number;
  /**
   * Run the model's safety checker on every image, as generate() does by default (default true;
   * it runs where the model file has one). The server decides, never the client: false is
   * `jsd serve --no-safety-checker`. Behind a queue, the jobs carry this decision to the workers.
   */
  safetyChecker?: boolean;
  /** Fastify's logger option (default off). */
  logger?: boolean;
  /**
   * redis://host:port: jobs go to a BullMQ queue that `jsd worker` processes take from, instead of
   * a model in this process (which then loads `model` only for the tokenizer, if given).
   */
  redis?: string;
  /** BullMQ queue name (default "jsd"). */
  queue?: string;
  /** With redis: a folder shared with the workers for the PNGs (default: Redis, with a TTL). */
  resultsDir?: string;
}

export interface JsdServer {
  /** The Fastify instance: add routes, or mount its handler (`app.routing`) in another server. */
  readonly app: FastifyInstance;
  /** Where jobs run: this process (LocalJobs, its `queue`) or workers behind Redis (RemoteJobs). */
  readonly jobs: JobBackend;
  readonly models: ModelCatalog;
  /** Starts listening; resolves to the base URL. */
  listen(): Promise<string>;
  /**
   * Stops: no new jobs, the waiting ones cancelled, the running one cancelled too unless
   * `finishRunning`, then the HTTP server and the model closed.
   */
  close(options?: { finishRunning?: boolean }): Promise<void>;
}

/** The keys, each checked; none is an empty list. */
function checkAccess(host: string, apiKey: string | string[] | undefined, noAuth: boolean): string[] {
  const keys = apiKey === undefined ? [] : Array.isArray(apiKey) ? apiKey : [apiKey];
  for (const key of keys) {
    if (typeof key !== "string" || key.trim().length < 8) throw new JsdError("JSD_INVALID_ARGUMENT", "an API key must be a string of at least 8 characters");
  }
  if (!isLoopback(host) && keys.length === 0 && !noAuth) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `refusing to listen on ${host} without an API key: pass apiKey (--api-key or JSD_API_KEY), or noAuth (--no-auth) if something else guards it`);
  }
  return keys.map((k) => k.trim());
}

interface Backend {
  jobs: JobBackend;
  models: ModelCatalog;
  close(cancelRunning: boolean): Promise<void>;
}

async function localBackend(options: ServerOptions, limits: ServerLimits, previewEvery: number): Promise<Backend> {
  const holder = new ModelHolder({ model: options.model, modelsDir: options.modelsDir, load: options.load ?? {} });
  await holder.open();
  const queue = new JobQueue({ run: (o) => holder.model.generate(o), limits, previewEvery });
  return {
    jobs: new LocalJobs(queue),
    models: new LocalModels(holder, queue),
    async close(cancelRunning) {
      await queue.close(cancelRunning);
      await holder.close();
    },
  };
}

async function remoteBackend(options: ServerOptions, limits: ServerLimits): Promise<Backend> {
  if (options.modelsDir) throw new JsdError("JSD_INVALID_ARGUMENT", "modelsDir is for a server that runs jobs itself; behind a queue, the workers load the models");
  // The model here is only the tokenizer's (the page's token counter): its weights stay mapped, not resident.
  const tokenizerModel = options.model ? await loadModel(options.model, { backend: "cpu", releaseIdleWeights: true }) : undefined;
  const jobs = new RemoteJobs({ redis: options.redis!, queue: options.queue, resultsDir: options.resultsDir, limits });
  const models = new RemoteModels(jobs, tokenizerModel);
  return {
    jobs,
    models,
    async close() {
      models.close();
      await jobs.close();
      await tokenizerModel?.close();
    },
  };
}

export async function createServer(options: ServerOptions = {}): Promise<JsdServer> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new JsdError("JSD_INVALID_ARGUMENT", `port must be an integer from 0 to 65535, got ${port}`);
  const keys = checkAccess(host, options.apiKey, options.noAuth ?? false);
  const previewEvery = options.previewEvery ?? 1;
  if (!Number.isInteger(previewEvery) || previewEvery < 0) throw new JsdError("JSD_INVALID_ARGUMENT", "previewEvery must be an integer ≥ 0");
  const limits = resolveLimits(options.limits);

  const backend = options.redis ? await remoteBackend(options, limits) : await localBackend(options, limits, previewEvery);
  const ctx: ServerContext = {
    jobs: backend.jobs,
    models: backend.models,
    limits,
    safetyChecker: options.safetyChecker ?? true,
    flags: {
      host,
      port,
      api_key: keys.length > 0 ? `${keys.length} set` : null,
      no_auth: options.noAuth ?? false,
      models_dir: options.modelsDir ? "set" : null,
      redis: options.redis ? "set" : null,
      backend: options.load?.backend ?? "auto",
      threads: options.load?.threads ?? null,
      low_memory: options.load?.releaseIdleWeights ?? false,
      preview_every: previewEvery,
      safety_checker: options.safetyChecker ?? true,
      max_queue: limits.maxQueue,
      max_steps: limits.maxSteps,
      max_side: limits.maxSide,
      max_images: limits.maxImages,
    },
  };

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: limits.bodyLimit,
    // Strict types (a wrong type is an error, not coerced), every problem reported, unknown fields
    // kept (A1111's routes list them as ignored; ours refuse them by schema).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: true, useDefaults: false } },
  });
  try {
    app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
    // A1111 clients POST /interrupt, /skip, /refresh-checkpoints with a JSON content type and no
    // body: an empty body is "no body" (then a route that needs one says so); the rest is
    // Fastify's own parser (it guards against prototype poisoning).
    const json = app.getDefaultJsonParser("error", "ignore");
    app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
      if (typeof body === "string" && body.trim() === "") done(null, undefined);
      else json(request, body as string, done);
    });
    app.setNotFoundHandler((request, reply) => sendError(request, reply, new ServerError("JSD_NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`)));
    await app.register(swagger, {
      openapi: {
        info: { title: "japanese-stable-diffusion", version: version(), description: "AUTOMATIC1111-compatible /sdapi/v1 routes and the asynchronous /v1 jobs API" },
        ...(keys.length > 0 ? { components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } }, security: [{ bearer: [] }] } : {}),
      },
    });
    if (keys.length > 0) app.addHook("onRequest", requireKey(keys));
    await a1111Routes(app, ctx);
    await jobsRoutes(app, ctx);
    await pageRoutes(app);
    app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
    await app.ready();
  } catch (error) {
    await backend.close(true);
    throw error;
  }

  let closing: Promise<void> | undefined;
  return {
    app,
    jobs: backend.jobs,
    models: backend.models,
    async listen() {
      return app.listen({ host, port });
    },
    close(o = {}) {
      closing ??= (async () => {
        await backend.close(!o.finishRunning);
        await app.close();
      })();
      return closing;
    },
  };
}

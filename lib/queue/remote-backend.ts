// The server's side of the queue (`jsd serve --redis`): jobs go to BullMQ instead of a model in
// this process, and come back as the same Job objects the routes already know, kept up to date
// from BullMQ's queue events (active, progress, completed, failed). While Redis is away, every
// call fails at once with 503 (JSD_UNAVAILABLE) instead of waiting.
import { Queue, QueueEvents, type Job as BullJob } from "bullmq";
import type { Redis } from "ioredis";
import type { PromptMode, PromptTokens } from "../prompt/index.js";
import type { JobBackend, ModelCatalog, ModelInfo } from "../server/context.js";
import { JsdError } from "../errors.js";
import { ServerError } from "../server/errors.js";
import { Job, type JobImage, type JobRequest } from "../server/jobs.js";
import type { ServerLimits } from "../server/limits.js";
import { failFastConnection, waitingConnection } from "./connection.js";
import { BAD_REQUEST_PREFIX, CANCELLED_REASON, controlChannel, DEFAULT_QUEUE, serializeRequest, type ControlMessage, type QueueJobData, type QueueProgress, type QueueResult } from "./protocol.js";
import { FolderResultStore, RedisResultStore, type ResultStore } from "./results.js";
import { liveWorkers } from "./worker.js";
import type { Model } from "../model.js";

export interface RemoteOptions {
  redis: string;
  queue?: string;
  resultsDir?: string;
  limits: ServerLimits;
  /** Attempts per job (BullMQ retries with exponential backoff; default 3). */
  attempts?: number;
}

const unavailable = (error: unknown) =>
  new ServerError("JSD_UNAVAILABLE", `the job queue (Redis) cannot be reached: ${(error as Error).message?.split("\n")[0] ?? error}`, { "retry-after": "5" });

/** How long a call waits for the very first connection before answering 503. */
const FIRST_CONNECT_MS = 3000;


export class RemoteJobs implements JobBackend {
  readonly queueName: string;
  readonly queue: Queue<QueueJobData, QueueResult>;
  readonly events: QueueEvents;
  readonly redis: Redis;
  readonly store: ResultStore;
  /** Jobs this server follows (its own, and others it was asked about), by id. */
  readonly #jobs = new Map<string, Job>();
  readonly #eventsConnection: Redis;
  #latestActive?: string;
  #everReady = false;
  readonly #firstReady: Promise<unknown>;

  constructor(readonly options: RemoteOptions) {
    this.queueName = options.queue ?? DEFAULT_QUEUE;
    this.redis = failFastConnection(options.redis);
    this.redis.on("error", () => undefined); // reconnecting; calls meanwhile answer 503
    this.#firstReady = new Promise((resolve) => this.redis.once("ready", () => resolve((this.#everReady = true))));
    // After an outage: jobs Redis no longer has (it restarted without its data) are reported lost,
    // not left "queued" for ever.
    this.redis.on("ready", () => {
      if (this.#everReady) void this.#forgetLost();
    });
    this.queue = new Queue<QueueJobData, QueueResult>(this.queueName, { connection: this.redis });
    this.queue.on("error", () => undefined);
    this.#eventsConnection = waitingConnection(options.redis);
    this.#eventsConnection.on("error", () => undefined);
    this.events = new QueueEvents(this.queueName, { connection: this.#eventsConnection });
    this.events.on("error", () => undefined);
    this.store = options.resultsDir ? new FolderResultStore(options.resultsDir) : new RedisResultStore(this.redis, this.queueName, 3600);
    this.events.on("active", ({ jobId }) => this.#onActive(jobId));
    this.events.on("progress", ({ jobId, data }) => this.#onProgress(jobId, data as unknown as QueueProgress));
    this.events.on("completed", ({ jobId, returnvalue }) => void this.#onCompleted(jobId, returnvalue as unknown as QueueResult | string));
    this.events.on("failed", ({ jobId, failedReason }) => this.#onFailed(jobId, failedReason));
  }

  /** Throws 503 unless Redis answers now (the first connection gets a moment to come up). */
  async #checkReady(): Promise<void> {
    if (this.redis.status !== "ready" && !this.#everReady) {
      await Promise.race([this.#firstReady, new Promise((r) => setTimeout(r, FIRST_CONNECT_MS).unref())]);
    }
    if (this.redis.status !== "ready") throw unavailable(new Error(`connection ${this.redis.status}`));  // an uncoded cause: wrapped in a coded error before it leaves the package
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    await this.#checkReady();
    try {
      return await fn();
    } catch (error) {
      if (error instanceof ServerError) throw error;
      throw unavailable(error);
    }
  }

  async submit(request: JobRequest, client = "local"): Promise<Job> {
    const { limits } = this.options;
    const waiting = await this.waiting();
    if (waiting >= limits.maxQueue) {
      throw new ServerError("JSD_QUEUE_FULL", `the queue is full (${waiting} jobs waiting); try again later`, { "retry-after": "10" });
    }
    const job = new Job(request);
    job.client = client;
    this.#jobs.set(job.id, job);
    await this.#call(() =>
      this.queue.add("generate", serializeRequest(request, client), {
        jobId: job.id,
        attempts: this.options.attempts ?? 3,
        backoff: { type: "exponential", delay: 1000 },
        removeOnComplete: { age: Math.ceil(limits.keepJobsMs / 1000), count: limits.keepJobs },
        removeOnFail: { age: Math.ceil(limits.keepJobsMs / 1000), count: limits.keepJobs },
      }),
    ).catch((error) => {
      this.#jobs.delete(job.id);
      throw error;
    });
    return job;
  }

  async unfinished(client: string): Promise<number> {
    return [...this.#jobs.values()].filter((j) => j.client === client && !j.finished).length;
  }

  async get(id: string): Promise<Job | undefined> {
    const known = this.#jobs.get(id);
    if (known) return known;
    const bull = await this.#call(() => this.queue.getJob(id));
    if (!bull) return undefined;
    return this.#adopt(bull);
  }

  /** A job this server did not submit (another server's, or from before a restart), as a Job. */
  async #adopt(bull: BullJob<QueueJobData, QueueResult>): Promise<Job> {
    const job = new Job({ options: { prompt: bull.data.options.prompt }, seed: BigInt(bull.data.seed), images: bull.data.images });
    Object.defineProperty(job, "id", { value: bull.id });
    this.#jobs.set(bull.id!, job);
    const state = await this.#call(() => bull.getState());
    if (state === "active") this.#onActive(bull.id!);
    if (state === "completed") await this.#onCompleted(bull.id!, bull.returnvalue);
    if (state === "failed") this.#onFailed(bull.id!, bull.failedReason);
    return job;
  }

  async position(job: Job): Promise<number> {
    if (job.status !== "queued") return 0;
    const waiting = await this.#call(() => this.queue.getWaiting(0, this.options.limits.maxQueue));
    // BullMQ lists the newest first.
    const ids = waiting.map((j) => j.id).reverse();
    return ids.indexOf(job.id) + 1;
  }

  async cancel(job: Job): Promise<boolean> {
    if (job.finished) return false;
    const bull = await this.#call(() => this.queue.getJob(job.id));
    const state = bull ? await this.#call(() => bull.getState()) : "unknown";
    if (bull && (state === "waiting" || state === "delayed" || state === "prioritized")) {
      await this.#call(() => bull.remove());
      this.#finish(job, "cancelled");
      return true;
    }
    await this.#publish({ action: "cancel", jobId: job.id });
    return true;
  }

  async #publish(message: ControlMessage): Promise<void> {
    await this.#call(() => this.redis.publish(controlChannel(this.queueName), JSON.stringify(message)));
  }

  async interrupt(): Promise<boolean> {
    const job = await this.current();
    if (!job) return false;
    job.interrupted = true;
    await this.#publish({ action: "interrupt", jobId: job.id });
    return true;
  }

  async skip(): Promise<boolean> {
    const job = await this.current();
    if (!job) return false;
    await this.#publish({ action: "skip", jobId: job.id });
    return true;
  }

  async current(): Promise<Job | undefined> {
    const latest = this.#latestActive && this.#jobs.get(this.#latestActive);
    if (latest && latest.status === "running") return latest;
    const active = await this.#call(() => this.queue.getActive(0, 0));
    return active[0] ? this.get(active[0].id!) : undefined;
  }

  async waiting(): Promise<number> {
    return this.#call(() => this.queue.getWaitingCount());
  }

  /** The server's connections go; the jobs stay in the queue for the workers. */
  async close(): Promise<void> {
    for (const job of this.#jobs.values()) if (!job.finished) this.#finish(job, "cancelled");
    await this.events.close().catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    this.redis.disconnect();
    this.#eventsConnection.disconnect();
  }

  async #forgetLost(): Promise<void> {
    for (const job of [...this.#jobs.values()]) {
      if (job.finished) continue;
      const bull = await this.queue.getJob(job.id).catch(() => null);
      if (bull === undefined) {
        this.#finish(job, "failed", { code: "JSD_UNAVAILABLE", message: "the job was lost: Redis restarted without its data (run it with appendonly yes to keep jobs)" });
      }
    }
  }

  #onActive(jobId: string): void {
    const job = this.#jobs.get(jobId);
    if (!job || job.finished) return;
    this.#latestActive = jobId;
    if (job.status !== "running") {
      job.status = "running";
      job.startedAt = Date.now();
      job.emitEvent({ type: "started" });
    }
  }

  #onProgress(jobId: string, progress: QueueProgress): void {
    const job = this.#jobs.get(jobId);
    if (!job || job.finished || typeof progress !== "object" || progress === null) return;
    if (job.status !== "running") this.#onActive(jobId);
    job.image = progress.image;
    job.step = progress.step;
    job.totalSteps = progress.totalSteps;
    job.emitEvent({ type: "progress", image: progress.image, step: progress.step, totalSteps: progress.totalSteps, etaSeconds: job.etaSeconds() });
    if (progress.preview) {
      const png = new Uint8Array(Buffer.from(progress.preview, "base64"));
      job.preview = { png, image: progress.image, step: progress.step };
      job.emitEvent({ type: "preview", image: progress.image, step: progress.step, png });
    }
  }

  async #onCompleted(jobId: string, value: QueueResult | string): Promise<void> {
    const job = this.#jobs.get(jobId);
    if (!job || job.finished) return;
    const result = (typeof value === "string" ? JSON.parse(value) : value) as QueueResult;
    try {
      for (const r of result.images) {
        const png = await this.store.get(jobId, r.index);
        if (!png) throw new JsdError("JSD_NOT_FOUND", `image ${r.index} is not in the result store (expired?)`);
        const image: JobImage = { index: r.index, seed: r.seed, png, width: r.width, height: r.height, stepsDone: r.stepsDone, parameters: r.parameters as unknown as JobImage["parameters"] };
        job.images.push(image);
        job.emitEvent({ type: "image", image });
      }
      job.worker = result.worker;
      job.interrupted ||= result.interrupted;
      this.#finish(job, "done");
    } catch (error) {
      this.#finish(job, "failed", { code: "JSD_INTERNAL", message: (error as Error).message });
    }
  }

  #onFailed(jobId: string, reason: string): void {
    const job = this.#jobs.get(jobId);
    if (!job || job.finished) return;
    if (reason === CANCELLED_REASON) this.#finish(job, "cancelled");
    else if (reason.startsWith(BAD_REQUEST_PREFIX)) this.#finish(job, "failed", { code: "JSD_INVALID_ARGUMENT", message: reason.slice(BAD_REQUEST_PREFIX.length) });
    else this.#finish(job, "failed", { code: "JSD_INTERNAL", message: reason });
  }

  #finish(job: Job, status: Job["status"], error?: { code: string; message: string }): void {
    job.finish(status, error, Date.now());    // Followed only while it matters; GET /v1/jobs/:id later reads it back from BullMQ.
    setTimeout(() => this.#jobs.delete(job.id), this.options.limits.keepJobsMs).unref();
  }
}

/** The models the live workers serve (from their heartbeats); the tokenizer from an optional local model file. */
export class RemoteModels implements ModelCatalog {
  #workers: Array<{ model: string; hash: string | null; defaultSize: number }> = [];
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly jobs: RemoteJobs,
    readonly tokenizerModel?: Model,
  ) {
    void this.list().catch(() => undefined);
    this.#timer = setInterval(() => void this.list().catch(() => undefined), 5000).unref();
  }

  async list(): Promise<ModelInfo[]> {
    const workers = await liveWorkers(this.jobs.redis, this.jobs.queueName).catch((error) => {
      throw unavailable(error);
    });
    this.#workers = [...workers.values()];
    const byName = new Map<string, ModelInfo>();
    for (const w of this.#workers) byName.set(w.model, { name: w.model, file: `${w.model}.gguf`, hash: w.hash });
    return [...byName.values()];
  }
  current(): ModelInfo | undefined {
    const names = new Set(this.#workers.map((w) => w.model));
    const w = this.#workers[0];
    return names.size === 1 ? { name: w.model, file: `${w.model}.gguf`, hash: w.hash } : undefined;
  }
  /** The tokenizer model's, else the first live worker's, else SD v1's 512. */
  defaultImageSize(): number {
    return this.tokenizerModel?.defaultImageSize ?? this.#workers[0]?.defaultSize ?? 512;
  }
  backendName(): string {
    return "workers";
  }
  async tokenize(text: string, mode: PromptMode): Promise<PromptTokens> {
    if (!this.tokenizerModel) throw new ServerError("JSD_UNAVAILABLE", "this server has no tokenizer: start it with --model (the workers' model file) for token counts");
    return this.tokenizerModel.tokenize(text, { mode });
  }
  async select(): Promise<void> {
    throw new ServerError("JSD_CONFLICT", "behind a queue the workers choose their model (jsd worker --model); start workers with another model to switch");
  }
  close(): void {
    clearInterval(this.#timer);
  }
}

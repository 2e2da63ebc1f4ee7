// The server's job queue: one model, so jobs run one at a time in arrival order. A job is one
// request's images, each its own generate() call with seed + i (AUTOMATIC1111's seeds: every image
// is reproducible from its own seed). Cancel aborts (the images are lost), interrupt ends the job
// early with what it has, skip ends only the image in progress. Finished jobs are kept for a while.
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { encodePng } from "../image/png.js";
import type { GeneratedImage } from "../pipeline/generate.js";
import type { GenerateOptions, GenerateProgress } from "../pipeline/options.js";
import { classify, ServerError } from "./errors.js";
import type { ServerLimits } from "./limits.js";

export type JobStatus = "queued" | "running" | "done" | "failed" | "cancelled";

/** What a job generates: generate()'s options less those the queue owns. */
export type JobOptions = Omit<GenerateOptions, "signal" | "onProgress" | "interrupt" | "previewEvery" | "numImages" | "seed">;

export interface JobRequest {
  options: JobOptions;
  /** The first image's seed; image i gets seed + i. */
  seed: bigint;
  /** Images to make, one generate() call each. */
  images: number;
}

export interface JobImage {
  index: number;
  seed: string;
  png: Uint8Array;
  width: number;
  height: number;
  /** Steps run (fewer than asked when interrupted or skipped). */
  stepsDone: number;
  parameters: GeneratedImage["parameters"];
}

export interface JobError {
  code: string;
  message: string;
}

/** Events a job emits (`job.on("event", ...)`), in order; the events route streams them. */
export type JobEvent =
  | { type: "started" }
  | { type: "progress"; image: number; step: number; totalSteps: number; etaSeconds: number | null }
  | { type: "preview"; image: number; step: number; png: Uint8Array }
  | { type: "image"; image: JobImage }
  | { type: "finished"; status: JobStatus; error?: JobError };

/** Runs one generate() call; the queue passes the model in use at the job's start. */
export type ImageRunner = (options: GenerateOptions) => Promise<GeneratedImage[]>;

export class Job extends EventEmitter {
  readonly id = randomUUID();
  readonly createdAt = Date.now();
  status: JobStatus = "queued";
  startedAt?: number;
  finishedAt?: number;
  images: JobImage[] = [];
  error?: JobError;
  /** The image in progress (0-based) and its step. */
  image = 0;
  step = 0;
  totalSteps = 0;
  /** The latest preview, a small PNG at latent resolution. */
  preview?: { png: Uint8Array; image: number; step: number };
  interrupted = false;
  /** The worker process that ran it (behind a queue). */
  worker?: string;
  /** Who asked (lib/server/auth.ts clientOf): for per-client caps. */
  client = "local";
  readonly #cancel = new AbortController();
  readonly #interrupt = new AbortController();
  #skip = new AbortController();

  constructor(readonly request: JobRequest) {
    super();
  }

  get cancelSignal(): AbortSignal {
    return this.#cancel.signal;
  }

  get finished(): boolean {
    return this.status === "done" || this.status === "failed" || this.status === "cancelled";
  }

  /** Seconds left, from the pace so far; null before the first step. */
  etaSeconds(now = Date.now()): number | null {
    if (this.status !== "running" || !this.startedAt || this.totalSteps === 0) return this.status === "done" ? 0 : null;
    const done = this.image + this.step / this.totalSteps;
    if (done <= 0) return null;
    const elapsed = (now - this.startedAt) / 1000;
    return Math.max(0, (elapsed / done) * (this.request.images - done));
  }

  /** Share of the job done, 0 to 1. */
  progress(): number {
    if (this.status === "done") return 1;
    if (this.totalSteps === 0) return this.image / this.request.images;
    return Math.min(1, (this.image + this.step / this.totalSteps) / this.request.images);
  }

  emitEvent(event: JobEvent): void {
    this.emit("event", event);
  }

  /** @internal Ends the job (whichever backend ran it): its state, the "finished" event, no more listeners. */
  finish(status: JobStatus, error: JobError | undefined, now: number): void {
    this.status = status;
    this.error = error;
    this.finishedAt = now;
    this.emitEvent({ type: "finished", status, ...(error ? { error } : {}) });
    this.removeAllListeners("event");
  }

  /** @internal the queue's controls */
  abort(): void {
    this.#cancel.abort();
  }
  /** @internal */
  interrupt(): void {
    this.interrupted = true;
    this.#interrupt.abort();
  }
  /** @internal */
  skip(): void {
    this.#skip.abort();
  }
  /** @internal the signal that ends the image in progress early (interrupt or skip) */
  nextImageSignal(): AbortSignal {
    this.#skip = new AbortController();
    return AbortSignal.any([this.#interrupt.signal, this.#skip.signal]);
  }
}

type QueueItem = { kind: "job"; job: Job } | { kind: "task"; run: () => Promise<void> };

export interface JobQueueOptions {
  run: ImageRunner;
  limits: Pick<ServerLimits, "maxQueue" | "keepJobs" | "keepJobsMs" | "keepBytes">;
  /** Preview every n steps (0: none). */
  previewEvery: number;
  now?: () => number;
}

export class JobQueue {
  readonly #waiting: QueueItem[] = [];
  readonly #jobs = new Map<string, Job>();
  /** Finished jobs still kept, oldest first. */
  #finishedJobs: Job[] = [];
  #running?: QueueItem;
  #closed = false;
  #idle: Array<() => void> = [];
  /** Seconds per finished image, for Retry-After. */
  #secondsPerImage = 10;
  /** Old jobs go even when nobody asks the queue anything. */
  readonly #pruneTimer: NodeJS.Timeout;

  constructor(readonly options: JobQueueOptions) {
    this.#pruneTimer = setInterval(() => this.#prune(), 60_000).unref();
  }

  get running(): Job | undefined {
    return this.#running?.kind === "job" ? this.#running.job : undefined;
  }

  get waitingJobs(): number {
    return this.#waiting.filter((i) => i.kind === "job").length;
  }

  /** Queues a job, or refuses with 429 when maxQueue jobs already wait (or 503 once closing). */
  submit(request: JobRequest, client = "local"): Job {
    if (this.#closed) throw new ServerError("JSD_SHUTTING_DOWN", "the server is shutting down");
    this.#prune();
    if (this.waitingJobs >= this.options.limits.maxQueue) {
      const ahead = this.#waiting.reduce((n, i) => n + (i.kind === "job" ? i.job.request.images : 0), 0) + (this.running?.request.images ?? 0);
      const retry = Math.max(1, Math.ceil(ahead * this.#secondsPerImage));
      throw new ServerError("JSD_QUEUE_FULL", `the queue is full (${this.waitingJobs} jobs waiting); try again later`, { "retry-after": String(retry) });
    }
    const job = new Job(request);
    job.client = client;
    this.#jobs.set(job.id, job);
    this.#waiting.push({ kind: "job", job });
    this.#pump();
    return job;
  }

  /** Runs `task` between jobs (a model switch): after the running job, before those queued later. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ServerError("JSD_SHUTTING_DOWN", "the server is shutting down"));
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push({ kind: "task", run: () => task().then(resolve, reject) });
      this.#pump();
    });
  }

  get(id: string): Job | undefined {
    this.#prune();
    return this.#jobs.get(id);
  }

  /** A client's jobs that wait or run. */
  unfinished(client: string): number {
    return [...this.#jobs.values()].filter((j) => j.client === client && !j.finished).length;
  }

  /** 1-based place among the waiting jobs; 0 when running or finished. */
  position(job: Job): number {
    const i = this.#waiting.filter((w) => w.kind === "job").findIndex((w) => (w as { job: Job }).job === job);
    return i + 1;
  }

  /** Cancels a waiting or running job (a running one stops within a step); false when already finished. */
  cancel(job: Job): boolean {
    if (job.finished) return false;
    const i = this.#waiting.findIndex((w) => w.kind === "job" && w.job === job);
    if (i >= 0) {
      this.#waiting.splice(i, 1);
      this.#finish(job, "cancelled");
      return true;
    }
    job.abort();
    return true;
  }

  /** Stops the running job after its current step, keeping the images so far (A1111's interrupt). */
  interrupt(): boolean {
    const job = this.running;
    if (!job) return false;
    job.interrupt();
    return true;
  }

  /** Ends the running job's image in progress early and goes on with its next one (A1111's skip). */
  skip(): boolean {
    const job = this.running;
    if (!job) return false;
    job.skip();
    return true;
  }

  /**
   * Stops taking jobs: the waiting ones are cancelled; the running one is cancelled too when
   * `cancelRunning`, else it finishes. Resolves when nothing runs.
   */
  async close(cancelRunning: boolean): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pruneTimer);
    for (const item of this.#waiting.splice(0)) {
      if (item.kind === "job") this.#finish(item.job, "cancelled");
    }
    if (cancelRunning) this.running?.abort();
    if (this.#running) await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    if (this.#running || this.#waiting.length === 0) return;
    const item = this.#waiting.shift()!;
    this.#running = item;
    const done = item.kind === "job" ? this.#runJob(item.job) : item.run();
    void done.finally(() => {
      this.#running = undefined;
      if (!this.#running && this.#waiting.length === 0) for (const resolve of this.#idle.splice(0)) resolve();
      this.#pump();
    });
  }

  async #runJob(job: Job): Promise<void> {
    const now = this.options.now ?? Date.now;
    job.status = "running";
    job.startedAt = now();
    job.emitEvent({ type: "started" });
    try {
      for (let i = 0; i < job.request.images && !job.interrupted; i++) {
        if (job.cancelSignal.aborted) break;
        job.image = i;
        job.step = 0;
        const seed = job.request.seed + BigInt(i);
        const onProgress = (p: GenerateProgress & { preview?: { width: number; height: number; rgba: Uint8Array } }) => {
          job.step = p.step;
          job.totalSteps = p.totalSteps;
          job.emitEvent({ type: "progress", image: i, step: p.step, totalSteps: p.totalSteps, etaSeconds: job.etaSeconds(now()) });
          if (p.preview) {
            const png = encodePng(p.preview.rgba, p.preview.width, p.preview.height);
            job.preview = { png, image: i, step: p.step };
            job.emitEvent({ type: "preview", image: i, step: p.step, png });
          }
        };
        const started = now();
        const [image] = await this.options.run({
          ...job.request.options,
          seed,
          numImages: 1,
          signal: job.cancelSignal,
          interrupt: job.nextImageSignal(),
          ...(this.options.previewEvery > 0 ? { previewEvery: this.options.previewEvery } : {}),
          onProgress,
        } as GenerateOptions);
        this.#secondsPerImage = Math.max(0.1, (now() - started) / 1000);
        const stepsDone = (image as GeneratedImage & { stepsDone?: number }).stepsDone ?? job.totalSteps;
        const entry: JobImage = { index: i, seed: seed.toString(), png: image.png, width: image.width, height: image.height, stepsDone, parameters: image.parameters };
        job.images.push(entry);
        job.emitEvent({ type: "image", image: entry });
      }
      this.#finish(job, job.cancelSignal.aborted ? "cancelled" : "done");
    } catch (error) {
      if (job.cancelSignal.aborted) this.#finish(job, "cancelled");
      else this.#finish(job, "failed", { code: classify(error).code, message: (error as Error).message });
    }
  }

  #finish(job: Job, status: JobStatus, error?: JobError): void {
    this.#finishedJobs.push(job);
    job.finish(status, error, (this.options.now ?? Date.now)());
  }

  /** Drops finished jobs past the count, age or bytes limit, oldest first. */
  #prune(): void {
    const { keepJobs, keepJobsMs, keepBytes } = this.options.limits;
    const now = (this.options.now ?? Date.now)();
    let bytes = 0;
    const kept: Job[] = [];
    for (let i = this.#finishedJobs.length - 1; i >= 0; i--) {
      const job = this.#finishedJobs[i];
      bytes += job.images.reduce((n, image) => n + image.png.length, 0);
      if (kept.length < keepJobs && now - job.finishedAt! <= keepJobsMs && bytes <= keepBytes) kept.unshift(job);
      else this.#jobs.delete(job.id);
    }
    this.#finishedJobs = kept;
  }
}

// enqueue() for apps with their own server: a job on the queue that `jsd worker` processes take
// from, followed through BullMQ's queue events. The same machinery as `jsd serve --redis`.
import { EventEmitter } from "node:events";
import { JsdError, type JsdErrorCode } from "../errors.js";
import type { GenerateOptions } from "../pipeline/options.js";
import { randomSeed } from "../pipeline/options.js";
import type { Job, JobEvent, JobImage } from "../server/jobs.js";
import { DEFAULT_LIMITS, resolveLimits, type ServerLimits } from "../server/limits.js";
import { RemoteJobs } from "./remote-backend.js";

export interface ProducerOptions {
  redis: string;
  queue?: string;
  resultsDir?: string;
  /** maxQueue (enqueue refuses past it) and how long finished jobs are followed; the server's defaults. */
  limits?: Partial<ServerLimits>;
  attempts?: number;
}

/** What enqueue() takes: generate()'s options (no callbacks; images as pixels or PNG bytes, not paths). */
export type EnqueueOptions = Omit<GenerateOptions, "signal" | "onProgress" | "interrupt" | "previewEvery" | "seed" | "initImage" | "mask"> & {
  seed?: number | bigint;
  initImage?: Uint8Array | { width: number; height: number; rgba: Uint8Array };
  mask?: Uint8Array | { width: number; height: number; rgba: Uint8Array };
};

export interface QueuedJob extends EventEmitter {
  readonly id: string;
  /** Resolves with the images (seed, seed + 1, ...) when the job is done; rejects when it fails or is cancelled. */
  result(): Promise<JobImage[]>;
  cancel(): Promise<boolean>;
  /** The underlying job record: status, step, worker, ... */
  readonly job: Job;
}

export interface Producer {
  /** Queues a job; `numImages` images, image i with seed + i. Events: "progress", "preview", "image", "finished". */
  enqueue(options: EnqueueOptions): Promise<QueuedJob>;
  close(): Promise<void>;
}

export function createProducer(options: ProducerOptions): Producer {
  const jobs = new RemoteJobs({ redis: options.redis, queue: options.queue, resultsDir: options.resultsDir, limits: resolveLimits({ ...DEFAULT_LIMITS, ...options.limits }), attempts: options.attempts });
  return {
    async enqueue(o: EnqueueOptions): Promise<QueuedJob> {
      const { numImages, seed, ...rest } = o;
      const job = await jobs.submit({ options: rest, seed: seed === undefined ? randomSeed() : BigInt(seed), images: numImages ?? 1 });
      const handle = new EventEmitter() as QueuedJob & EventEmitter;
      const done = new Promise<JobImage[]>((resolve, reject) => {
        job.on("event", (e: JobEvent) => {
          handle.emit(e.type, e);
          if (e.type !== "finished") return;
          if (e.status === "done") resolve(job.images);
          else reject(new JsdError((e.error?.code ?? "JSD_ABORTED") as JsdErrorCode, e.error?.message ?? `the job was ${e.status}`));
        });
      });
      done.catch(() => undefined); // the caller may never ask for the result
      Object.assign(handle, { id: job.id, job, result: () => done, cancel: () => jobs.cancel(job) });
      return handle;
    },
    close: () => jobs.close(),
  };
}

// `createWorker()` / `jsd worker`: loads the model once and takes jobs from a BullMQ queue. Retries,
// stalled-job detection (a worker killed mid-job: its lock expires and another worker runs the job
// again), locks and rate limits are BullMQ's; this file only connects them to generate():
// progress and throttled previews through job.updateProgress, cancellation through the AbortSignal
// BullMQ hands the processor (reached from the server over a pub/sub channel), PNGs into a result
// store. A job whose request is bad fails once (UnrecoverableError), without retries.
import { hostname } from "node:os";
import { UnrecoverableError, Worker, type Job as BullJob } from "bullmq";
import type { Redis } from "ioredis";
import { classify } from "../server/errors.js";
import { encodePng } from "../image/png.js";
import { MODEL_KEYS } from "../formats/model-keys.js";
import { DEFAULT_MODEL_PATH, loadModel, type LoadModelOptions, type Model } from "../model.js";
import { waitingConnection } from "./connection.js";
import { BAD_REQUEST_PREFIX, CANCELLED_REASON, controlChannel, DEFAULT_QUEUE, deserializeRequest, workersKey, type ControlMessage, type QueueJobData, type QueueProgress, type QueueResult } from "./protocol.js";
import { FolderResultStore, RedisResultStore, type ResultStore } from "./results.js";

export interface WorkerOptions {
  /** redis://host:port[/db] */
  redis: string;
  queue?: string;
  /** Model file (default: the embedded tiny model). */
  model?: string;
  load?: LoadModelOptions;
  /** Jobs taken at once (default 1: the model runs one generate() at a time anyway). */
  concurrency?: number;
  /** Shown in each job's record (default: host name and process id). */
  name?: string;
  /** A folder shared with the server for the PNGs (default: Redis, with a TTL). */
  resultsDir?: string;
  /** Seconds the PNGs stay in Redis (default one hour). */
  resultTtlSeconds?: number;
  /** Previews sent at most this often (milliseconds; default 500; 0: none). */
  previewMs?: number;
  /** BullMQ's global rate limit: at most `max` jobs per `durationMs` over all workers. */
  limiter?: { max: number; durationMs: number };
  /** BullMQ's lock and stalled-job check (ms; defaults 30000 and 30000): how soon a dead worker's job runs again. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

export interface JsdWorker {
  readonly name: string;
  readonly model: Model;
  readonly worker: Worker<QueueJobData, QueueResult>;
  /** Stops taking jobs, lets the current one finish, then closes the model and the connections. */
  close(): Promise<void>;
}

/** What this worker serves, for the server's model list; refreshed while it runs. */
const HEARTBEAT_MS = 5000;

function isBadRequest(error: unknown): boolean {
  return classify(error).code === "JSD_INVALID_ARGUMENT";
}

export async function createWorker(options: WorkerOptions): Promise<JsdWorker> {
  const queueName = options.queue ?? DEFAULT_QUEUE;
  const name = options.name ?? `${hostname()}-${process.pid}`;
  const previewMs = options.previewMs ?? 500;
  const model = await loadModel(options.model, options.load);
  const connection = waitingConnection(options.redis);
  const subscriber = waitingConnection(options.redis);
  const store: ResultStore = options.resultsDir ? new FolderResultStore(options.resultsDir) : new RedisResultStore(connection, queueName, options.resultTtlSeconds ?? 3600);
  // interrupt/skip of the jobs running here (cancel goes through BullMQ's own signal).
  const controls = new Map<string, { interrupt: AbortController; skip: AbortController }>();

  const processor = async (job: BullJob<QueueJobData, QueueResult>, _token?: string, signal?: AbortSignal): Promise<QueueResult> => {
    let request;
    try {
      request = deserializeRequest(job.data);
    } catch (error) {
      throw new UnrecoverableError(BAD_REQUEST_PREFIX + (error as Error).message);
    }
    const control = { interrupt: new AbortController(), skip: new AbortController() };
    controls.set(job.id!, control);
    const result: QueueResult = { worker: name, images: [], interrupted: false };
    try {
      for (let i = 0; i < request.images && !control.interrupt.signal.aborted; i++) {
        control.skip = new AbortController();
        let lastPreview = 0;
        const seed = request.seed + BigInt(i);
        const [image] = await model.generate({
          ...request.options,
          seed,
          numImages: 1,
          signal,
          interrupt: AbortSignal.any([control.interrupt.signal, control.skip.signal]),
          ...(previewMs > 0 ? { previewEvery: 1 } : {}),
          onProgress: (p) => {
            const progress: QueueProgress = { worker: name, image: i, step: p.step, totalSteps: p.totalSteps };
            const now = Date.now();
            if (p.preview && (now - lastPreview >= previewMs || p.step === p.totalSteps)) {
              lastPreview = now;
              progress.preview = Buffer.from(encodePng(p.preview.rgba, p.preview.width, p.preview.height)).toString("base64");
            }
            void job.updateProgress(progress as unknown as object).catch(() => undefined);
          },
        });
        await store.put(job.id!, i, image.png);
        result.images.push({ index: i, seed: seed.toString(), width: image.width, height: image.height, stepsDone: image.stepsDone, parameters: { ...image.parameters } });
      }
      result.interrupted = control.interrupt.signal.aborted;
      return result;
    } catch (error) {
      // Cancelled, or a request generate() refuses: failing again would not help.
      if (signal?.aborted) throw new UnrecoverableError(CANCELLED_REASON);
      if (isBadRequest(error)) throw new UnrecoverableError(BAD_REQUEST_PREFIX + (error as Error).message);
      throw error;
    } finally {
      controls.delete(job.id!);
    }
  };

  const worker = new Worker<QueueJobData, QueueResult>(queueName, processor, {
    connection,
    concurrency: options.concurrency ?? 1,
    name,
    ...(options.limiter ? { limiter: { max: options.limiter.max, duration: options.limiter.durationMs } } : {}),
    ...(options.lockDurationMs ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs ? { stalledInterval: options.stalledIntervalMs } : {}),
  });
  worker.on("error", () => undefined); // connection errors: ioredis reconnects; BullMQ logs nothing useful here

  await subscriber.subscribe(controlChannel(queueName));
  subscriber.on("message", (_channel: string, text: string) => {
    let message: ControlMessage;
    try {
      message = JSON.parse(text) as ControlMessage;
    } catch {
      return;
    }
    if (message.action === "cancel") worker.cancelJob(message.jobId, CANCELLED_REASON);
    else controls.get(message.jobId)?.[message.action].abort();
  });

  const info = JSON.stringify({
    model: (options.model ?? DEFAULT_MODEL_PATH).split(/[\\/]/).pop()!.replace(/\.gguf$/i, ""),
    hash: model.metadata[MODEL_KEYS.dataSha256]?.slice(0, 10) ?? null,
    defaultSize: model.defaultImageSize,
    backend: model.backend,
  });
  const beat = async () => {
    await connection.hset(workersKey(queueName), name, JSON.stringify({ ...JSON.parse(info), seen: Date.now() })).catch(() => undefined);
  };
  await beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS).unref();

  let closing: Promise<void> | undefined;
  return {
    name,
    model,
    worker,
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        await worker.close();
        await connection.hdel(workersKey(queueName), name).catch(() => undefined);
        await subscriber.quit().catch(() => undefined);
        await connection.quit().catch(() => undefined);
        await model.close();
      })();
      return closing;
    },
  };
}

/** The workers seen in the last few heartbeats, by name. */
export async function liveWorkers(redis: Redis, queue: string): Promise<Map<string, { model: string; hash: string | null; defaultSize: number; backend: string }>> {
  const all = await redis.hgetall(workersKey(queue));
  const live = new Map();
  for (const [name, text] of Object.entries(all)) {
    try {
      const w = JSON.parse(text);
      if (Date.now() - w.seen < 3 * HEARTBEAT_MS) live.set(name, w);
    } catch {
      // a malformed entry is nobody
    }
  }
  return live;
}

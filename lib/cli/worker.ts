// `jsd worker`: a process that loads the model once and takes jobs from the BullMQ queue that
// `jsd serve --redis` fills. SIGTERM/SIGINT: take no new job, finish the current one, exit 0
// (a second signal cancels it; BullMQ then runs it again elsewhere only if it was not cancelled).
import type { Command } from "commander";
import { createWorker } from "../queue/worker.js";
import { intOption, type CliIo } from "./io.js";
import { addLoadOptions, loadOptionsOf, type LoadFlags } from "./load-flags.js";

interface WorkerFlags extends LoadFlags {
  redis: string;
  queue: string;
  concurrency: number;
  name?: string;
  resultsDir?: string;
  previewMs: number;
  rateLimit?: number;
  lockMs?: number;
}

export function registerWorker(program: Command, io: CliIo): void {
  const command = program
    .command("worker")
    .description("take jobs from the Redis queue of `jsd serve --redis` (BullMQ), with the model loaded once")
    .requiredOption("--redis <url>", "the Redis server (redis://host:port[/db])")
    .option("--queue <name>", "the queue's name", "jsd")
    .option("--concurrency <n>", "jobs taken at once (the model runs one at a time)", intOption("--concurrency", 1, 64), 1)
    .option("--name <name>", "this worker's name in the jobs' records (default: host-pid)")
    .option("--results-dir <folder>", "a folder shared with the server for the PNGs (default: Redis, with a one-hour TTL)")
    .option("--preview-ms <ms>", "send a preview at most this often (0: none)", intOption("--preview-ms", 0, 3_600_000), 500)
    .option("--rate-limit <n>", "BullMQ's global limiter: at most n jobs per second over all workers", intOption("--rate-limit", 1, 1_000_000))
    .option("--lock-ms <ms>", "BullMQ's lock duration and stalled check: how soon a dead worker's job runs again (default 30000)", intOption("--lock-ms", 1000, 3_600_000));
  addLoadOptions(command).action(async (flags: WorkerFlags) => {
    const worker = await createWorker({
      redis: flags.redis,
      queue: flags.queue,
      model: flags.model,
      load: loadOptionsOf(flags),
      concurrency: flags.concurrency,
      name: flags.name,
      resultsDir: flags.resultsDir,
      previewMs: flags.previewMs,
      ...(flags.rateLimit ? { limiter: { max: flags.rateLimit, durationMs: 1000 } } : {}),
      ...(flags.lockMs ? { lockDurationMs: flags.lockMs, stalledIntervalMs: Math.max(500, Math.floor(flags.lockMs / 2)) } : {}),
    });
    io.stderr.write(`jsd worker ${worker.name}: ${worker.model.backend}, queue ${flags.queue} on ${flags.redis}\n`);
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          io.stderr.write(`jsd worker ${worker.name}: ${signal} again: cancelling the current job\n`);
          worker.worker.cancelAllJobs("cancelled");
          return;
        }
        stopping = true;
        io.stderr.write(`jsd worker ${worker.name}: ${signal}: finishing the current job, then stopping\n`);
        worker.close().then(resolve, (error) => {
          io.stderr.write(`jsd worker: ${(error as Error).message}\n`);
          resolve();
        });
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));
    });
  });
}

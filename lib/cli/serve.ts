// `jsd serve`: the model behind the HTTP server (lib/server): the page at /, AUTOMATIC1111's
// /sdapi/v1 API and the /v1 jobs API. SIGINT/SIGTERM: stop taking jobs, cancel the waiting ones
// and the running one, close the model, exit 0.
import type { Command } from "commander";
import { createServer, DEFAULT_HOST, DEFAULT_LIMITS, DEFAULT_PORT } from "../server/index.js";
import { LIMITS } from "../limits.js";
import { intOption, type CliIo } from "./io.js";
import { addLoadOptions, loadOptionsOf, type LoadFlags } from "./load-flags.js";

interface ServeFlags extends LoadFlags {
  modelsDir?: string;
  host: string;
  port: number;
  apiKey?: string[];
  maxJobsPerClient: number;
  auth: boolean;
  maxQueue: number;
  maxSteps: number;
  maxSide: number;
  maxImages: number;
  previewEvery: number;
  safetyChecker: boolean;
  log: boolean;
  redis?: string;
  queue?: string;
  resultsDir?: string;
}

export function registerServe(program: Command, io: CliIo): void {
  const command = program
    .command("serve")
    .description("serve a web page and an HTTP API (AUTOMATIC1111-compatible /sdapi/v1, and /v1/jobs)")
    .option("--models-dir <folder>", "a folder of .gguf models clients may switch between (sd_model_checkpoint)")
    .option("--host <address>", "address to listen on; beyond loopback it needs --api-key (or --no-auth)", DEFAULT_HOST)
    .option("--port <n>", "port (0: any free one)", intOption("--port", 0, 65535), DEFAULT_PORT)
    .option("--api-key <key>", "require Authorization: Bearer <key> on every API route; repeat it for several clients (default: $JSD_API_KEY, comma-separated)", (value: string, previous: string[] = []) => [...previous, value])
    .option("--no-auth", "listen beyond loopback without a key (something else must guard the server)")
    .option("--max-queue <n>", "jobs that may wait; more get 429", intOption("--max-queue", 0, 10_000), DEFAULT_LIMITS.maxQueue)
    .option("--max-steps <n>", "steps per image a request may ask for", intOption("--max-steps", 1, 1000), DEFAULT_LIMITS.maxSteps)
    .option("--max-side <px>", "width and height a request may ask for", intOption("--max-side", 8, LIMITS.imageSideMax), DEFAULT_LIMITS.maxSide)
    .option("--max-images <n>", "images per request", intOption("--max-images", 1, 1000), DEFAULT_LIMITS.maxImages)
    .option("--max-jobs-per-client <n>", "unfinished jobs one API key may have (0: no cap)", intOption("--max-jobs-per-client", 0, 10_000), DEFAULT_LIMITS.maxJobsPerClient)
    .option("--preview-every <n>", "live preview every n steps (0: none)", intOption("--preview-every", 0, 1000), 1)
    .option("--no-safety-checker", "do not run the model's safety checker on the images (by default it runs where the model has one, and flagged images are sent black)")
    .option("--log", "log every request (JSON lines on stdout)", false)
    .option("--redis <url>", "send jobs to a BullMQ queue on this Redis (redis://host:port) for `jsd worker` processes; --model then only gives the tokenizer")
    .option("--queue <name>", "the queue's name (with --redis)", "jsd")
    .option("--results-dir <folder>", "with --redis: a folder shared with the workers for the PNGs (default: Redis, with a TTL)");
  addLoadOptions(command).action(async (flags: ServeFlags) => {
    const fromEnv = (process.env.JSD_API_KEY ?? "").split(",").map((k) => k.trim()).filter(Boolean);
    const apiKey = flags.apiKey ?? (fromEnv.length > 0 ? fromEnv : undefined);
    const server = await createServer({
      model: flags.model,
      modelsDir: flags.modelsDir,
      load: loadOptionsOf(flags),
      host: flags.host,
      port: flags.port,
      apiKey,
      noAuth: !flags.auth,
      previewEvery: flags.previewEvery,
      safetyChecker: flags.safetyChecker,
      // A square of maxSide is always allowed; the pixel limit follows the side limit.
      limits: { maxQueue: flags.maxQueue, maxSteps: flags.maxSteps, maxSide: flags.maxSide, maxPixels: flags.maxSide * flags.maxSide, maxImages: flags.maxImages, maxJobsPerClient: flags.maxJobsPerClient },
      logger: flags.log,
      redis: flags.redis,
      queue: flags.queue,
      resultsDir: flags.resultsDir,
    });
    const url = await server.listen();
    const model = server.models.current()?.name ?? (flags.redis ? `queue ${flags.queue ?? "jsd"} on ${flags.redis}` : "model");
    io.stderr.write(`jsd serve: ${model} on ${server.models.backendName()}; page ${url}/  API ${url}/sdapi/v1 and ${url}/v1/jobs${apiKey ? " (API key required)" : ""}\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        void server.jobs.current().then(
          (running) => io.stderr.write(`jsd serve: ${signal}: stopping${running && !flags.redis ? " (cancelling the running job)" : ""}\n`),
          () => io.stderr.write(`jsd serve: ${signal}: stopping\n`),
        );
        server.close().then(resolve, (error) => {
          io.stderr.write(`jsd serve: ${(error as Error).message}\n`);
          resolve();
        });
      };
      const onInt = () => stop("SIGINT");
      const onTerm = () => stop("SIGTERM");
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
    });
  });
}

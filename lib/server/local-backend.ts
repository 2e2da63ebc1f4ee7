// Jobs run in this process: the JobQueue over the one loaded model (ModelHolder).
import type { PromptMode, PromptTokens } from "../prompt/index.js";
import type { JobBackend, ModelCatalog, ModelInfo } from "./context.js";
import { ServerError } from "./errors.js";
import type { Job, JobQueue, JobRequest } from "./jobs.js";
import type { ModelEntry, ModelHolder } from "./models.js";

export class LocalJobs implements JobBackend {
  constructor(readonly queue: JobQueue) {}
  async submit(request: JobRequest, client?: string): Promise<Job> {
    return this.queue.submit(request, client);
  }
  async unfinished(client: string): Promise<number> {
    return this.queue.unfinished(client);
  }
  async get(id: string): Promise<Job | undefined> {
    return this.queue.get(id);
  }
  async position(job: Job): Promise<number> {
    return this.queue.position(job);
  }
  async cancel(job: Job): Promise<boolean> {
    return this.queue.cancel(job);
  }
  async interrupt(): Promise<boolean> {
    return this.queue.interrupt();
  }
  async skip(): Promise<boolean> {
    return this.queue.skip();
  }
  async current(): Promise<Job | undefined> {
    return this.queue.running;
  }
  async waiting(): Promise<number> {
    return this.queue.waitingJobs;
  }
  close(cancelRunning: boolean): Promise<void> {
    return this.queue.close(cancelRunning);
  }
}

export class LocalModels implements ModelCatalog {
  constructor(
    readonly holder: ModelHolder,
    readonly queue: JobQueue,
  ) {}
  #info(entry: ModelEntry, current: boolean): ModelInfo {
    return { name: entry.name, file: entry.file, hash: current ? this.holder.shortHash : null };
  }
  async list(): Promise<ModelInfo[]> {
    const current = this.holder.entry;
    return (await this.holder.list()).map((e) => this.#info(e, e.path === current?.path));
  }
  current(): ModelInfo | undefined {
    const entry = this.holder.entry;
    return entry ? this.#info(entry, true) : undefined;
  }
  defaultImageSize(): number {
    return this.holder.model.defaultImageSize;
  }
  backendName(): string {
    return this.holder.model.backend;
  }
  async tokenize(text: string, mode: PromptMode): Promise<PromptTokens> {
    return this.holder.model.tokenize(text, { mode });
  }
  async select(name: string): Promise<void> {
    const entry = await this.holder.find(name);
    if (!entry) throw new ServerError("JSD_INVALID_ARGUMENT", `no model named ${JSON.stringify(name)} (GET /sdapi/v1/sd-models lists them)`);
    // Between jobs: after the running one, before those queued later.
    await this.queue.exclusive(() => this.holder.switchTo(entry));
  }
}

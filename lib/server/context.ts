// What every route group shares: where jobs run (this process, or workers behind a queue), what
// models there are, the limits and the server's own settings. The routes see only these
// interfaces, so both APIs behave the same whichever backend runs the jobs.
import type { PromptMode, PromptTokens } from "../prompt/index.js";
import type { Job, JobRequest } from "./jobs.js";
import type { ServerLimits } from "./limits.js";

export interface JobBackend {
  /** Queues a job; ServerError JSD_QUEUE_FULL (429) past the limit, JSD_SHUTTING_DOWN (503) when closed or unreachable. */
  submit(request: JobRequest, client?: string): Promise<Job>;
  /** A client's jobs that wait or run (as far as this server knows). */
  unfinished(client: string): Promise<number>;
  get(id: string): Promise<Job | undefined>;
  /** 1-based place among the waiting jobs; 0 when running or finished. */
  position(job: Job): Promise<number>;
  /** Cancels a waiting or running job; false when it has finished already. */
  cancel(job: Job): Promise<boolean>;
  /** A1111's interrupt and skip, for the job /sdapi/v1/progress shows. */
  interrupt(): Promise<boolean>;
  skip(): Promise<boolean>;
  /** The job /sdapi/v1/progress shows: the running one (the latest started, with several workers). */
  current(): Promise<Job | undefined>;
  /** Jobs waiting to run. */
  waiting(): Promise<number>;
  close(cancelRunning: boolean): Promise<void>;
}

/** A model a client may pick by name (the file name without .gguf). */
export interface ModelInfo {
  name: string;
  file: string;
  /** A1111's short hash (10 hex digits of the weights' SHA-256), when known. */
  hash: string | null;
}

export interface ModelCatalog {
  list(): Promise<ModelInfo[]>;
  /** The model jobs run on now (undefined: several, or none known). */
  current(): ModelInfo | undefined;
  defaultImageSize(): number;
  /** Where the networks run ("cpu", "cuda", ...; "workers" behind a queue). */
  backendName(): string;
  tokenize(text: string, mode: PromptMode): Promise<PromptTokens>;
  /** Switches the model jobs run on (A1111's sd_model_checkpoint); ServerError where that cannot be done. */
  select(name: string): Promise<void>;
}

export interface ServerContext {
  jobs: JobBackend;
  models: ModelCatalog;
  limits: ServerLimits;
  /** Whether jobs run the model's safety checker (the server's setting; clients cannot change it). */
  safetyChecker: boolean;
  /** Shown by GET /sdapi/v1/cmd-flags (no secrets: the key is reported as set or not). */
  flags: Record<string, string | number | boolean | null>;
}

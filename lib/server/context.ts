// What every route group shares: the queue, the model, the limits and the server's own settings.
import type { JobQueue } from "./jobs.js";
import type { ServerLimits } from "./limits.js";
import type { ModelHolder } from "./models.js";

export interface ServerContext {
  queue: JobQueue;
  models: ModelHolder;
  limits: ServerLimits;
  /** Shown by GET /sdapi/v1/cmd-flags (no secrets: the key is reported as set or not). */
  flags: Record<string, string | number | boolean | null>;
}

// Queuing a request for a client: the per-client cap first (fairness between API keys; BullMQ's
// open-source queue has no per-group limit, so the server keeps it), then the backend's own limit.
// The server's safety-checker setting goes into every job here, whatever the client sent: the
// job carries it to the process that runs it (this one, or a worker behind the queue).
import type { FastifyRequest } from "fastify";
import { requestClient } from "./auth.js";
import type { ServerContext } from "./context.js";
import { ServerError } from "./errors.js";
import type { Job, JobRequest } from "./jobs.js";

export async function submitJob(ctx: ServerContext, request: FastifyRequest, job: JobRequest): Promise<Job> {
  const client = requestClient(request);
  const cap = ctx.limits.maxJobsPerClient;
  if (cap > 0 && (await ctx.jobs.unfinished(client)) >= cap) {
    throw new ServerError("JSD_QUEUE_FULL", `this client already has ${cap} unfinished jobs, the most this server allows; wait for one to finish`, { "retry-after": "10" });
  }
  return ctx.jobs.submit({ ...job, options: { ...job.options, safetyChecker: ctx.safetyChecker } }, client);
}

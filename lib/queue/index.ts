// japanese-stable-diffusion/queue: many worker processes (or machines) behind one queue on Redis,
// through BullMQ. `createWorker()` is `jsd worker`; `createProducer().enqueue()` is what
// `jsd serve --redis` does with each request.
export { createWorker, type WorkerOptions, type JsdWorker } from "./worker.js";
export { createProducer, type Producer, type ProducerOptions, type EnqueueOptions, type QueuedJob } from "./producer.js";
export { DEFAULT_QUEUE } from "./protocol.js";
export type { JobImage, JobStatus } from "../server/jobs.js";

// What travels through the queue between `jsd serve --redis` (or enqueue()) and `jsd worker`:
// the job's request as JSON (images as base64 PNG, never a path), its progress, its result.
import { decodeImageBytes, encodePng } from "../image/png.js";
import type { JobOptions, JobRequest } from "../server/jobs.js";
import { JsdTypeError } from "../errors.js";

/** BullMQ's queue name when none is given. */
export const DEFAULT_QUEUE = "jsd";
/** Prefix of every key this package writes in Redis beside BullMQ's own (`bull:`). */
export const KEY_PREFIX = "jsd";

type PixelImage = { width: number; height: number; rgba: Uint8Array | Uint8ClampedArray };

/** A JobRequest as JSON: the seed as a decimal string, init image and mask as base64 PNGs. */
export interface QueueJobData {
  options: Omit<JobOptions, "initImage" | "mask"> & { initImage?: string; mask?: string };
  seed: string;
  images: number;
  /** Who asked (a hash of the API key, or "local"): for per-client caps. */
  client: string;
}

export interface QueueProgress {
  worker: string;
  image: number;
  step: number;
  totalSteps: number;
  /** The latest preview (base64 PNG at latent resolution), at most every previewMs. */
  preview?: string;
}

export interface QueueResultImage {
  index: number;
  seed: string;
  width: number;
  height: number;
  stepsDone: number;
  parameters: Record<string, unknown>;
}

export interface QueueResult {
  /** The worker that ran the job (its --name). */
  worker: string;
  images: QueueResultImage[];
  interrupted: boolean;
}

/**
 * How a worker fails a job that must not be retried, so that the server can tell why: the request
 * is bad (its message follows the prefix), or the job was cancelled.
 */
export const BAD_REQUEST_PREFIX = "bad request: ";
export const CANCELLED_REASON = "cancelled";

/** A control message to the worker running a job (Redis pub/sub: BullMQ's cancelJob() is per process). */
export interface ControlMessage {
  action: "cancel" | "interrupt" | "skip";
  jobId: string;
}

export function controlChannel(queue: string): string {
  return `${KEY_PREFIX}:${queue}:control`;
}

export function workersKey(queue: string): string {
  return `${KEY_PREFIX}:${queue}:workers`;
}

function pngBase64(image: unknown): string | undefined {
  if (image === undefined) return undefined;
  if (image instanceof Uint8Array) return Buffer.from(image).toString("base64");
  if (typeof image === "object" && image && "rgba" in image) {
    const p = image as PixelImage;
    return Buffer.from(encodePng(p.rgba, p.width, p.height)).toString("base64");
  }
  // A string would be a file path on this side: never sent, never read on the other.
  throw new JsdTypeError("initImage and mask must be pixels or PNG bytes");
}

export function serializeRequest(request: JobRequest, client: string): QueueJobData {
  const { initImage, mask, ...rest } = request.options;
  return { options: { ...rest, initImage: pngBase64(initImage), mask: pngBase64(mask) }, seed: request.seed.toString(), images: request.images, client };
}

/** The worker's side: base64 becomes pixels (a string never reaches generate(), where it would name a file). */
export function deserializeRequest(data: QueueJobData): JobRequest {
  const { initImage, mask, ...rest } = data.options;
  const pixels = (b64: string | undefined) => (b64 === undefined ? undefined : decodeImageBytes(new Uint8Array(Buffer.from(b64, "base64"))));
  const options: JobOptions = { ...rest };
  const init = pixels(initImage);
  const m = pixels(mask);
  if (init) options.initImage = { width: init.width, height: init.height, rgba: init.rgba };
  if (m) options.mask = { width: m.width, height: m.height, rgba: m.rgba };
  if (!/^[0-9]{1,20}$/.test(data.seed)) throw new JsdTypeError("seed must be a decimal string");
  return { options, seed: BigInt(data.seed), images: data.images };
}

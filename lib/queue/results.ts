// Where workers put the PNGs for the server to read: Redis with a TTL (the default; a PNG over
// maxRedisBytes is refused there, so large images never fill Redis's memory), or a folder every
// worker and the server share (--results-dir).
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { KEY_PREFIX } from "./protocol.js";
import { JsdError, JsdTypeError } from "../errors.js";

export interface ResultStore {
  put(jobId: string, index: number, png: Uint8Array): Promise<void>;
  get(jobId: string, index: number): Promise<Uint8Array | undefined>;
}

/** Job ids are ours (UUIDs) or BullMQ's (digits): anything else never reaches a key or a path. */
function checkId(jobId: string): string {
  if (!/^[0-9a-f-]{1,64}$/i.test(jobId)) throw new JsdTypeError(`bad job id ${JSON.stringify(jobId)}`);
  return jobId;
}

export const DEFAULT_MAX_REDIS_PNG = 4 * 1024 * 1024;

export class RedisResultStore implements ResultStore {
  constructor(
    readonly redis: Redis,
    readonly queue: string,
    readonly ttlSeconds: number,
    readonly maxBytes = DEFAULT_MAX_REDIS_PNG,
  ) {}
  #key(jobId: string, index: number): string {
    return `${KEY_PREFIX}:${this.queue}:png:${checkId(jobId)}:${index}`;
  }
  async put(jobId: string, index: number, png: Uint8Array): Promise<void> {
    if (png.length > this.maxBytes) {
      throw new JsdError("JSD_IO", `the PNG is ${png.length} bytes, over the ${this.maxBytes} kept in Redis: give the workers and the server a shared --results-dir`);
    }
    await this.redis.set(this.#key(jobId, index), Buffer.from(png), "EX", this.ttlSeconds);
  }
  async get(jobId: string, index: number): Promise<Uint8Array | undefined> {
    const value = await this.redis.getBuffer(this.#key(jobId, index));
    return value ? new Uint8Array(value) : undefined;
  }
}

export class FolderResultStore implements ResultStore {
  constructor(readonly dir: string) {}
  #path(jobId: string, index: number): string {
    return join(this.dir, `${checkId(jobId)}-${index}.png`);
  }
  async put(jobId: string, index: number, png: Uint8Array): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const path = this.#path(jobId, index);
    // Whole files only: a reader never sees half a PNG.
    await writeFile(`${path}.tmp`, png);
    await rename(`${path}.tmp`, path);
  }
  async get(jobId: string, index: number): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.#path(jobId, index)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }
}

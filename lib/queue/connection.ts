// Redis connections from a redis:// URL. Workers wait through outages (BullMQ needs
// maxRetriesPerRequest null there); the server's connection fails commands at once while Redis is
// away, so that a request gets 503 instead of waiting.
import { Redis, type RedisOptions } from "ioredis";
import { JsdTypeError } from "../errors.js";

export function redisOptions(url: string): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new JsdTypeError(`not a Redis URL: ${JSON.stringify(url)} (expected redis://host:port)`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw new JsdTypeError(`not a Redis URL: ${url} (expected redis://host:port)`);
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new JsdTypeError(`bad Redis database in ${url}`);
  return {
    host: parsed.hostname || "127.0.0.1",
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    db,
    ...(parsed.protocol === "rediss:" ? { tls: {} } : {}),
    // Reconnect forever, at most a second apart.
    retryStrategy: (times) => Math.min(times * 100, 1000),
  };
}

/** A connection for workers and BullMQ's blocking commands: commands wait for Redis to come back. */
export function waitingConnection(url: string): Redis {
  return new Redis({ ...redisOptions(url), maxRetriesPerRequest: null });
}

/** A connection for the server: while Redis is away, commands fail at once. */
export function failFastConnection(url: string): Redis {
  return new Redis({ ...redisOptions(url), maxRetriesPerRequest: 1, enableOfflineQueue: false });
}

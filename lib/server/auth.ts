// Who may call the API: anyone on this machine by default (the server listens on loopback), and
// with an API key only those who send it. Listening beyond loopback without a key is refused.
import { timingSafeEqual, createHash } from "node:crypto";
import { isIP } from "node:net";
import type { FastifyRequest } from "fastify";
import { ServerError } from "./errors.js";
import { PAGE_ROUTES } from "./page.js";

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** Same-length digests, so the comparison time says nothing about the key. */
function sameKey(a: string, b: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** A client's name for per-client limits: a hash of its key (never the key), or "local" without keys. */
export function clientOf(key: string | undefined): string {
  return key ? createHash("sha256").update(key).digest("hex").slice(0, 16) : "local";
}

/** The client a request came from, set by requireKey (or "local"). */
export function requestClient(request: FastifyRequest): string {
  return (request as FastifyRequest & { jsdClient?: string }).jsdClient ?? "local";
}

/** An onRequest check: every route but the page's needs `Authorization: Bearer <one of the keys>`. */
export function requireKey(keys: string[]) {
  return async (request: FastifyRequest): Promise<void> => {
    const path = request.url.split("?")[0];
    // The page and its files need no key: the page asks for it and sends it with each API call.
    if (PAGE_ROUTES.has(path)) return;
    const header = request.headers.authorization ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header);
    const presented = m?.[1].trim();
    // Every key is compared, so the time taken says nothing about which one matched.
    const matched = presented === undefined ? undefined : keys.filter((key) => sameKey(presented, key))[0];
    if (!matched) {
      throw new ServerError("JSD_UNAUTHORIZED", "this server needs an API key: send Authorization: Bearer <key>", { "www-authenticate": "Bearer" });
    }
    (request as FastifyRequest & { jsdClient?: string }).jsdClient = clientOf(matched);
  };
}

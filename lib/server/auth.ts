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

/** An onRequest check: every route but the page's needs `Authorization: Bearer <key>`. */
export function requireKey(apiKey: string) {
  return async (request: FastifyRequest): Promise<void> => {
    const path = request.url.split("?")[0];
    // The page and its files need no key: the page asks for it and sends it with each API call.
    if (PAGE_ROUTES.has(path)) return;
    const header = request.headers.authorization ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m || !sameKey(m[1].trim(), apiKey)) {
      throw new ServerError("JSD_UNAUTHORIZED", "this server needs an API key: send Authorization: Bearer <key>", { "www-authenticate": "Bearer" });
    }
  };
}

// The page at /: three static files from the package's page/ folder, read once at start-up and
// served from memory under fixed names (no request ever names a file).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { packageRoot } from "../package-root.js";

export const PAGE_FILES = [
  { route: "/", file: "index.html", type: "text/html; charset=utf-8" },
  { route: "/app.js", file: "app.js", type: "text/javascript; charset=utf-8" },
  { route: "/style.css", file: "style.css", type: "text/css; charset=utf-8" },
] as const;

export const PAGE_DIR = join(packageRoot, "page");

/** The page's routes: the only ones open without the API key (the page asks for it). */
export const PAGE_ROUTES: ReadonlySet<string> = new Set(PAGE_FILES.map((f) => f.route));

export async function pageRoutes(app: FastifyInstance): Promise<void> {
  for (const { route, file, type } of PAGE_FILES) {
    const body = await readFile(join(PAGE_DIR, file));
    app.get(route, { schema: { hide: true } }, async (_request, reply) =>
      reply.type(type).header("cache-control", "no-cache").header("content-security-policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'").send(body),
    );
  }
}

// The page at /: the static files of the package's page/ folder (the HTML, the style sheet, and
// app.js with the ES modules it imports from page/js/), read once at start-up and served from
// memory under fixed names (no request ever names a file). A new file in page/ needs its entry here.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { packageRoot } from "../package-root.js";

export const PAGE_FILES = [
  { route: "/", file: "index.html", type: "text/html; charset=utf-8" },
  { route: "/app.js", file: "app.js", type: "text/javascript; charset=utf-8" },
  { route: "/style.css", file: "style.css", type: "text/css; charset=utf-8" },
  { route: "/js/api.js", file: "js/api.js", type: "text/javascript; charset=utf-8" },
  { route: "/js/dom.js", file: "js/dom.js", type: "text/javascript; charset=utf-8" },
  { route: "/js/event-stream.js", file: "js/event-stream.js", type: "text/javascript; charset=utf-8" },
  { route: "/js/form.js", file: "js/form.js", type: "text/javascript; charset=utf-8" },
  { route: "/js/gallery.js", file: "js/gallery.js", type: "text/javascript; charset=utf-8" },
  { route: "/js/info.js", file: "js/info.js", type: "text/javascript; charset=utf-8" },
  { route: "/js/job.js", file: "js/job.js", type: "text/javascript; charset=utf-8" },
  { route: "/js/tokens.js", file: "js/tokens.js", type: "text/javascript; charset=utf-8" },
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

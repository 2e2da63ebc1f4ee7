// The house rule: no source file over 400 lines unless a note at its top says why it is one job
// ("Over 400 lines, and one job: ..."), so that a long file is a decision, not an accident.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { packageRoot } from "../../lib/package-root.js";

const ROOTS = ["lib", "native", "binding", "scripts", "page", "test"];
const SOURCE = /\.(ts|mjs|js|cpp|h|css|html|cmake)$/;
const SKIP = new Set(["node_modules", "fixtures", "fuzz-corpus"]);
const MAX_LINES = 400;
const NOTE = /Over 400 lines, and one job/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return SKIP.has(e.name) ? [] : sources(join(dir, e.name));
    return SOURCE.test(e.name) ? [join(dir, e.name)] : [];
  });
}

describe("file sizes", () => {
  it(`every source file over ${MAX_LINES} lines says at its top why it is one job`, () => {
    const unexplained = ROOTS.flatMap((root) => sources(join(packageRoot, root)))
      .map((file) => ({ file, lines: readFileSync(file, "utf8").split("\n") }))
      .filter(({ lines }) => lines.length > MAX_LINES && !NOTE.test(lines.slice(0, 30).join("\n")))
      .map(({ file, lines }) => `${relative(packageRoot, file)} (${lines.length} lines)`);
    expect(unexplained).toEqual([]);
  });
});

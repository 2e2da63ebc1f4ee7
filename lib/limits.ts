// The package's limits on what a caller may ask of the engine (image sides, batches, prompt
// chunks, threads, devices). The one definition is native/runtime/limits.json: this module reads
// it at run time, and CMake makes it into the engine's runtime/limits.h, so the public option
// checks (lib/validate.ts's callers) and the binding and engine below them refuse the same values.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { JsdError } from "./errors.js";
import { packageRoot } from "./package-root.js";

const NAMES = ["imageSideMax", "batchMax", "promptChunksMax", "threadsMax", "devicesMax"] as const;
export type LimitName = (typeof NAMES)[number];

/** Where the definition lives, for messages and tests. */
export const LIMITS_JSON = join(packageRoot, "native", "runtime", "limits.json");

/** Checks the parsed JSON: exactly the names above, each a positive integer. */
export function parseLimits(json: unknown): Readonly<Record<LimitName, number>> {
  const fail = (why: string): never => {
    throw new JsdError("JSD_INTERNAL", `${LIMITS_JSON}: ${why}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("not a JSON object");
  const entries = Object.entries(json as Record<string, unknown>).filter(([name]) => name !== "$comment");
  const names = entries.map(([name]) => name);
  const missing = NAMES.filter((n) => !names.includes(n));
  const unknown = names.filter((n) => !(NAMES as readonly string[]).includes(n));
  if (missing.length || unknown.length) fail(`must define exactly ${NAMES.join(", ")} (missing: ${missing.join(", ") || "none"}; unknown: ${unknown.join(", ") || "none"})`);
  for (const [name, value] of entries) {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) fail(`${name} must be a positive integer`);
  }
  return Object.freeze(Object.fromEntries(entries)) as Record<LimitName, number>;
}

export const LIMITS = parseLimits(JSON.parse(readFileSync(LIMITS_JSON, "utf8")));

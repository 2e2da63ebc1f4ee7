// The limits on a call are defined once (native/runtime/limits.json): lib/limits.ts reads them, and
// the engine's runtime/limits.h is generated from the same file, so both layers refuse alike.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LIMITS, LIMITS_JSON, parseLimits } from "../../lib/limits.js";
import { packageRoot } from "../../lib/package-root.js";
import { resolveOptions } from "../../lib/pipeline/options.js";

const header = join(packageRoot, "build", "generated", "runtime", "limits.h");

describe("limits", () => {
  it("are the JSON's numbers, each a positive integer, no more and no fewer", () => {
    const json = JSON.parse(readFileSync(LIMITS_JSON, "utf8")) as Record<string, unknown>;
    const { $comment: _comment, ...numbers } = json;
    expect(LIMITS).toEqual(numbers);
    expect(() => parseLimits({ ...numbers, batchMax: 0 })).toThrow(/batchMax must be a positive integer/);
    expect(() => parseLimits({ ...numbers, extra: 1 })).toThrow(/unknown: extra/);
    const { threadsMax: _threads, ...fewer } = numbers;
    expect(() => parseLimits(fewer)).toThrow(/missing: threadsMax/);
  });

  it.skipIf(!existsSync(header))("are the engine's too (the header CMake generates)", () => {
    const text = readFileSync(header, "utf8");
    for (const [name, value] of Object.entries(LIMITS)) {
      expect(text).toContain(`inline constexpr int64_t k${name[0].toUpperCase()}${name.slice(1)} = ${value};`);
    }
  });

  it("bound generate()'s options", () => {
    expect(() => resolveOptions({ prompt: "x", width: LIMITS.imageSideMax })).not.toThrow();
    expect(() => resolveOptions({ prompt: "x", width: LIMITS.imageSideMax + 8 })).toThrow(new RegExp(`from 8 to ${LIMITS.imageSideMax}`));
  });
});

// Every argument error the package throws carries the stable code JSD_INVALID_ARGUMENT, while
// staying a TypeError or RangeError (lib/errors.ts JsdTypeError, JsdRangeError): no plain ones in lib/.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isJsdError, JsdRangeError, JsdTypeError } from "../../lib/errors.js";
import { resolveOptions } from "../../lib/pipeline/options.js";
import { packageRoot } from "../../lib/package-root.js";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

describe("argument errors carry a code", () => {
  it("lib/ throws no plain TypeError or RangeError", () => {
    const plain = sources(join(packageRoot, "lib")).flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .map((line, i) => [line, i] as const)
        .filter(([line]) => /\bnew (TypeError|RangeError)\(/.test(line))
        .map(([, i]) => `${file.slice(packageRoot.length)}:${i + 1}`),
    );
    expect(plain).toEqual([]);
  });

  it("lib/ throws no uncoded Error: a plain one is only ever the cause of a coded one", () => {
    const uncoded = sources(join(packageRoot, "lib")).flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .map((line, i) => [line, i] as const)
        .filter(([line]) => /\bnew Error\(/.test(line) && !line.includes("// an uncoded cause:"))
        .map(([, i]) => `${file.slice(packageRoot.length)}:${i + 1}`),
    );
    expect(uncoded).toEqual([]);
  });

  it("they are still TypeErrors and RangeErrors, with code JSD_INVALID_ARGUMENT", () => {
    const wrongType = (() => {
      try {
        resolveOptions({ prompt: 1 as unknown as string });
      } catch (error) {
        return error;
      }
    })();
    expect(wrongType).toBeInstanceOf(TypeError);
    expect(wrongType).toBeInstanceOf(JsdTypeError);
    expect(isJsdError(wrongType) && wrongType.code).toBe("JSD_INVALID_ARGUMENT");
    expect(String(wrongType)).toMatch(/^TypeError: prompt must be a string/);
    expect(() => resolveOptions({ prompt: "x", steps: 0 })).toThrow(RangeError);
    expect(() => resolveOptions({ prompt: "x", steps: 0 })).toThrow(JsdRangeError);
  });
});

// No import cycle in lib/, type-only imports included (dpdm): the layers import downwards only.
import { spawnSync } from "node:child_process";
import { expect, it } from "vitest";
import { packageRoot } from "../../lib/package-root.js";

it("lib/ has no import cycle", () => {
  const dpdm = `${packageRoot}node_modules/.bin/dpdm`;
  const result = spawnSync(dpdm, ["--no-warning", "--no-tree", "--exit-code", "circular:1", "lib/**/*.ts"], { cwd: packageRoot, encoding: "utf8" });
  expect(result.stdout).toContain("no circular dependency");
  expect(result.status).toBe(0);
}, 60_000);

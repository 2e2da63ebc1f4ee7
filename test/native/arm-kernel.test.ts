// The Arm q8_0 kernel (native/kernels/q8_gemm_neon.cpp) on this machine: scripts/check-arm-kernel.sh
// builds its standalone check with Debian's aarch64 cross compiler and runs it under qemu-aarch64,
// against a scalar reference on the UNet's mat-mul shapes (about 20 s). Needs no addon build. Skipped
// with the reason where either tool is missing; in CI (.ci/run installs both) that fails instead.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { packageRoot } from "../../lib/package-root.js";
import { MATMUL_SHAPES } from "../../scripts/bench/shapes.mjs";

const TOOLS = ["aarch64-linux-gnu-g++", "qemu-aarch64"];
const missing = TOOLS.filter((tool) => spawnSync(tool, ["--version"]).status !== 0);
const reason = `${missing.join(" and ")} missing (apt-get install g++-aarch64-linux-gnu qemu-user)`;
if (missing.length > 0 && process.env.CI) throw new Error(`test/native/arm-kernel.test.ts: ${reason}; .ci/run installs them`);
if (missing.length > 0) console.warn(`test/native/arm-kernel.test.ts skipped: ${reason}`);

describe.skipIf(missing.length > 0)("the Arm q8_0 and q4_0 kernels under qemu-aarch64", () => {
  it("matches the scalar reference on every UNet shape and tile size; its records match byte for byte", () => {
    const run = spawnSync("bash", ["scripts/check-arm-kernel.sh"], { cwd: packageRoot, encoding: "utf8", timeout: 180_000 });
    const output = `${run.stdout}${run.stderr}`;
    expect(output, output).toMatch(/^kernel q8-neon-dot, \d+ activation rows per tile$/m);
    expect(output, output).toMatch(/^all shapes ok in /m);
    expect(output).not.toMatch(/^FAIL/m);
    expect(run.status, output).toBe(0);
    // One line per weight type and UNet shape (scripts/bench/shapes.mjs), beside the small tile-size shapes.
    for (const type of ["q8_0", "q4_0"]) {
      for (const shape of MATMUL_SHAPES) expect(output).toMatch(new RegExp(`^ok +${type} +${shape.short} +m=${shape.m} +k=${shape.k} `, "m"));
    }
  }, 200_000);
});

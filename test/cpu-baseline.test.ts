// lib/cpu-baseline.ts: the prebuilt x64 binary's CPU baseline (x86-64-v3), checked before loading
// it so that an older CPU gets an explanation instead of SIGILL. (Moved here from the tests of the
// old variant-binary loader.)
import { describe, expect, it } from "vitest";
import { linuxCpuFlags, prebuildBaselineProblem } from "../lib/cpu-baseline.js";

describe("the prebuilt x64 binary's CPU baseline", () => {
  const prebuilt = "/pkg/prebuilds/linux-x64/node.napi.node";
  const v3 = new Set(["sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"]);

  it("refuses a prebuilt binary on a CPU without AVX2/FMA/F16C/BMI2, naming the way out", () => {
    expect(prebuildBaselineProblem(prebuilt, "x64", () => new Set(["sse4_2", "avx"]))).toMatch(/lacks AVX2, FMA, F16C, BMI2.*npm run build/);
    expect(prebuildBaselineProblem(prebuilt, "x64", () => new Set(["avx2", "fma", "f16c"]))).toMatch(/lacks BMI2/);
  });

  it("accepts it on an x86-64-v3 CPU, and never checks a local build or another architecture", () => {
    const unread = () => {
      throw new Error("the CPU flags were read for a binary that is not a prebuild");
    };
    expect(prebuildBaselineProblem(prebuilt, "x64", () => v3)).toBeUndefined();
    expect(prebuildBaselineProblem("/pkg/build/Release/jsd.node", "x64", unread)).toBeUndefined();
    expect(prebuildBaselineProblem("/pkg/prebuilds/linux-arm64/node.napi.node", "arm64", unread)).toBeUndefined();
    expect(prebuildBaselineProblem(prebuilt, "x64", () => undefined)).toBeUndefined(); // flags unknown (not Linux)
  });

  it.skipIf(process.platform !== "linux")("reads this machine's flags on Linux", () => {
    expect(linuxCpuFlags()?.size).toBeGreaterThan(0);
  });
});

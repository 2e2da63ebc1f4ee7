// The UNet's fused CPU ops against the ggml ops they replace, on random data
// (native/tools/unet_ops_check.cpp): GEGLU with its polynomial erf and group norm (+ SiLU)
// (kernels/cpu_fused.h), and the int8 paths: activation records made from an image's patches, a
// layer norm or a GEGLU (kernels/q8_records.h), the products' bias, per-image bias and residual
// added in their epilogue, images written channel-planar by the product (q8_product). The int8
// paths compute the same sums in the same order as the graph they replace, so they must give its
// bits on every kernel table; the others round differently in the last bits (measured: 6e-8 of
// the largest value), and a last-bit change before the int8 quantization may move a rounding
// (the norm's records: a tolerance of one quantization step).
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { native } from "../../lib/native/addon.js";

type OpCheck = { name: string; exact: boolean; maxAbsDiff: number; maxAbs: number };

const checkUnetOps = (threads: number) => native().diagnostics.checkUnetOps(threads);
const tables = process.env.JSD_NO_REPACK ? [] : native().diagnostics.q8Kernels();
const addonModule = new URL("../../dist/native/addon.js", import.meta.url).href;
const int8Checks = ["conv3_s1", "conv3_s2", "conv1_s1", "records_im2col_k3_s1", "records_im2col_k3_s2", "records_im2col_k1_s1", "linear"];

/** checkUnetOps(threads) in a child process with these environment variables (kernels are chosen once per process). */
function checksWith(env: Record<string, string>, threads: number): OpCheck[] {
  const script = `const { native } = await import(${JSON.stringify(addonModule)}); console.log(JSON.stringify(native().diagnostics.checkUnetOps(${threads})));`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, ...env } });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout) as OpCheck[];
}

function expectWithinTolerance(checks: OpCheck[]) {
  for (const c of checks) {
    if (c.name === "gelu") {
      // The error of Phi(x) = (1 + erf(x / sqrt 2)) / 2, about float's resolution.
      expect(c.maxAbsDiff, c.name).toBeLessThan(2e-7);
    } else if (c.exact) {
      expect(c.maxAbs, c.name).toBeGreaterThan(0);
      expect(c.maxAbsDiff, c.name).toBe(0);
    } else {
      expect(c.maxAbs, c.name).toBeGreaterThan(1);
      expect(c.maxAbsDiff, c.name).toBeLessThanOrEqual((c.name === "norm_linears" ? 2e-3 : 1e-6) * c.maxAbs);
    }
  }
}

describe("the UNet's fused CPU ops", () => {
  it.each([1, 3])("match the ops they replace on %i thread(s)", (threads) => {
    const checks = checkUnetOps(threads);
    expect(checks.map((c) => c.name)).toEqual(expect.arrayContaining(["gelu", "geglu", "group_norm", "group_norm_silu"]));
    if (tables.length > 0) expect(checks.map((c) => c.name)).toEqual(expect.arrayContaining(int8Checks));
    expectWithinTolerance(checks);
  });

  it.skipIf(tables.length < 2).each(tables.slice(1))("give the same bits through the %s table", (kernel) => {
    expectWithinTolerance(checksWith({ JSD_Q8_KERNEL: kernel }, 2));
  });

  it("compute the same bits with AVX2 as with AVX-512 (the plain C++ copy within the tolerance)", () => {
    const best = checksWith({}, 1);
    const avx2 = checksWith({ JSD_ACTIVATIONS: "avx2" }, 1);
    const generic = checksWith({ JSD_ACTIVATIONS: "generic" }, 1);
    expectWithinTolerance(generic);
    // Where the CPU has neither, every copy is the generic one; the same diffs mean the same outputs.
    for (const name of ["gelu", "geglu", "group_norm_silu"]) {
      const diff = (checks: OpCheck[]) => checks.find((c) => c.name === name)!.maxAbsDiff;
      expect(diff(avx2), name).toBe(diff(best));
    }
  });

  it("rejects a thread count out of range", () => {
    expect(() => checkUnetOps(0)).toThrow(/out of range/);
  });
});

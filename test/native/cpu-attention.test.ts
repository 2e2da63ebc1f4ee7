// The fused CPU attention (native/kernels/cpu_attention.cpp) against the ggml ops it replaces
// (mul_mat, soft_max_ext, mul_mat) on random data: the same f32 sums in another order and its
// own exp(), so the outputs agree to about 2e-6 of their magnitude (measured); the stated
// tolerance is 2e-5. Shapes cover SD v1's heads (40, 80, 160 wide), the VAE's single 512-wide
// head, the text's 77 keys, and query or key counts off every tile size.
import { describe, expect, it } from "vitest";
import { systemInfo } from "../../lib/index.js";
import { native } from "../../lib/native/addon.js";

const avx512 = systemInfo().cpuFeatures.includes("avx512f") && !process.env.JSD_NO_FUSED_ATTENTION;
const tolerance = 2e-5;

// [heads, head width, queries, keys, batch]
const shapes: Array<[number, number, number, number, number]> = [
  [8, 40, 1024, 1024, 2],
  [8, 40, 100, 77, 2],
  [8, 80, 256, 77, 2],
  [8, 160, 64, 64, 2],
  [1, 512, 70, 300, 1],
  [4, 8, 33, 17, 1],
  [2, 96, 45, 200, 1],
];

describe("fused CPU attention", () => {
  it.each(shapes)("heads=%i d=%i Lq=%i Lk=%i batch=%i matches ggml's ops", (heads, d, lq, lk, batch) => {
    for (const threads of [1, 3]) {
      const r = native().diagnostics.compareAttention(heads, d, lq, lk, batch, threads);
      expect(r.fused).toBe(avx512);
      expect(r.maxAbs).toBeGreaterThan(1);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
    }
  });

  it("rejects sizes out of range", () => {
    expect(() => native().diagnostics.compareAttention(0, 40, 8, 8, 1, 1)).toThrow(/out of range/);
    expect(() => native().diagnostics.compareAttention(8, 40, 8, 8, 1, 0)).toThrow(/out of range/);
  });
});

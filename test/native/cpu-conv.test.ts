// The channels-last CPU convolution and group norm (native/kernels/cpu_conv.cpp,
// cpu_group_norm.cpp, through networks/image_ops.cpp) against ggml's ops on [W, H, C, N] images,
// on random data. The convolution's weight is rounded to its type on both sides, so only the order
// of the f32 sums differs: measured up to 1e-6 of the output's magnitude (3e-6 at 512 input channels); the stated
// tolerance is 1e-5. Shapes cover the VAE's: 3x3 "same" convolutions (direct, and by Winograd
// F(2x2, 3x3) from 32 input channels), 1x1 shortcuts, the decoder's upsampling convolution, the
// encoder's stride-2 convolution padded only after, 3 output channels (a partial block), channel
// counts off every block size, batches, and a residual.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { systemInfo } from "../../lib/index.js";
import { native, type NativeConvCheckShape } from "../../lib/native/addon.js";
import { referenceCases, tinyModel } from "../helpers/models.js";

const features = systemInfo().cpuFeatures;
const available = !process.env.JSD_NO_CPU_CONV && (features.includes("avx512f") || (features.includes("avx2") && features.includes("fma")));
const tolerance = 1e-5;

const same = { kernel: 3, stride: 1, pad: 1, padAfter: 1, upsample: false, residual: false, batch: 1 };
const shapes: Array<[string, Partial<NativeConvCheckShape> & { in: number; out: number; width: number; height: number }]> = [
  ["3x3, 64 -> 64", { ...same, in: 64, out: 64, width: 17, height: 9 }],
  ["3x3, 32 -> 128, f16 weight, residual", { ...same, type: "f16", in: 32, out: 128, width: 12, height: 7, residual: true }],
  ["3x3, 24 -> 3 (a partial block), bf16 weight", { ...same, type: "bf16", in: 24, out: 3, width: 10, height: 10 }],
  ["3x3, 4 -> 80, batch 2", { ...same, in: 4, out: 80, width: 8, height: 5, batch: 2 }],
  ["1x1, 48 -> 32, residual", { ...same, kernel: 1, pad: 0, padAfter: 0, in: 48, out: 32, width: 9, height: 6, residual: true }],
  ["upsampling 3x3, 16 -> 64", { ...same, in: 16, out: 64, width: 7, height: 5, upsample: true }],
  ["stride 2, padded after only, 8 -> 16", { ...same, stride: 2, pad: 0, padAfter: 1, in: 8, out: 16, width: 12, height: 10 }],
  ["3x3 on a 1-pixel image, 5 -> 70", { ...same, in: 5, out: 70, width: 1, height: 1 }],
  // Winograd F(2x2, 3x3) (3x3, stride 1, at least 32 input channels, a multiple of 16): odd sizes
  // (tiles past the edge), a partial block, upsampling, batches, a 1-pixel image.
  ["Winograd, 48 -> 3 (a partial block), 11x10, batch 2", { ...same, in: 48, out: 3, width: 11, height: 10, batch: 2 }],
  ["Winograd upsampling, 32 -> 96, residual", { ...same, in: 32, out: 96, width: 5, height: 7, upsample: true, residual: true }],
  ["Winograd on a 1-pixel image, 64 -> 16", { ...same, in: 64, out: 16, width: 1, height: 1 }],
  ["Winograd, 512 -> 64, f16 weight", { ...same, type: "f16", in: 512, out: 64, width: 8, height: 6 }],
];

describe.skipIf(!available)("channels-last CPU convolution", () => {
  it.each(shapes)("%s matches ggml's", (_, shape) => {
    for (const threads of [1, 3]) {
      const r = native().diagnostics.compareConv({ type: "f32", ...same, ...shape }, threads);
      expect(r.kernel).toMatch(/^conv-/);
      expect(r.maxAbs).toBeGreaterThan(1);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
    }
  });

  it("matches with the AVX2 kernel too, direct and Winograd (forced in a child process)", { skip: !features.includes("avx2") }, () => {
    const direct = { ...same, type: "f16", in: 40, out: 24, width: 11, height: 6, residual: true };
    const winograd = { ...same, type: "f32", in: 48, out: 20, width: 9, height: 7, upsample: true, residual: true };
    const script = `
      const { native } = await import(${JSON.stringify(new URL("../../dist/native/addon.js", import.meta.url).href)});
      const shapes = ${JSON.stringify([direct, winograd])};
      process.stdout.write(JSON.stringify(shapes.map((s) => native().diagnostics.compareConv(s, 2))));`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, JSD_CONV_KERNEL: "conv-avx2" } });
    expect(child.stderr).toBe("");
    for (const r of JSON.parse(child.stdout) as Array<{ kernel: string; maxAbsDiff: number; maxAbs: number }>) {
      expect(r.kernel).toBe("conv-avx2");
      expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
    }
  });

  it("rejects sizes out of range", () => {
    expect(() => native().diagnostics.compareConv({ type: "f32", ...same, in: 0, out: 8, width: 4, height: 4 }, 1)).toThrow(/out of range/);
    expect(() => native().diagnostics.compareConv({ type: "q8_0" as "f32", ...same, in: 8, out: 8, width: 4, height: 4 }, 1)).toThrow(/f32, f16 or bf16/);
  });
});

describe("channels-last CPU group norm", () => {
  // [channels, width, height, batch, groups, mean]: the VAE's 32 groups, a mean far from 0 (the
  // sums are shifted by each group's first value), groups split unevenly over 3 threads.
  const cases: Array<[number, number, number, number, number, number]> = [
    [64, 9, 7, 1, 32, 0],
    [128, 16, 3, 2, 32, 100],
    [12, 5, 5, 1, 3, -3],
  ];
  it.each(cases)("C=%i %ix%i batch %i, %i groups, mean %d, matches ggml's", (c, w, h, n, groups, mean) => {
    for (const threads of [1, 3]) {
      const r = native().diagnostics.compareGroupNorm(c, w, h, n, groups, mean, threads);
      expect(r.maxAbs).toBeGreaterThan(1);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
    }
  });
});

describe("the VAE without the channels-last kernels", () => {
  // JSD_NO_CPU_CONV=1 keeps the VAE on ggml's [W, H, C, N] ops, the path of every other backend
  // (and of a quantized VAE); JSD_DIRECT_CONV_MB=0 also runs those in one-row bands.
  const cli = new URL("../../dist/parity/cli.js", import.meta.url).pathname;
  it.each([{}, { JSD_DIRECT_CONV_MB: "0" }])("matches the VAE reference cases (%o)", async (env) => {
    for (const kind of ["vae_decode", "vae_encode"]) {
      const result = spawnSync(process.execPath, [cli, "--model", await tinyModel("f32"), "--cases", join(referenceCases, kind), "--threads", "2"], {
        encoding: "utf8",
        env: { ...process.env, JSD_NO_CPU_CONV: "1", ...env },
      });
      expect(result.stdout.trim().split("\n").at(-1)).toMatch(/^\d+ passed, 0 failed$/);
      expect(result.status).toBe(0);
    }
  });
});

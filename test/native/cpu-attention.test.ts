// The fused CPU attention (native/kernels/cpu_attention.cpp: one flash-attention kernel per
// instruction set, AVX-512 and AVX2) against the ggml ops it replaces (mul_mat, soft_max_ext,
// mul_mat) on random data: the same f32 sums in another order and its own exp(), so the outputs
// agree to about 4e-6 of their magnitude (measured, both kernels, every shape below; the kernel
// this one replaced: 3.5e-6). The stated tolerance is 2e-5. Against a float64 reference on a
// 4096 x 4096 head 40 wide, both the kernel and the one it replaced are within 3.5e-6 of outputs
// up to 1.4, and within 1.3e-5 of each other.
// The bf16 kernel on AMX tiles rounds its operands to bf16: it agrees to about 9e-3 of the
// magnitude (measured); stated tolerance 2e-2. It runs the ops that allow bf16 (a quantized UNet's,
// nn::Options::cpu_attention_bf16) where the CPU has AMX-BF16, and every op under
// JSD_ATTENTION_KERNEL=amx-bf16; JSD_ATTENTION_KERNEL=avx512|avx2 keeps every op f32.
// Shapes cover SD v1's heads (40, 80, 160 wide), the VAE's single 512-wide head, the text's 77
// keys, and query or key counts off every tile size (blocks of 64 and 16 queries, 64 keys).
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { systemInfo } from "../../lib/index.js";
import { native } from "../../lib/native/addon.js";
import { tinyModel } from "../helpers/models.js";

const features = systemInfo().cpuFeatures;
// The kernels this CPU runs, best first: the names JSD_ATTENTION_KERNEL forces.
const kernels = process.env.JSD_NO_FUSED_ATTENTION
  ? []
  : [
      ...(features.includes("avx512f") && features.includes("avx512dq") ? ["avx512"] : []),
      ...(features.includes("avx2") && features.includes("fma") ? ["avx2"] : []),
    ];
const tolerance = 2e-5;
const bf16Tolerance = 2e-2;
const distAddon = new URL("../../dist/native/addon.js", import.meta.url).href;
const distIndex = new URL("../../dist/index.js", import.meta.url).href;

// [heads, head width, queries, keys, batch]
type Shape = [number, number, number, number, number];
const shapes: Shape[] = [
  [8, 40, 1024, 1024, 2],
  [8, 40, 100, 77, 2],
  [8, 80, 256, 77, 2],
  [8, 160, 64, 64, 2],
  [1, 512, 70, 300, 1],
  [4, 8, 33, 17, 1],
  [2, 96, 45, 200, 1],
];

type Check = { fused: boolean; maxAbsDiff: number; maxAbs: number };
// The binding's result also names the kernel that ran (lib/native/addon.ts does not declare it yet).
type KernelCheck = Check & { kernel: string };

function expectClose(r: Check, within = tolerance) {
  expect(r.maxAbs).toBeGreaterThan(1);
  expect(r.maxAbsDiff).toBeLessThanOrEqual(within * r.maxAbs);
}

/**
 * compareAttention on every shape in a child process with JSD_ATTENTION_KERNEL=kernel (kernels are
 * chosen once per process), of ops that may round to bf16 where bf16.
 */
function compareInChild(kernel: string, bf16 = false): KernelCheck[] {
  const script = `
    const { native } = await import(${JSON.stringify(distAddon)});
    const shapes = ${JSON.stringify(shapes)};
    console.log(JSON.stringify(shapes.map((s) => native().diagnostics.compareAttention(...s, 2, ${bf16}))));`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { ...process.env, JSD_ATTENTION_KERNEL: kernel },
  });
  expect(run.stderr).toBe("");
  const results = JSON.parse(run.stdout) as KernelCheck[];
  expect(results).toHaveLength(shapes.length);
  return results;
}

describe("fused CPU attention", () => {
  it.each(shapes)("heads=%i d=%i Lq=%i Lk=%i batch=%i matches ggml's ops", (heads, d, lq, lk, batch) => {
    for (const threads of [1, 3]) {
      const r = native().diagnostics.compareAttention(heads, d, lq, lk, batch, threads) as KernelCheck;
      expect(r.fused).toBe(kernels.length > 0);
      expect(r.kernel).toBe(kernels[0] ?? "");
      expectClose(r);
    }
  });

  it("rejects sizes out of range", () => {
    expect(() => native().diagnostics.compareAttention(0, 40, 8, 8, 1, 1)).toThrow(/out of range/);
    expect(() => native().diagnostics.compareAttention(8, 40, 8, 8, 1, 0)).toThrow(/out of range/);
  });
});

describe.skipIf(kernels.length < 2)(`each kernel this CPU runs (${kernels.join(", ")}), forced with JSD_ATTENTION_KERNEL`, () => {
  it.each(kernels)("%s matches ggml's ops on every shape", (kernel) => {
    for (const r of compareInChild(kernel)) {
      expect(r.kernel).toBe(kernel);
      expectClose(r);
    }
  });
});

describe.skipIf(kernels.length === 0)("the bf16 kernel", () => {
  // Whether this CPU (and OS) runs it: what the forced run reports.
  let forced: KernelCheck[] | undefined;
  const forcedRuns = () => (forced ??= compareInChild("amx-bf16"));

  it("runs every op under JSD_ATTENTION_KERNEL=amx-bf16 where the CPU has AMX-BF16, within bf16 rounding, else names no kernel (ggml's ops run)", () => {
    for (const r of forcedRuns()) {
      if (r.kernel === "amx-bf16") expectClose(r, bf16Tolerance);
      else expect([r.fused, r.kernel]).toEqual([false, ""]);
    }
  });

  it("runs the ops that allow bf16 by default where the CPU has AMX-BF16, else the f32 kernel runs them", () => {
    const amx = forcedRuns()[0].kernel === "amx-bf16";
    for (const threads of [1, 3]) {
      const [heads, d, lq, lk, batch] = shapes[0];
      const r = native().diagnostics.compareAttention(heads, d, lq, lk, batch, threads, true) as KernelCheck;
      const f32 = native().diagnostics.compareAttention(heads, d, lq, lk, batch, threads, false) as KernelCheck;
      expect(f32.kernel).toBe(kernels[0]);
      expectClose(f32);
      if (amx) {
        expect(r.kernel).toBe("amx-bf16");
        expectClose(r, bf16Tolerance);
        expect(r.maxAbsDiff).toBeGreaterThan(f32.maxAbsDiff); // bf16 rounding, not the f32 kernel
      } else {
        expect(r.kernel).toBe(kernels[0]);
        expectClose(r);
      }
    }
  });

  it("JSD_ATTENTION_KERNEL naming an f32 kernel keeps those ops f32 too", () => {
    for (const r of compareInChild(kernels[0], true)) {
      expect(r.kernel).toBe(kernels[0]);
      expectClose(r);
    }
  });
});

describe.skipIf(kernels.length === 0)("a loaded UNet's attention", () => {
  /** One 64×64 image of two steps in a child process with these variables: its RGBA, base64. */
  const image = (path: string, env: Record<string, string>) => {
    const script = `
      const { loadModel } = await import(${JSON.stringify(distIndex)});
      const model = await loadModel(${JSON.stringify(path)}, { backend: "cpu", threads: 2 });
      const [r] = await model.generate({ prompt: "赤い丸", steps: 2, seed: 7, width: 64, height: 64 });
      await model.close();
      console.log(Buffer.from(r.rgba).toString("base64"));`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    return run.stdout.trim();
  };

  it("rounds to bf16 where the UNet's weights are quantized and the CPU runs the bf16 kernel, and nowhere else", async () => {
    const [heads, d, lq, lk, batch] = shapes[0];
    const amx = (native().diagnostics.compareAttention(heads, d, lq, lk, batch, 1, true) as KernelCheck).kernel === "amx-bf16";
    for (const type of ["q8_0", "f16"] as const) {
      const path = await tinyModel(type);
      const byDefault = image(path, {});
      const f32 = image(path, { JSD_ATTENTION_KERNEL: kernels[0] });
      expect(byDefault.length).toBeGreaterThan(1000);
      if (amx && type === "q8_0") expect(byDefault, type).not.toBe(f32);
      else expect(byDefault, type).toBe(f32);
    }
  });
});

// The engine's own matrix kernels against ggml's plain mul_mat of the same quantized weights:
// q8_0 interleaved for the engine's kernel (native/kernels/q8_gemm.cpp: one table per instruction
// set, AVX-512 VNNI, AVX-VNNI, AVX2), q4_0 interleaved for the tables' q4 tiles (every table's)
// and ggml's repacked q4_0 where no table runs.
// Both sides quantize the activations to q8_0 blocks; ggml keeps each block's scale as f16 and
// the kernels as f32, so products differ by up to about 2^-11 of their magnitude. The stated
// tolerance is 2e-3 of the largest product; a wrong layout or offset gives errors of order 1.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { convert } from "../../lib/convert/index.js";
import { GgufFile } from "../../lib/formats/gguf-reader.js";
import { MODEL_KEYS } from "../../lib/formats/model-keys.js";
import { loadModel, systemInfo } from "../../lib/index.js";
import { native } from "../../lib/native/addon.js";
import { editGguf, scratchPath, tinyJsd, tinyModel } from "../helpers/models.js";

const features = systemInfo().cpuFeatures;
const tolerance = 2e-3;
// Every kernel table this CPU runs, best first (the names JSD_Q8_KERNEL forces).
const tables = process.env.JSD_NO_REPACK ? [] : native().diagnostics.q8Kernels();
// The table this process runs: the best, or the one JSD_Q8_KERNEL names for the whole test run.
const forcedTable = process.env.JSD_Q8_KERNEL;
const inUse = forcedTable && tables.includes(forcedTable) ? forcedTable : tables[0];
// Its q4 tiles multiply q4_0 matrices (q8_gemm_isa.h: every table has them); where there is no
// table, q4_0 stays on ggml's repacked kernels.
const q4Kernel = inUse ?? "ggml-repack";
const distIndex = new URL("../../dist/index.js", import.meta.url).href;
const distAddon = new URL("../../dist/native/addon.js", import.meta.url).href;

/** Runs an ES module script in a child process with these environment variables (kernels are chosen once per process); its stdout as JSON. */
function inChild(env: Record<string, string>, script: string): unknown {
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout);
}

/** The same with one kernel table forced. */
const withKernel = (kernel: string, script: string) => inChild({ JSD_Q8_KERNEL: kernel }, script);

/** A script that prints generate()'s image on the model at path (2 threads, 64x64) and the UNet's packed bytes. */
const imageScript = (path: string) => `
  const { loadModel } = await import(${JSON.stringify(distIndex)});
  const model = await loadModel(${JSON.stringify(path)}, { backend: "cpu", threads: 2 });
  const [r] = await model.generate({ prompt: "赤い丸", steps: 2, seed: 7, width: 64, height: 64 });
  const unet = model.memory().find((m) => m.name === "unet");
  await model.close();
  console.log(JSON.stringify({ rgba: Buffer.from(r.rgba).toString("base64"), packed: unet.packedBytes }));`;

// [m (weight rows), n (activation rows), k]: register-tile tails (n mod 12 = 1..11), several
// row groups and tasks, and a UNet 3x3 convolution's shape.
const shapes: Array<[number, number, number]> = [
  [16, 1, 32],
  [48, 29, 96],
  [32, 13, 64],
  [80, 97, 160],
  [320, 100, 2880],
];

describe("q8_0 matrix kernel", () => {
  it.each(shapes)("m=%i n=%i k=%i matches ggml's mul_mat", (m, n, k) => {
    for (const threads of [1, 3]) {
      const r = native().diagnostics.compareMatmul("q8_0", m, n, k, threads);
      if (tables.length) expect(r.kernel).toBe(inUse);
      expect(r.maxAbs).toBeGreaterThan(0);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
    }
  });

  it("leaves matrices whose rows are not a multiple of 16 to ggml", () => {
    const r = native().diagnostics.compareMatmul("q8_0", 40, 7, 64, 2);
    expect(r.kernel).toBe("ggml");
    expect(r.maxAbsDiff).toBe(0);
  });

  it("q4_0 (our q4 tiles, else ggml's repacking buffer) matches too", () => {
    const r = native().diagnostics.compareMatmul("q4_0", 64, 30, 256, 2);
    // ggml repacks q4_0 on x86 CPUs with AVX2 (and some ARM ones).
    if (features.includes("avx2") && !process.env.JSD_NO_REPACK) expect(r.kernel).toBe(q4Kernel);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
  });

  it("rejects sizes out of range", () => {
    expect(() => native().diagnostics.compareMatmul("q8_0", 0, 1, 32, 1)).toThrow(/out of range/);
    expect(() => native().diagnostics.compareMatmul("q8_0", 16, 1, 32, 0)).toThrow(/out of range/);
  });
});

// [m, n, k] on the UNet's weight shapes (scripts/bench/shapes.mjs: m output channels, k row
// length), with few and odd activation rows n for partial tiles (every table's tile height is
// 12 or less), plus tiny ones.
const unetShapes: Array<[number, number, number]> = [
  [16, 1, 32],
  [48, 29, 96],
  [320, 37, 320],
  [320, 13, 2880],
  [640, 7, 5760],
  [1280, 11, 1280],
  [1280, 5, 5120],
  [10240, 3, 1280],
];

describe.skipIf(tables.length === 0)(`each q8_0 kernel table this CPU runs (${tables.join(", ") || "none"}), forced with JSD_Q8_KERNEL`, () => {
  type Check = { kernel: string; maxAbsDiff: number; maxAbs: number; checksum: string };
  const checks = new Map<string, Check[]>();
  const compare = (kernel: string) => {
    if (!checks.has(kernel)) {
      const script = `
        const { native } = await import(${JSON.stringify(distAddon)});
        const out = [];
        for (const [m, n, k] of ${JSON.stringify(unetShapes)}) {
          for (const type of ["q8_0", "q4_0"]) {
            for (const threads of [1, 3]) out.push(native().diagnostics.compareMatmul(type, m, n, k, threads));
          }
        }
        console.log(JSON.stringify(out));`;
      checks.set(kernel, withKernel(kernel, script) as Check[]);
    }
    return checks.get(kernel)!;
  };

  it.each(tables)("%s matches ggml's mul_mat on the UNet's shapes (q8_0 and q4_0)", (kernel) => {
    for (const [i, r] of compare(kernel).entries()) {
      expect(r.kernel, `product ${i}`).toBe(kernel);
      expect(r.maxAbs).toBeGreaterThan(0);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
    }
  });

  // The tables compute the same int32 dot products and then the same float operations in the same
  // order (q8_gemm_avx2_tile.h), so they agree to the bit: q8-avx-vnni with q8-vnni, and the plain
  // AVX2 table too, on q8_0 and q4_0.
  it.each(tables.slice(1))("%s gives the bits of the best table", (kernel) => {
    const best = compare(tables[0]).map((r) => r.checksum);
    const mine = compare(kernel).map((r) => r.checksum);
    expect(mine).toEqual(best);
    // One product per shape and thread count; 1 and 3 threads give the same bits too.
    for (let i = 0; i < mine.length; i += 2) expect(mine[i + 1]).toBe(mine[i]);
  });

  it.skipIf(tables.length < 2)("generate() gives the same image through every table", async () => {
    const script = imageScript(await tinyModel("q8_0"));
    const images = tables.map((kernel) => withKernel(kernel, script) as { rgba: string; packed: number });
    for (const image of images) {
      expect(image.packed).toBeGreaterThan(0); // the q8_0 matrices went through the kernel
      expect(image.rgba).toBe(images[0].rgba);
    }
  });
});

describe("q8_0 weights in a loaded model", () => {
  it.skipIf(tables.length === 0)("are interleaved on the CPU; releaseIdleWeights drops and rebuilds the copies between runs", async () => {
    const path = await tinyModel("q8_0");
    const fast = await loadModel(path, { backend: "cpu", threads: 2 });
    const lean = await loadModel(path, { backend: "cpu", threads: 2, releaseIdleWeights: true });
    for (const model of [fast, lean]) {
      const unet = model.memory().find((m) => m.name === "unet")!;
      expect(unet.packedBytes).toBeGreaterThan(unet.weightBytes / 2);
    }
    const options = { prompt: "赤い丸", steps: 2, seed: 3, width: 64, height: 64 };
    const f32 = await loadModel(await tinyModel("f32"), { backend: "cpu", threads: 2 });
    const [reference] = await f32.generate(options);
    await f32.close();
    // The second run of the lean model reads copies rebuilt after the first run released them.
    for (let run = 0; run < 2; run++) {
      const [a] = await fast.generate(options);
      const [b] = await lean.generate(options);
      expect(Buffer.from(b.rgba).equals(Buffer.from(a.rgba))).toBe(true);
      // Against the f32 model: the kernel's q8_0 rounding only (measured 2.0 of 255 on average;
      // ggml's own q8_0 kernels give 2.4). A wrong layout gives tens.
      let sum = 0;
      for (let i = 0; i < a.rgba.length; i++) sum += Math.abs(a.rgba[i] - reference.rgba[i]);
      expect(sum / a.rgba.length).toBeLessThan(3.5);
    }
    await fast.close();
    await lean.close();
  });
});

describe("model files in the CPU kernel's layout (convert cpuLayout)", () => {
  const interleavedKey = MODEL_KEYS.q8Interleaved;
  const convertTiny = async (name: string, cpuLayout: boolean) => {
    const out = scratchPath(name);
    await convert(tinyJsd, out, { type: "q8_0", cpuLayout, force: true });
    return out;
  };
  const image = async (path: string) => {
    const model = await loadModel(path, { backend: "cpu", threads: 2 });
    const [result] = await model.generate({ prompt: "赤い丸", steps: 2, seed: 5, width: 64, height: 64 });
    const unet = model.memory().find((m) => m.name === "unet")!;
    await model.close();
    return { rgba: Buffer.from(result.rgba), unet };
  };

  it("lists the interleaved matrices, which hold the same bytes reordered", async () => {
    const plain = await GgufFile.open(await convertTiny("plain-q8_0.gguf", false));
    const cpu = await GgufFile.open(await convertTiny("cpu-q8_0.gguf", true));
    try {
      expect(plain.metadata.has(interleavedKey)).toBe(false);
      const listed = cpu.metadata.get(interleavedKey)?.value as string[];
      expect(listed.length).toBeGreaterThan(100);
      // Tables read by rows are never reordered; which ones they are is the converter's plan in the
      // file, not a rule on names (the UNet's time_embedding linears are matrices like any other).
      const rowLookups = cpu.metadata.get("jsd.embeddings")?.value as string[];
      expect(rowLookups).toContain("te.embeddings.token_embedding.weight");
      expect(listed.filter((n) => rowLookups.includes(n))).toEqual([]);
      expect(listed).toContain("unet.time_embedding.linear_2.weight");
      for (const name of listed.slice(0, 20)) {
        const info = cpu.tensors.find((t) => t.name === name)!;
        expect(info.ggmlType).toBe(8); // q8_0
        expect(info.ne[1] % 16).toBe(0);
        const a = await plain.readTensor(name);
        const b = await cpu.readTensor(name);
        expect(Buffer.from(b).equals(Buffer.from(a))).toBe(false);
        expect(Buffer.from(b).length).toBe(a.length);
      }
    } finally {
      await plain.close();
      await cpu.close();
    }
  });

  it.skipIf(tables.length === 0)("are read in place on the CPU and give the images of the plain file", async () => {
    const plain = await image(await convertTiny("plain-q8_0.gguf", false));
    const cpu = await image(await convertTiny("cpu-q8_0.gguf", true));
    expect(plain.unet.packedBytes).toBeGreaterThan(0);
    expect(cpu.unet.packedBytes).toBe(0); // nothing copied: the mapped file is the kernel's input
    expect(cpu.rgba.equals(plain.rgba)).toBe(true);
  });

  it("are put back into ggml's layout where the kernel is not used (JSD_NO_REPACK)", async () => {
    const plainPath = await convertTiny("plain-q8_0.gguf", false);
    const cpuPath = await convertTiny("cpu-q8_0.gguf", true);
    const script = `
      const { loadModel } = await import(${JSON.stringify(new URL("../../dist/index.js", import.meta.url).href)});
      const out = [];
      for (const path of ${JSON.stringify([plainPath, cpuPath])}) {
        const model = await loadModel(path, { backend: "cpu", threads: 2 });
        const [r] = await model.generate({ prompt: "赤い丸", steps: 2, seed: 5, width: 64, height: 64 });
        out.push(Buffer.from(r.rgba).toString("base64"));
        await model.close();
      }
      console.log(out[0] === out[1] ? "same" : "different");`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, JSD_NO_REPACK: "1" } });
    expect(run.stderr).toBe("");
    expect(run.stdout.trim()).toBe("same");
  });

  it("rejects a file that lists a tensor the kernel cannot read", async () => {
    const source = await convertTiny("cpu-q8_0.gguf", true);
    for (const name of ["te.embeddings.token_embedding.weight", "unet.conv_in.bias", "no.such.tensor"]) {
      const bad = await editGguf(source, scratchPath(`bad-layout-${name}.gguf`), {
        setMetadata: { [interleavedKey]: { type: "array", itemType: "string", value: [name] } },
      });
      await expect(loadModel(bad)).rejects.toMatchObject({ code: "JSD_BAD_MODEL", message: expect.stringContaining(name) });
    }
  });
});

describe.skipIf(inUse === undefined)(`q4_0 through the ${inUse ?? "(none)"} table's q4 tiles`, () => {
  it.each(unetShapes)("m=%i n=%i k=%i matches ggml's plain q4_0 mul_mat, with 1 and 3 threads alike", (m, n, k) => {
    const [one, three] = [1, 3].map((threads) => native().diagnostics.compareMatmul("q4_0", m, n, k, threads));
    for (const r of [one, three]) {
      expect(r.kernel).toBe(inUse);
      expect(r.maxAbs).toBeGreaterThan(0);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(tolerance * r.maxAbs);
    }
    expect(three.checksum).toBe(one.checksum);
  });

  it("generate() on a q4_0 model gives the image of ggml's q4_0 kernels, in a copy the size of the repacked one", async () => {
    const script = imageScript(await tinyModel("q4_0"));
    const run = (env: Record<string, string>) => {
      const out = inChild(env, script) as { rgba: string; packed: number };
      return { rgba: Buffer.from(out.rgba, "base64"), packed: out.packed };
    };
    const ours = run({});
    const repacked = run({ JSD_Q4_GGML: "1" }); // ggml's repacked q4_0 kernels
    const plain = run({ JSD_NO_REPACK: "1" }); // ggml's plain q4_0 mul_mat
    expect(ours.packed).toBe(repacked.packed);
    expect(plain.packed).toBe(0);
    const f32 = await loadModel(await tinyModel("f32"), { backend: "cpu", threads: 2 });
    const [reference] = await f32.generate({ prompt: "赤い丸", steps: 2, seed: 7, width: 64, height: 64 });
    await f32.close();
    const meanDiff = (a: Buffer, b: Uint8Array) => {
      let sum = 0;
      for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
      return sum / a.length;
    };
    // The weights are the same; the activations' block scales are f32 here and f16 in ggml, which
    // two steps of the tiny random model amplify: measured 2.9 of 255 on average from ggml's plain
    // product (ggml's repacked kernels: 1.8), while a wrong layout or zero point gives tens.
    expect(meanDiff(ours.rgba, plain.rgba)).toBeLessThan(4);
    // And no farther from the f32 model's image than ggml's own q4_0 product (q4_0's weight
    // rounding: measured 9.1 here, 9.5 for ggml's plain product, 9.2 for its repacked one).
    expect(meanDiff(ours.rgba, reference.rgba)).toBeLessThan(meanDiff(plain.rgba, reference.rgba) + 1);
  });

  it("releaseIdleWeights drops the q4_0 copies and rebuilds them from the file for the next run", async () => {
    const path = await tinyModel("q4_0");
    const models = [await loadModel(path, { backend: "cpu", threads: 2 }), await loadModel(path, { backend: "cpu", threads: 2, releaseIdleWeights: true })];
    for (let run = 0; run < 2; run++) {
      const [a, b] = await Promise.all(models.map(async (model) => (await model.generate({ prompt: "青い星", steps: 2, seed: 4, width: 64, height: 64 }))[0]));
      expect(Buffer.from(b.rgba).equals(Buffer.from(a.rgba))).toBe(true);
    }
    await Promise.all(models.map((model) => model.close()));
  });
});

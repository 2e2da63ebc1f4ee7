// What a model reports about its memory (weights by buffer, compute buffers, the peak of a run)
// and the options that keep the text encoder or the VAE on the CPU (beside a GPU: test/gpu/vulkan.test.ts).
import { describe, expect, it } from "vitest";
import { loadModel } from "../../lib/index.js";
import { tinyModel } from "../helpers/models.js";

describe("model.memory() and peakComputeBytes", () => {
  it("splits each network's weights by buffer: mapped in place, or repacked (q4_0 UNet on the CPU)", async () => {
    for (const type of ["f32", "q4_0"] as const) {
      const model = await loadModel(await tinyModel(type), { backend: "cpu" });
      for (const m of model.memory()) {
        expect(m.backend).toBe("cpu");
        expect(m.weightBytes).toBeGreaterThan(0);
        expect(m.mappedBytes + m.packedBytes + m.deviceBytes).toBe(m.weightBytes);
        expect(m.deviceBytes).toBe(0);
        expect(m.computeBytes).toBe(0); // nothing has run yet
      }
      const unet = model.memory().find((m) => m.name === "unet")!;
      if (type === "f32") expect(unet.packedBytes).toBe(0);
      else expect(unet.packedBytes).toBeGreaterThan(0);
      await model.close();
    }
  });

  it("reports each generate()'s own compute peak, and memory() can be read while a run computes", async () => {
    const model = await loadModel(undefined, { threads: 1 });
    const seen: number[] = [];
    const [large] = await model.generate({
      prompt: "赤い丸",
      steps: 2,
      seed: 1,
      width: 64,
      height: 64,
      onProgress: () => seen.push(model.memory().reduce((a, m) => a + m.computeBytes, 0)),
    });
    expect(seen.length).toBeGreaterThan(0);
    expect(large.peakComputeBytes).toBeGreaterThanOrEqual(Math.max(...seen));
    expect(large.peakComputeBytes).toBeGreaterThan(0);
    // An idle model holds its weights only: generate() frees the compute buffers when it ends.
    expect(model.memory().map((m) => m.computeBytes)).toEqual([0, 0, 0]);
    await model.encodeText(model.tokenize("赤い丸").ids, 1);
    expect(model.memory().find((m) => m.name === "text_encoder")!.computeBytes).toBeGreaterThan(0);
    await model.releaseComputeBuffers();
    expect(model.memory().map((m) => m.computeBytes)).toEqual([0, 0, 0]);

    const [small] = await model.generate({ prompt: "赤い丸", steps: 2, seed: 1, width: 32, height: 32 });
    expect(small.peakComputeBytes).toBeGreaterThan(0);
    expect(small.peakComputeBytes).toBeLessThan(large.peakComputeBytes); // a new measurement, not the old peak
    expect(model.peakComputeBytes()).toBe(small.peakComputeBytes);
    await model.close();
  });
});

describe("textEncoderOnCpu / vaeOnCpu", () => {
  it("are checked, and change nothing when the backend is the CPU", async () => {
    await expect(loadModel(undefined, { textEncoderOnCpu: "yes" as never })).rejects.toThrow(TypeError);
    await expect(loadModel(undefined, { vaeOnCpu: 1 as never })).rejects.toThrow(/vaeOnCpu must be a boolean/);
    const plain = await loadModel(undefined, { backend: "cpu", threads: 1 });
    const placed = await loadModel(undefined, { backend: "cpu", threads: 1, textEncoderOnCpu: true, vaeOnCpu: true });
    const options = { prompt: "青い背景に黄色い星", steps: 3, seed: 7 };
    const [a] = await plain.generate(options);
    const [b] = await placed.generate(options);
    expect(Buffer.from(b.rgba).equals(Buffer.from(a.rgba))).toBe(true);
    expect(placed.memory().map((m) => [m.name, m.backend])).toEqual([
      ["text_encoder", "cpu"],
      ["unet", "cpu"],
      ["vae", "cpu"],
    ]);
    await plain.close();
    await placed.close();
  });
});

describe("releaseIdleWeights", () => {
  it("is checked, and gives the same images run after run (dropped pages are mapped again)", async () => {
    await expect(loadModel(undefined, { releaseIdleWeights: "on" as never })).rejects.toThrow(/releaseIdleWeights must be a boolean/);
    const plain = await loadModel(undefined, { threads: 1 });
    const lean = await loadModel(undefined, { threads: 1, releaseIdleWeights: true });
    const init = { prompt: "夜空に月", steps: 3, seed: 11 };
    const [reference] = await plain.generate(init);
    for (let i = 0; i < 2; i++) {
      const [image] = await lean.generate(init);
      expect(Buffer.from(image.rgba).equals(Buffer.from(reference.rgba))).toBe(true);
    }
    // img2img runs the VAE encoder before the UNet: the other order of releases.
    const [a] = await plain.generate({ ...init, initImage: reference.png, strength: 0.6 });
    const [b] = await lean.generate({ ...init, initImage: reference.png, strength: 0.6 });
    expect(Buffer.from(b.rgba).equals(Buffer.from(a.rgba))).toBe(true);
    await plain.close();
    await lean.close();
  });
});

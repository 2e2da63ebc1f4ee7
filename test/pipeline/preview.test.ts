// Live previews (previewEvery → onProgress's preview of the denoised estimate) and interrupt
// (finish early with the images reached so far): the schedulers' x0 estimate by hand, the
// latent → RGB projection by hand, then generate() on the embedded model at 64×64.
// Over 400 lines, and one job: one subject's cases, each short.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { readPngText } from "../../lib/image/png.js";
import { sectionKey } from "../../lib/formats/model-keys.js";
import { loadModel, type Model, type Shape4 } from "../../lib/model.js";
import { denoise, type DenoiseInput } from "../../lib/pipeline/denoise.js";
import type { GenerateOptions, GenerateProgress } from "../../lib/pipeline/options.js";
import { latentsToPreview } from "../../lib/pipeline/preview.js";
import { AlphaScheduler } from "../../lib/schedulers/alpha-base.js";
import { createScheduler, type SchedulerName } from "../../lib/schedulers/index.js";
import { SigmaScheduler } from "../../lib/schedulers/sigma-base.js";

/** Deterministic values in about [-scale, scale]. */
function wave(n: number, phase: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => scale * Math.sin(i * 0.37 + phase));
}

/** denoise()'s input for the embedded model at 64×64 with Euler, seed 7; overrides on top. */
function denoiseInput(overrides: Partial<DenoiseInput>): DenoiseInput {
  return {
    prompt: "赤い丸",
    negativePrompt: "",
    width: 64,
    height: 64,
    steps: 5,
    guidanceScale: 7.5,
    scheduler: "euler",
    karras: false,
    seed: 7n,
    numImages: 1,
    strength: 0.8,
    eta: 0,
    ...overrides,
  };
}

describe("Scheduler.predictOriginal (x0 estimate)", () => {
  const n = 64;
  const sample = wave(n, 0.3, 2);
  const eps = wave(n, 1.1);

  it.each<SchedulerName>(["ddim", "pndm", "dpmpp_2m"])("%s: (x - sqrt(1 - ac)·eps) / sqrt(ac)", (name) => {
    const s = createScheduler(name, {}, 10);
    const t = s.timesteps[3];
    const ac = (s as unknown as { alphasCumprod: Float32Array }).alphasCumprod[t];
    const x0 = s.predictOriginal(eps, t, sample);
    expect(x0).toHaveLength(n);
    for (let i = 0; i < n; i++) {
      const expected = (sample[i] - Math.sqrt(1 - ac) * eps[i]) / Math.sqrt(ac);
      expect(x0[i]).toBeCloseTo(expected, 5);
    }
    // Not the sigma formula, which gives a very different value at this t.
    expect(Math.abs(x0[5] - (sample[5] - Math.sqrt((1 - ac) / ac) * eps[5]))).toBeGreaterThan(0.1);
  });

  it.each<[SchedulerName, boolean]>([
    ["euler", false],
    ["lms", true],
    ["euler_a", false],
  ])("%s (karras %s): x - sigma·eps with the sigma of t", (name, karras) => {
    const s = createScheduler(name, {}, 10, { karras });
    const index = 2;
    const t = s.timesteps[index];
    const sigma = s.sigmas![index];
    expect(sigma).toBeGreaterThan(1);
    const x0 = s.predictOriginal(eps, t, sample);
    for (let i = 0; i < n; i++) expect(x0[i]).toBeCloseTo(sample[i] - sigma * eps[i], 5);
  });

  it("DPM-Solver++'s step works on the same x0 (its first, first-order step is exact in it)", () => {
    const s = createScheduler("dpmpp_2m", {}, 10);
    const t = s.timesteps[0];
    const prevT = s.timesteps[1];
    const ac = (s as unknown as { alphasCumprod: Float32Array }).alphasCumprod;
    const x0 = s.predictOriginal(eps, t, sample);
    const out = s.step(eps, t, sample);
    // DPM-Solver++ first order: x_prev = (sigma_prev / sigma_t) x - alpha_prev (e^-h - 1) x0.
    const alpha = (u: number) => Math.sqrt(ac[u]);
    const sig = (u: number) => Math.sqrt(1 - ac[u]);
    const h = Math.log(alpha(prevT) / sig(prevT)) - Math.log(alpha(t) / sig(t));
    for (let i = 0; i < n; i++) {
      expect(out[i]).toBeCloseTo((sig(prevT) / sig(t)) * sample[i] - alpha(prevT) * Math.expm1(-h) * x0[i], 4);
    }
  });

  it.each<SchedulerName>(["pndm", "lms", "dpmpp_2m"])("%s: calling it between steps leaves the multistep state alone", (name) => {
    const plain = createScheduler(name, {}, 6);
    const probed = createScheduler(name, {}, 6);
    let a = sample;
    let b = sample;
    for (const [i, t] of plain.timesteps.entries()) {
      const e = wave(n, i);
      a = plain.step(e, t, a);
      probed.predictOriginal(e, t, b);
      b = probed.step(e, t, b);
      probed.predictOriginal(e, t, b);
    }
    expect(b).toEqual(a);
  });
});

describe("latentsToPreview (SD v1 latent → RGB projection)", () => {
  // rows: latent channels; columns: R, G, B (ComfyUI's SD15 latent_rgb_factors)
  const factors = [
    [0.3512, 0.2297, 0.3227],
    [0.325, 0.4974, 0.235],
    [-0.2829, 0.1762, 0.2721],
    [-0.212, -0.2616, -0.7177],
  ];
  const level = (v: number) => Math.round(Math.min(Math.max((v + 1) / 2, 0), 1) * 255);

  it("projects each pixel's four channels, maps [-1, 1] to [0, 255] and clamps", () => {
    // Batch of 2, 4 channels, 1 × 3 pixels; the second image is the one asked for.
    const shape: Shape4 = [2, 4, 1, 3];
    const pixels = [
      [1, 0, 0, 0],
      [0, 0, 0, 1],
      [0.5, -0.25, 2, 0.75],
    ];
    const latents = new Float32Array(2 * 4 * 3).fill(9); // the first image: would saturate
    for (let p = 0; p < 3; p++) for (let c = 0; c < 4; c++) latents[12 + c * 3 + p] = pixels[p][c];
    const preview = latentsToPreview(latents, shape, 1);
    expect(preview.width).toBe(3);
    expect(preview.height).toBe(1);
    // Worked by hand for the first two: R = 0.3512 → (1.3512 / 2)·255 = 172.3, and so on.
    expect(Array.from(preview.rgba.subarray(0, 8))).toEqual([172, 157, 169, 255, 100, 94, 36, 255]);
    const third = [0, 1, 2].map((c) => level(pixels[2].reduce((acc, v, k) => acc + v * factors[k][c], 0)));
    expect(Array.from(preview.rgba.subarray(8, 12))).toEqual([...third, 255]);
    // Zero latents are mid-grey; large ones clamp.
    expect(Array.from(latentsToPreview(new Float32Array(4), [1, 4, 1, 1]).rgba)).toEqual([128, 128, 128, 255]);
    expect(Array.from(latentsToPreview(Float32Array.of(10, 0, 0, 0), [1, 4, 1, 1]).rgba)).toEqual([255, 255, 255, 255]);
    expect(Array.from(latentsToPreview(Float32Array.of(-10, 0, 0, 0), [1, 4, 1, 1]).rgba)).toEqual([0, 0, 0, 255]);
  });

  it("is row-major at latent resolution", () => {
    const [h, w] = [2, 3];
    const latents = new Float32Array(4 * h * w);
    latents[1 * w + 2] = 1; // channel 0, row 1, column 2
    const { rgba } = latentsToPreview(latents, [1, 4, h, w]);
    expect(rgba).toHaveLength(h * w * 4);
    const at = (y: number, x: number) => Array.from(rgba.subarray(4 * (y * w + x), 4 * (y * w + x) + 3));
    expect(at(1, 2)).toEqual([172, 157, 169]);
    expect(at(0, 2)).toEqual([128, 128, 128]);
    expect(at(1, 1)).toEqual([128, 128, 128]);
  });

  it("rejects latents that are not 4-channel or do not match the shape", () => {
    expect(() => latentsToPreview(new Float32Array(3), [1, 3, 1, 1])).toThrow(/4 latent channels/);
    expect(() => latentsToPreview(new Float32Array(5), [1, 4, 1, 1])).toThrow(/hold 5 values/);
    expect(() => latentsToPreview(new Float32Array(4), [1, 4, 1, 1], 1)).toThrow(/batchIndex/);
  });

  it("is cheap: a 512×512 image's 64×64 latents in a few milliseconds at most", () => {
    const latents = wave(4 * 64 * 64, 0.5);
    latentsToPreview(latents, [1, 4, 64, 64]);
    const started = performance.now();
    for (let i = 0; i < 20; i++) latentsToPreview(latents, [1, 4, 64, 64]);
    expect((performance.now() - started) / 20).toBeLessThan(5); // generous for a loaded CI machine
  });
});

let model: Model;
beforeAll(async () => {
  model = await loadModel(undefined, { threads: 2 });
});
afterAll(async () => {
  await model?.close();
});

const base: GenerateOptions = { prompt: "赤い丸", width: 64, height: 64, steps: 5, seed: 7, scheduler: "euler" };

function collect(options: GenerateOptions) {
  const progress: GenerateProgress[] = [];
  const run = model.generate({ ...options, onProgress: (p) => progress.push(p) });
  return { run, progress };
}

describe("generate({ previewEvery, onProgress })", () => {
  it.each<[SchedulerName, number, number, number[], number]>([
    ["euler", 5, 2, [2, 4, 5], 5],
    ["pndm", 4, 2, [2, 4, 5], 5], // PNDM makes steps + 1 UNet calls
    ["dpmpp_2m", 3, 1, [1, 2, 3], 3],
    ["ddim", 3, 10, [3], 3],
  ])("%s, %i steps, every %i: previews on steps %j (of %i), latent-sized", async (scheduler, steps, every, expected, total) => {
    const { run, progress } = collect({ ...base, scheduler, steps, previewEvery: every });
    await run;
    expect(progress.map((p) => p.step)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const withPreview = progress.filter((p) => p.preview);
    expect(withPreview.map((p) => p.step)).toEqual(expected);
    for (const { preview } of withPreview) {
      expect(preview!.width).toBe(8);
      expect(preview!.height).toBe(8);
      expect(preview!.rgba).toHaveLength(8 * 8 * 4);
      const colours = new Set<number>();
      for (let p = 0; p < 64; p++) colours.add((preview!.rgba[4 * p] << 16) | (preview!.rgba[4 * p + 1] << 8) | preview!.rgba[4 * p + 2]);
      expect(colours.size).toBeGreaterThan(4);
      for (let p = 0; p < 64; p++) expect(preview!.rgba[4 * p + 3]).toBe(255);
    }
    for (let i = 1; i < withPreview.length; i++) expect(withPreview[i].preview!.rgba).not.toEqual(withPreview[i - 1].preview!.rgba);
  });

  it("follows the image size (non-square) and shows the batch's first image", async () => {
    const { run, progress } = collect({ ...base, width: 96, height: 64, numImages: 2, previewEvery: 5 });
    const images = await run;
    expect(images).toHaveLength(2);
    const { preview } = progress.at(-1)!;
    expect([preview!.width, preview!.height]).toEqual([12, 8]);
    const single = collect({ ...base, width: 96, height: 64, previewEvery: 5 });
    await single.run;
    expect(single.progress.at(-1)!.preview!.rgba).toEqual(preview!.rgba);
  });

  it("shows the denoised estimate x0, not the noisy latents (Euler, checked against the trace)", async () => {
    const config = JSON.parse(model.metadata[sectionKey("scheduler", "config")] ?? "{}") as Record<string, unknown>;
    const steps = 4;
    const scheduler = createScheduler("euler", config, steps);
    const previews: GenerateProgress[] = [];
    const input = denoiseInput({ steps, previewEvery: 1 });
    const trace = await denoise(model, input, (p) => previews.push(p));
    const sigma = scheduler.sigmas!;
    const shape: Shape4 = [1, 4, 8, 8];
    let x = trace.initialLatents.map((v) => Math.fround(v * scheduler.initNoiseSigma));
    let noisyChecked = 0;
    for (let i = 0; i < steps; i++) {
      const next = trace.stepLatents[i];
      // Euler: next = x + (x - x0)/sigma_i · (sigma_{i+1} - sigma_i), solved for x0.
      const x0 = x.map((v, j) => v - ((next[j] - v) * sigma[i]) / (sigma[i + 1] - sigma[i]));
      const expected = latentsToPreview(x0, shape).rgba;
      const got = previews[i].preview!.rgba;
      for (let j = 0; j < got.length; j++) expect(Math.abs(got[j] - expected[j])).toBeLessThanOrEqual(1);
      // While much noise is left, a preview of the latents themselves would look quite different.
      if (sigma[i + 1] > 1) {
        noisyChecked++;
        const noisy = latentsToPreview(next, shape).rgba;
        let diff = 0;
        for (let j = 0; j < got.length; j++) diff += Math.abs(got[j] - noisy[j]);
        expect(diff / got.length).toBeGreaterThan(5);
      }
      x = next;
    }
    expect(noisyChecked).toBeGreaterThan(0);
  });

  it("inpainting: the kept area shows the init image, not the model's estimate", async () => {
    const [init] = await model.generate(base);
    const mask = (value: number) => ({ width: 64, height: 64, rgba: new Uint8Array(64 * 64 * 4).fill(value) });
    const previewsWith = async (m: ReturnType<typeof mask>) => {
      const { run, progress } = collect({ ...base, scheduler: "ddim", initImage: init.png, mask: m, strength: 1, previewEvery: 1 });
      await run;
      return progress.map((p) => p.preview!.rgba);
    };
    const keepAll = await previewsWith(mask(0)); // black: keep
    expect(keepAll.length).toBeGreaterThan(2);
    for (const rgba of keepAll) expect(rgba).toEqual(keepAll[0]);
    const repaintAll = await previewsWith(mask(255));
    expect(repaintAll[1]).not.toEqual(repaintAll[0]);
  });

  it("without previewEvery: no preview and no x0 work; with it: one x0 per preview, same pixels", async () => {
    const alpha = vi.spyOn(AlphaScheduler.prototype, "predictOriginal");
    const sigma = vi.spyOn(SigmaScheduler.prototype, "predictOriginal");
    try {
      const plain = collect({ ...base, scheduler: "pndm" });
      const [a] = await plain.run;
      expect(plain.progress.some((p) => "preview" in p)).toBe(false);
      const [b] = await model.generate({ ...base, scheduler: "euler", onProgress: () => undefined, interrupt: new AbortController().signal });
      expect(alpha).not.toHaveBeenCalled();
      expect(sigma).not.toHaveBeenCalled();
      const withPreviews = collect({ ...base, scheduler: "pndm", previewEvery: 2 });
      const [c] = await withPreviews.run;
      expect(alpha).toHaveBeenCalledTimes(3); // steps 2, 4 and the last (5)
      expect(c.rgba).toEqual(a.rgba);
      // previewEvery without onProgress: nothing to show, nothing computed.
      await model.generate({ ...base, previewEvery: 1 });
      expect(sigma).not.toHaveBeenCalled();
      expect(b.stepsDone).toBe(5);
    } finally {
      alpha.mockRestore();
      sigma.mockRestore();
    }
  });
});

describe("option validation", () => {
  const bad: Array<[string, Record<string, unknown>, RegExp, ErrorConstructor]> = [
    ["previewEvery 0", { previewEvery: 0 }, /previewEvery must be an integer ≥ 1, got 0/, RangeError],
    ["previewEvery negative", { previewEvery: -2 }, /previewEvery must be an integer ≥ 1/, RangeError],
    ["previewEvery fractional", { previewEvery: 1.5 }, /previewEvery must be an integer ≥ 1/, RangeError],
    ["previewEvery NaN", { previewEvery: Number.NaN }, /previewEvery must be an integer ≥ 1/, RangeError],
    ["previewEvery Infinity", { previewEvery: Infinity }, /previewEvery must be an integer ≥ 1/, RangeError],
    ["previewEvery string", { previewEvery: "2" }, /previewEvery must be a number, got string/, TypeError],
    ["interrupt not a signal", { interrupt: {} }, /interrupt must be an AbortSignal/, TypeError],
    ["interrupt a controller", { interrupt: new AbortController() }, /interrupt must be an AbortSignal/, TypeError],
  ];
  it.each(bad)("%s", async (_name, change, message, type) => {
    const run = model.generate({ ...base, ...change } as GenerateOptions);
    await expect(run).rejects.toThrow(type);
    await expect(model.generate({ ...base, ...change } as GenerateOptions)).rejects.toThrow(message);
  });

  it("accepts previewEvery larger than the steps (only the last step then)", async () => {
    const { run, progress } = collect({ ...base, previewEvery: 1000 });
    await run;
    expect(progress.filter((p) => p.preview).map((p) => p.step)).toEqual([5]);
  });
});

describe("generate({ interrupt })", () => {
  it("stops after the step in progress and resolves with images, stepsDone and the interruption recorded", async () => {
    const [full] = await model.generate(base);
    expect(full.stepsDone).toBe(5);
    expect(full.parameters.interruptedAtStep).toBeUndefined();
    expect(readPngText(full.png).parameters).not.toMatch(/Interrupted/);

    const controller = new AbortController();
    const steps: number[] = [];
    const images = await model.generate({
      ...base,
      numImages: 2,
      interrupt: controller.signal,
      onProgress: (p) => {
        steps.push(p.step);
        if (p.step === 2) controller.abort();
      },
    });
    expect(steps).toEqual([1, 2]);
    expect(images).toHaveLength(2);
    for (const image of images) {
      expect(image.stepsDone).toBe(2);
      expect(image.rgba).toHaveLength(64 * 64 * 4);
      expect(image.parameters).toMatchObject({ interruptedAtStep: 2, totalSteps: 5, steps: 5 });
      const text = readPngText(image.png);
      expect(text.parameters).toMatch(/, Interrupted at step: 2\/5,/);
      expect(JSON.parse(text.jsd)).toMatchObject({ interruptedAtStep: 2, totalSteps: 5 });
    }
    expect(images[0].rgba).not.toEqual(full.rgba);
    expect(images[1].rgba).not.toEqual(images[0].rgba);
  });

  it("decodes the denoised estimate of the last step done (A1111's interrupt), not the noisy latents", async () => {
    const config = JSON.parse(model.metadata[sectionKey("scheduler", "config")] ?? "{}") as Record<string, unknown>;
    const scheduler = createScheduler("euler", config, 5);
    const controller = new AbortController();
    const trace = await denoise(
      model,
      denoiseInput({ steps: 5, interrupt: controller.signal }),
      (p) => p.step === 3 && controller.abort(),
    );
    expect(trace.interrupted).toBe(true);
    expect(trace.stepsDone).toBe(3);
    expect(trace.stepLatents).toHaveLength(3);
    const [before, after] = [trace.stepLatents[1], trace.stepLatents[2]];
    const s = scheduler.sigmas!;
    const x0 = before.map((v, j) => v - ((after[j] - v) * s[2]) / (s[3] - s[2]));
    const shape: Shape4 = [1, 4, 8, 8];
    const inverse = 1 / model.scalingFactor;
    const fromX0 = await model.decodeLatents(x0.map((v) => v * inverse), shape);
    const fromNoisy = await model.decodeLatents(after.map((v) => v * inverse), shape);
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    expect(maxDiff(trace.decoded, fromX0)).toBeLessThan(1e-3);
    expect(maxDiff(trace.decoded, fromNoisy)).toBeGreaterThan(0.05);
  });

  it("fired before the first step: no step, the starting point decoded, stepsDone 0", async () => {
    const controller = new AbortController();
    controller.abort();
    const { run, progress } = collect({ ...base, interrupt: controller.signal });
    const [image] = await run;
    expect(progress).toEqual([]);
    expect(image.stepsDone).toBe(0);
    expect(image.parameters).toMatchObject({ interruptedAtStep: 0, totalSteps: 5 });
    expect(readPngText(image.png).parameters).toMatch(/Interrupted at step: 0\/5/);

    // img2img: the init image's latents (no noise added), i.e. about the init image itself.
    const [init] = await model.generate(base);
    const [again] = await model.generate({ ...base, initImage: init.png, strength: 0.6, interrupt: controller.signal });
    expect(again.stepsDone).toBe(0);
    expect(again.parameters).toMatchObject({ interruptedAtStep: 0, totalSteps: 3, mode: "img2img" });
  });

  it("changes nothing when it never fires, or fires during the last step", async () => {
    const [plain] = await model.generate(base);
    const [unused] = await model.generate({ ...base, interrupt: new AbortController().signal });
    expect(unused.rgba).toEqual(plain.rgba);
    expect(unused.png).toEqual(plain.png);
    const late = new AbortController();
    const [lastStep] = await model.generate({ ...base, interrupt: late.signal, onProgress: (p) => p.step === 5 && late.abort() });
    expect(lastStep.rgba).toEqual(plain.rgba);
    expect(lastStep.stepsDone).toBe(5);
    expect(lastStep.parameters.interruptedAtStep).toBeUndefined();
    expect(lastStep.png).toEqual(plain.png);
  });

  it("abort (signal) still rejects with an AbortError, and wins over interrupt", async () => {
    const abort = new AbortController();
    await expect(model.generate({ ...base, signal: abort.signal, interrupt: new AbortController().signal, onProgress: (p) => p.step === 2 && abort.abort() })).rejects.toMatchObject({
      name: "AbortError",
    });
    const both = new AbortController();
    const interrupt = new AbortController();
    const run = model.generate({
      ...base,
      signal: both.signal,
      interrupt: interrupt.signal,
      onProgress: (p) => {
        if (p.step === 2) {
          interrupt.abort();
          both.abort();
        }
      },
    });
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    const early = new AbortController();
    early.abort();
    await expect(model.generate({ ...base, signal: early.signal, interrupt: early.signal })).rejects.toMatchObject({ name: "AbortError" });
    const [after] = await model.generate(base);
    expect(after.stepsDone).toBe(5);
  });
});

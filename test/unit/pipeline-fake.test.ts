// The pipeline on a model written in TypeScript (no native addon): generate() sees the model only
// through lib/pipeline/model-port.ts, so its control flow (steps, guidance batching, progress,
// previews, interrupt, abort, buffer release) can be checked with a fake whose answers are known.
import { describe, expect, it } from "vitest";
import { MODEL_KEYS } from "../../lib/formats/model-keys.js";
import { generateImages } from "../../lib/pipeline/generate.js";
import type { DiffusionModel, PredictNoiseInput, Shape4 } from "../../lib/pipeline/model-port.js";
import type { ReferencePromptTokens } from "../../lib/prompt/tokens.js";
import { createScheduler } from "../../lib/schedulers/index.js";

/** A 4-channel latent model whose UNet predicts zero noise and whose VAE returns a constant grey. */
function fakeModel(options: { stepDelayMs?: number } = {}) {
  const calls = { predictNoise: [] as PredictNoiseInput[], released: 0, aborted: 0, decoded: [] as Shape4[] };
  const model: DiffusionModel = {
    metadata: { [MODEL_KEYS.name]: "fake" },
    tokenizer: undefined as never, // reference mode only: the pipeline calls tokenize()
    textHiddenSize: 8,
    latentChannels: 4,
    vaeScaleFactor: 8,
    scalingFactor: 0.18215,
    defaultImageSize: 64,
    backend: "fake",
    tokenize(text: string): ReferencePromptTokens {
      const ids = new Int32Array(77);
      ids[0] = text.length;
      return { mode: "reference", ids, pieces: [...text], length: text.length + 1, untruncatedLength: text.length + 1, droppedTokens: 0, truncated: false, count: text.length, limit: 76 };
    },
    async encodeText(ids: Int32Array, batch = 1) {
      return new Float32Array(batch * 77 * 8).fill(ids[0]);
    },
    async predictNoise(input: PredictNoiseInput) {
      calls.predictNoise.push(input);
      if (options.stepDelayMs) await new Promise((r) => setTimeout(r, options.stepDelayMs));
      return new Float32Array(input.latents.length);
    },
    async decodeLatents(latents: Float32Array, shape: Shape4) {
      calls.decoded.push(shape);
      return new Float32Array(shape[0] * 3 * shape[2] * 8 * shape[3] * 8).fill(0.5);
    },
    async encodeImage() {
      throw new Error("not used");
    },
    abortCurrent() {
      calls.aborted++;
    },
    async releaseComputeBuffers() {
      calls.released++;
    },
    resetPeakComputeBytes() {},
    peakComputeBytes() {
      return 0;
    },
  };
  return { model, calls };
}

describe("generate() over a fake model (no native addon)", () => {
  it("runs the steps with guidance batched as [uncond; cond], decodes, and frees its buffers", async () => {
    const { model, calls } = fakeModel();
    const [image] = await generateImages(model, { prompt: "赤い丸", negativePrompt: "", steps: 5, scheduler: "ddim", seed: 1, width: 64, height: 32 });
    expect(calls.predictNoise).toHaveLength(5);
    expect(calls.predictNoise[0].shape).toEqual([2, 4, 4, 8]);
    expect(calls.decoded).toEqual([[1, 4, 4, 8]]);
    expect([image.width, image.height, image.stepsDone]).toEqual([64, 32, 5]);
    // VAE output 0.5 in [-1, 1] is (0.5 + 1) / 2 × 255 = 191.25 → 191.
    expect(image.rgba[0]).toBe(191);
    expect(image.parameters).toMatchObject({ model: "fake", backend: "fake", steps: 5, scheduler: "ddim" });
    expect(calls.released).toBe(1);
  });

  it("guidance ≤ 1 runs the conditional pass only", async () => {
    const { model, calls } = fakeModel();
    await generateImages(model, { prompt: "x", steps: 2, guidanceScale: 1, scheduler: "euler", seed: 1, width: 64, height: 64 });
    expect(calls.predictNoise.map((c) => c.shape[0])).toEqual([1, 1]);
  });

  it("progress every step with previews every n; interrupt ends early and still resolves", async () => {
    const { model, calls } = fakeModel();
    const interrupt = new AbortController();
    const seen: Array<{ step: number; preview: boolean }> = [];
    const [image] = await generateImages(model, {
      prompt: "x",
      steps: 10,
      scheduler: "euler",
      seed: 1,
      width: 64,
      height: 64,
      previewEvery: 2,
      interrupt: interrupt.signal,
      onProgress: (p) => {
        seen.push({ step: p.step, preview: p.preview !== undefined });
        if (p.step === 4) interrupt.abort();
      },
    });
    expect(seen).toEqual([1, 2, 3, 4].map((step) => ({ step, preview: step % 2 === 0 })));
    expect(calls.predictNoise).toHaveLength(4);
    expect(image.stepsDone).toBe(4);
    expect(image.parameters.interruptedAtStep).toBe(4);
  });

  it("dpmpp_2m with karras: the UNet sees each Karras sigma's fractional timestep, and the image says so", async () => {
    const { model, calls } = fakeModel();
    const [image] = await generateImages(model, { prompt: "x", steps: 6, scheduler: "dpmpp_2m", karras: true, seed: 1, width: 64, height: 64 });
    const expected = createScheduler("dpmpp_2m", {}, 6, { karras: true }).timesteps;
    expect(calls.predictNoise.map((c) => c.timesteps[0])).toEqual(Array.from(expected, Math.fround));
    expect(calls.predictNoise.some((c) => !Number.isInteger(c.timesteps[0]))).toBe(true);
    expect(image.parameters).toMatchObject({ scheduler: "dpmpp_2m", karras: true });
  });

  it("abort rejects with an AbortError, interrupts the call in progress, and still frees the buffers", async () => {
    const { model, calls } = fakeModel({ stepDelayMs: 5 });
    const controller = new AbortController();
    const run = generateImages(model, { prompt: "x", steps: 50, scheduler: "pndm", seed: 1, width: 64, height: 64, signal: controller.signal, onProgress: (p) => p.step === 3 && controller.abort() });
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    expect(calls.aborted).toBe(1);
    expect(calls.predictNoise.length).toBeLessThan(6);
    expect(calls.released).toBe(1);
  });

  describe("the safety checker", () => {
    // A 2-wide projection: concept 0..16 all along x with threshold 0.5, the special-care ones along y
    // with threshold 2 (never reached). An image embedded along x scores 1 - 0.5 > 0 (flagged); along y, -0.5.
    function checker(embeds: number[][]) {
      const calls = { embedded: [] as number[] };
      const port = {
        featureExtractor: { size: 224, cropSize: 224, doResize: true, doCenterCrop: true, doNormalize: true, resample: 3, imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5] } as const,
        projectionDim: 2,
        conceptEmbeds: new Float32Array(17 * 2).map((_, i) => (i % 2 === 0 ? 1 : 0)),
        conceptWeights: new Float32Array(17).fill(0.5),
        specialCareEmbeds: new Float32Array(3 * 2).map((_, i) => (i % 2 === 1 ? 1 : 0)),
        specialCareWeights: new Float32Array(3).fill(2),
        async embedImages(pixelValues: Float32Array, batch: number) {
          calls.embedded.push(batch);
          expect(pixelValues).toHaveLength(batch * 3 * 224 * 224);
          return new Float32Array(embeds.slice(0, batch).flat());
        },
      };
      return { port, calls };
    }

    it("runs on the batch in one call: a flagged image comes back black, and its PNG says so", async () => {
      const { model } = fakeModel();
      const { port, calls } = checker([[1, 0], [0, 1]]);
      const images = await generateImages({ ...model, safetyChecker: port }, { prompt: "x", steps: 2, scheduler: "euler", seed: 1, width: 64, height: 64, numImages: 2 });
      expect(calls.embedded).toEqual([2]);
      expect(images.map((i) => i.nsfwContentDetected)).toEqual([true, false]);
      expect(images.map((i) => i.parameters.safetyChecker)).toEqual(["ran", "ran"]);
      expect([...images[0].rgba.slice(0, 8)]).toEqual([0, 0, 0, 255, 0, 0, 0, 255]);
      expect(images[0].rgba.every((v, i) => v === (i % 4 === 3 ? 255 : 0))).toBe(true);
      expect(images[1].rgba[0]).toBe(191);
      const text = (png: Uint8Array) => Buffer.from(png).toString("latin1");
      expect(text(images[0].png)).toContain("Safety checker: flagged (image blacked out)");
      expect(text(images[1].png)).toContain("Safety checker: passed");
    });

    it("safetyChecker: false skips it and says so; a model without one says nothing", async () => {
      const { model } = fakeModel();
      const { port, calls } = checker([[1, 0]]);
      const [off] = await generateImages({ ...model, safetyChecker: port }, { prompt: "x", steps: 2, scheduler: "euler", seed: 1, width: 64, height: 64, safetyChecker: false });
      expect(calls.embedded).toEqual([]);
      expect(off).toMatchObject({ nsfwContentDetected: false, parameters: { safetyChecker: "off", nsfwContentDetected: false } });
      expect(off.rgba[0]).toBe(191);
      expect(Buffer.from(off.png).toString("latin1")).toContain("Safety checker: off");
      const [absent] = await generateImages(model, { prompt: "x", steps: 2, scheduler: "euler", seed: 1, width: 64, height: 64 });
      expect(absent.parameters).toMatchObject({ safetyChecker: "absent", nsfwContentDetected: false });
      expect(Buffer.from(absent.png).toString("latin1")).not.toContain("Safety checker");
      await expect(generateImages(model, { prompt: "x", safetyChecker: "yes" as never })).rejects.toMatchObject({ code: "JSD_INVALID_ARGUMENT" });
    });

    it("an abort during the check rejects with an AbortError and frees the buffers", async () => {
      const { model, calls } = fakeModel();
      const controller = new AbortController();
      const port = {
        ...checker([[1, 0]]).port,
        embedImages: async () => {
          controller.abort();
          throw Object.assign(new Error("aborted"), { code: "JSD_ABORTED" });
        },
      };
      const run = generateImages({ ...model, safetyChecker: port }, { prompt: "x", steps: 2, scheduler: "euler", seed: 1, width: 64, height: 64, signal: controller.signal });
      await expect(run).rejects.toMatchObject({ name: "AbortError" });
      expect(calls.aborted).toBe(1);
      expect(calls.released).toBe(2);
    });
  });
});

// generate() and the pipeline reference cases (issue #5): every scheduler, guidance 1 and
// 7.5, 1/4/20 steps, square and non-square, img2img and inpainting, plus the scheduler and
// torch_rng cases, through the parity runner; then the API's behaviour as a user sees it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPngText } from "../../lib/image/png.js";
import { loadModel, type Model } from "../../lib/model.js";
import { readCases } from "../../lib/parity/cases.js";
import { runCases } from "../../lib/parity/run.js";
import type { GenerateOptions } from "../../lib/pipeline/options.js";
import { referenceCases, tinyModel } from "../helpers/models.js";

let model: Model;
beforeAll(async () => {
  model = await loadModel(await tinyModel("f32"), { threads: 2 });
});
afterAll(async () => {
  await model?.close();
});

describe("reference cases", () => {
  it("pipeline, schedulers and torch_rng cases all pass at f32", async () => {
    const cases = (await readCases(referenceCases)).filter((c) => ["pipeline", "schedulers", "torch_rng"].includes(c.kind));
    const results = await runCases(model, cases);
    expect(results.filter((r) => r.status !== "PASS").map((r) => `${r.name} ${r.note ?? ""}`)).toEqual([]);
    expect(results.filter((r) => r.kind === "pipeline")).toHaveLength(18);
    expect(results.filter((r) => r.kind === "torch_rng")).toHaveLength(14);
    expect(results.filter((r) => r.kind === "schedulers").length).toBeGreaterThan(60);
  }, 180_000);
});

const base: GenerateOptions = { prompt: "赤い丸", width: 64, height: 64, steps: 4, seed: 42 };

describe("generate()", () => {
  it("returns a PNG carrying the parameters, and the seed", async () => {
    const [image] = await model.generate(base);
    expect(image.width).toBe(64);
    expect(image.rgba.length).toBe(64 * 64 * 4);
    expect(image.seed).toBe(42);
    expect(Array.from(image.png.subarray(1, 4), (b) => String.fromCharCode(b)).join("")).toBe("PNG");
    const text = readPngText(image.png);
    expect(text.parameters).toMatch(/^赤い丸\nSteps: 4, Sampler: PNDM, CFG scale: 7.5, Seed: 42, Size: 64x64/);
    expect(JSON.parse(text.jsd)).toMatchObject({ prompt: "赤い丸", seed: "42", steps: 4, scheduler: "pndm", mode: "txt2img" });
  });

  it("is deterministic per seed; a random seed is reported", async () => {
    const [a] = await model.generate(base);
    const [b] = await model.generate(base);
    const [c] = await model.generate({ ...base, seed: 43 });
    expect(b.rgba).toEqual(a.rgba);
    expect(c.rgba).not.toEqual(a.rgba);
    const [r] = await model.generate({ ...base, seed: undefined });
    expect(typeof r.seed).toBe("number");
    const [again] = await model.generate({ ...base, seed: r.seed });
    expect(again.rgba).toEqual(r.rgba);
  });

  it("numImages draws one batch like diffusers' num_images_per_prompt", async () => {
    const images = await model.generate({ ...base, numImages: 2 });
    expect(images.map((i) => i.batchIndex)).toEqual([0, 1]);
    expect(images[1].rgba).not.toEqual(images[0].rgba);
    const [single] = await model.generate(base);
    expect(images[0].rgba).toEqual(single.rgba); // the first image of the batch uses the first draws
  });

  it("reports progress per UNet call and truncated tokens", async () => {
    const steps: number[] = [];
    const [image] = await model.generate({ ...base, prompt: "赤い丸と青い四角、".repeat(20), onProgress: (p) => steps.push(p.step) });
    expect(steps).toEqual([1, 2, 3, 4, 5]); // PNDM repeats its first step
    expect(image.droppedTokens).toBeGreaterThan(0);
    expect(readPngText(image.png).parameters).toMatch(/Truncated tokens: \d+/);
  });

  it("runs img2img and inpainting from PNG inputs", async () => {
    const [init] = await model.generate(base);
    const [img2img] = await model.generate({ ...base, initImage: init.png, strength: 0.5, width: undefined, height: undefined });
    expect(img2img.parameters.mode).toBe("img2img");
    const mask = { width: 64, height: 64, rgba: new Uint8Array(64 * 64 * 4).fill(255) };
    for (let y = 0; y < 32; y++) mask.rgba.fill(0, y * 64 * 4, (y + 1) * 64 * 4); // keep the top half
    const [inpaint] = await model.generate({ ...base, initImage: init.png, mask, strength: 0.75, scheduler: "ddim" });
    expect(inpaint.parameters.mode).toBe("inpaint");
  });

  it("aborts between steps with an AbortError and stays usable", async () => {
    const controller = new AbortController();
    const run = model.generate({ ...base, steps: 10, signal: controller.signal, onProgress: (p) => p.step === 2 && controller.abort() });
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    const already = new AbortController();
    already.abort();
    await expect(model.generate({ ...base, signal: already.signal })).rejects.toMatchObject({ name: "AbortError" });
    const [after] = await model.generate(base);
    const [reference] = await model.generate(base);
    expect(after.rgba).toEqual(reference.rgba);
  });

  it("aborting at every step leaves native memory where it was", async () => {
    // The engine keeps one compute buffer per network shape, and only the UNet's or the VAE's
    // at a time: after a completed run the VAE's is held, after an aborted one the UNet's.
    // Whatever the step an abort hits, memory must come back to the same level.
    const abortAt = async (stop: number) => {
      const controller = new AbortController();
      await expect(
        model.generate({ ...base, steps: 6, signal: controller.signal, onProgress: (p) => p.step === stop && controller.abort() }),
      ).rejects.toMatchObject({ name: "AbortError" });
    };
    await model.generate({ ...base, steps: 6 });
    const afterRun = model.memory();
    await abortAt(1);
    const afterAbort = model.memory();
    for (let stop = 1; stop <= 7; stop++) {
      await abortAt(stop);
      expect(model.memory()).toEqual(afterAbort);
    }
    await model.generate({ ...base, steps: 6 });
    expect(model.memory()).toEqual(afterRun);
    const total = (m: typeof afterRun) => m.reduce((a, c) => a + c.weightBytes + c.computeBytes, 0);
    expect(total(afterAbort)).toBeLessThanOrEqual(total(afterRun) * 2);
  });

  it("runs concurrent calls safely: same images as one by one", async () => {
    const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
    const together = await Promise.all(seeds.map((seed) => model.generate({ ...base, seed })));
    for (const [i, seed] of seeds.entries()) {
      const [alone] = await model.generate({ ...base, seed });
      expect(together[i][0].rgba).toEqual(alone.rgba);
    }
  });

  it("a queued call aborted before it starts rejects at once", async () => {
    const first = model.generate({ ...base, steps: 8 });
    const controller = new AbortController();
    const second = model.generate({ ...base, signal: controller.signal });
    controller.abort();
    await expect(second).rejects.toMatchObject({ name: "AbortError" });
    await first;
  });
});

describe("generate() option validation (before any native call)", () => {
  const bad: Array<[string, Partial<GenerateOptions> | Record<string, unknown>, RegExp, ErrorConstructor]> = [
    ["prompt missing", { prompt: undefined }, /prompt must be a string/, TypeError],
    ["prompt not a string", { prompt: 5 }, /prompt/, TypeError],
    ["negativePrompt", { negativePrompt: 1 }, /negativePrompt/, TypeError],
    ["width not multiple of 8", { width: 60 }, /width must be a multiple of 8/, RangeError],
    ["height too small", { height: 0 }, /height must be an integer from 8/, RangeError],
    ["width too large", { width: 8192 }, /width/, RangeError],
    ["width fractional", { width: 64.5 }, /width/, RangeError],
    ["steps < 1", { steps: 0 }, /steps must be an integer from 1/, RangeError],
    ["steps NaN", { steps: Number.NaN }, /steps/, RangeError],
    ["guidance NaN", { guidanceScale: Number.NaN }, /guidanceScale must be a finite number/, RangeError],
    ["guidance string", { guidanceScale: "7" }, /guidanceScale must be a number/, TypeError],
    ["scheduler unknown", { scheduler: "plms" }, /scheduler must be one of pndm/, RangeError],
    ["seed negative", { seed: -1 }, /seed/, RangeError],
    ["seed fractional", { seed: 1.5 }, /seed/, RangeError],
    ["seed too big", { seed: 1n << 64n }, /seed must be from 0 to 2\^64 - 1/, RangeError],
    ["numImages 0", { numImages: 0 }, /numImages/, RangeError],
    ["strength > 1", { strength: 1.5 }, /strength must be from 0 to 1/, RangeError],
    ["mask without initImage", { mask: new Uint8Array(4) }, /mask needs initImage/, TypeError],
    ["initImage bad type", { initImage: 42 }, /initImage must be PNG bytes/, TypeError],
    ["eta without ddim", { eta: 0.5 }, /eta is a DDIM option/, RangeError],
    ["eta negative", { eta: -1, scheduler: "ddim" }, /eta must be ≥ 0/, RangeError],
    ["karras with pndm", { karras: true }, /karras needs one of the schedulers lms, euler, euler_a, dpmpp_2m, not pndm/, RangeError],
    ["onProgress not a function", { onProgress: 1 }, /onProgress must be a function/, TypeError],
    ["signal not a signal", { signal: {} }, /signal must be an AbortSignal/, TypeError],
  ];
  it.each(bad)("%s", async (_name, change, message, type) => {
    await expect(model.generate({ ...base, ...change } as GenerateOptions)).rejects.toThrow(type);
    await expect(model.generate({ ...base, ...change } as GenerateOptions)).rejects.toThrow(message);
  });

  it("rejects an init image that is not a PNG, with JSD_BAD_FILE", async () => {
    await expect(model.generate({ ...base, initImage: new Uint8Array([1, 2, 3]) })).rejects.toMatchObject({ code: "JSD_BAD_FILE" });
  });

  it("rejects calls on a closed model with JSD_CLOSED", async () => {
    const m = await loadModel(await tinyModel("f32"));
    await m.close();
    await expect(m.generate(base)).rejects.toMatchObject({ code: "JSD_CLOSED" });
  });
});

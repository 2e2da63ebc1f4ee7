// Tiled VAE decoding: tile layout, and a tiled decode that matches the untiled one closely
// enough that no seam shows (checked on the trained embedded model and the random tiny model).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Model } from "../../lib/model.js";
import { denoise } from "../../lib/pipeline/denoise.js";
import { decodeLatentsTiled, tilePlan } from "../../lib/pipeline/vae-tiles.js";
import { TorchGenerator } from "../../lib/rng/torch-generator.js";

describe("tilePlan", () => {
  it("is one tile when the range fits", () => {
    expect(tilePlan(32, 32, 8)).toEqual({ tile: 32, starts: [0] });
    expect(tilePlan(20, 32, 8)).toEqual({ tile: 20, starts: [0] });
  });

  it("takes the fewest tiles and shrinks them to overlap by the minimum, spread evenly", () => {
    // 512x512 with the default tiles: two of 36 latents overlapping by 8, not two of 40 by 16.
    expect(tilePlan(64, 40, 8)).toEqual({ tile: 36, starts: [0, 28] });
    expect(tilePlan(64, 32, 8)).toEqual({ tile: 27, starts: [0, 19, 37] });
    expect(tilePlan(56, 32, 8)).toEqual({ tile: 32, starts: [0, 24] });
    expect(tilePlan(12, 8, 2)).toEqual({ tile: 7, starts: [0, 5] });
    // 768x768: three tiles of 38, overlaps 9 and 9 (the rounding goes to the overlap).
    expect(tilePlan(96, 40, 8)).toEqual({ tile: 38, starts: [0, 29, 58] });
  });

  it("covers every range with at most maxTile, at least the overlap, first at 0, last at the edge", () => {
    for (const [maxTile, overlap] of [[40, 8], [32, 8], [16, 4], [9, 8]]) {
      for (let size = 1; size <= 200; size++) {
        const { tile, starts } = tilePlan(size, maxTile, overlap);
        expect(tile).toBeLessThanOrEqual(Math.min(size, maxTile));
        expect(starts[0]).toBe(0);
        expect(starts[starts.length - 1] + tile).toBe(size);
        // No fewer tiles would do: one less, at maxTile, overlapping by the minimum, falls short.
        if (starts.length > 1) expect((starts.length - 1) * maxTile - (starts.length - 2) * overlap).toBeLessThan(size);
        for (let i = 1; i < starts.length; i++) {
          expect(starts[i - 1] + tile - starts[i]).toBeGreaterThanOrEqual(overlap);
          expect(starts[i - 1] + tile - starts[i]).toBeLessThanOrEqual(overlap + 1);
        }
      }
    }
  });
});

describe("decodeLatentsTiled", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(undefined, { threads: 1 });
  });
  afterAll(async () => {
    await model?.close();
  });

  it("equals the plain decode when one tile covers the image", async () => {
    const z = new TorchGenerator(1).randn([1, 4, 8, 8]).map((x) => x * 5);
    expect(await decodeLatentsTiled(model, z, [1, 4, 8, 8], { tile: 8, overlap: 2 })).toEqual(await model.decodeLatents(z, [1, 4, 8, 8]));
  });

  // Final latents of a real generation at 192x128 (24x16 latents), decoded whole. The embedded
  // model's VAE was trained on 64x64 images and has a global attention layer, so tiles do change
  // the result somewhat.
  let latents: Float32Array;
  let plain: Float32Array;
  const W = 192;
  const H = 128;
  beforeAll(async () => {
    const trace = await denoise(model, {
      prompt: "青い背景に黄色い星", negativePrompt: "", width: W, height: H, steps: 10, guidanceScale: 7.5,
      scheduler: "pndm", karras: false, seed: 3n, numImages: 1, strength: 0.8, eta: 0, vaeTiling: false,
    });
    latents = trace.finalLatents.map((x) => Math.fround(x / model.scalingFactor));
    plain = await model.decodeLatents(latents, [1, 4, H / 8, W / 8]);
  });

  const meanAbsDifference = (a: Float32Array, b: Float32Array) => {
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
    return sum / a.length;
  };
  // The mean jump between neighbouring columns x - 1 and x of an image, for x = 1 .. W - 1 (or
  // between rows, transposed).
  const jumps = (image: Float32Array, transposed: boolean) => {
    const [side, other] = transposed ? [H, W] : [W, H];
    const at = (c: number, i: number, j: number) => (transposed ? image[(c * H + j) * W + i] : image[(c * H + i) * W + j]);
    return Array.from({ length: side - 1 }, (_, k) => {
      let s = 0;
      for (let c = 0; c < 3; c++) for (let i = 0; i < other; i++) s += Math.abs(at(c, i, k + 1) - at(c, i, k));
      return s / (3 * other);
    });
  };
  const p90 = (values: number[]) => values.slice().sort((a, b) => a - b)[Math.floor(values.length * 0.9)];

  it("blends tiles without seams: close to the untiled decode, with no step at tile borders", async () => {
    // 128-pixel tiles overlapping by 64 along x (one row of tiles). Measured: mean abs difference
    // 0.039, max 0.59 (pixel values span [-1, 1]); bound 1.5x the mean.
    const tiled = await decodeLatentsTiled(model, latents, [1, 4, 16, 24], { tile: 16, overlap: 8 });
    const d = meanAbsDifference(plain, tiled);
    expect(d).toBeLessThan(0.06);
    expect(d).toBeGreaterThan(0); // tiles really were used
    // No seam: the jump between neighbouring columns at the tile borders (x = 64, 128) is no
    // larger than the image's usual column-to-column change.
    const j = jumps(tiled, false);
    for (const border of [64, 128]) expect(j[border - 1]).toBeLessThanOrEqual(p90(j));
  });

  it("blends tiles shrunk by the plan, spread unevenly on both axes, without seams", async () => {
    // At most 12 latents, 4 of overlap: 3 x 2 tiles of 11 x 10 latents (tilePlan) at x = 0, 7,
    // 13 and y = 0, 6 latents, i.e. tile edges at pixels x = 56, 88, 104, 144 and y = 48, 80.
    expect(tilePlan(24, 12, 4)).toEqual({ tile: 11, starts: [0, 7, 13] });
    expect(tilePlan(16, 12, 4)).toEqual({ tile: 10, starts: [0, 6] });
    const tiled = await decodeLatentsTiled(model, latents, [1, 4, 16, 24], { tile: 12, overlap: 4 });
    // Tiles of 80 pixels change the attention's view more: measured 0.098.
    const d = meanAbsDifference(plain, tiled);
    expect(d).toBeLessThan(0.15);
    expect(d).toBeGreaterThan(0);
    // No seam: at each tile edge, the step between neighbouring columns (rows) exceeds the untiled
    // image's step there by no more than the usual such excess (90th percentile over the image).
    // (The untiled image itself has an edge at y = 48, so the plain jump is the baseline here.)
    for (const [transposed, borders] of [[false, [56, 88, 104, 144]], [true, [48, 80]]] as const) {
      const t = jumps(tiled, transposed);
      const u = jumps(plain, transposed);
      const excess = t.map((v, i) => v - u[i]);
      const usual = p90(excess.map(Math.abs));
      for (const border of borders) expect(excess[border - 1]).toBeLessThanOrEqual(usual);
    }
  });
});

// Semantic end-to-end test of the embedded model (tiny-jsd-shapes): the 30 held-out public
// prompts of test/fixtures/shapes-prompts-public.json are generated with the rules' settings
// (64×64, PNDM 20 steps, guidance 7.5, one prompt per call, each with its seed) and judged by
// the file's pixel rules (lib/eval/shape-judge.ts). Also checks the judge itself on hand-made
// images. scripts/shapes-eval.mjs runs the same evaluation on any model file.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  accuracy,
  evaluatePrompts,
  formatAccuracyTable,
  judge,
  score,
  SHAPE_GENERATION,
  SHAPE_PALETTE,
  type ShapePrompt,
  type ShapePromptResult,
} from "../../lib/eval/shape-judge.js";
import { loadModel, type Model } from "../../lib/model.js";

interface PublicFile {
  rules: {
    generation: { width: number; height: number; steps: number; guidance_scale: number; scheduler: string; negative_prompt: string };
    palette: Record<string, [number, number, number]>;
    reference_accuracy: { fg_color: number; bg_color: number; shape: number; all_attributes: number; n_prompts: number };
    suggested_test_thresholds: { fg_color: number; bg_color: number; shape: number };
  };
  prompts: ShapePrompt[];
}

const publicFile = JSON.parse(readFileSync(new URL("../fixtures/shapes-prompts-public.json", import.meta.url), "utf8")) as PublicFile;
const { rules, prompts } = publicFile;

// ---- hand-made images -------------------------------------------------------------------

type RGB = readonly [number, number, number];
const W = 64, H = 64;

function canvas(background: RGB): Uint8Array {
  const rgba = new Uint8Array(W * H * 4);
  for (let i = 0; i < W * H; i++) rgba.set([...background, 255], 4 * i);
  return rgba;
}

/** Paints the pixels whose centre satisfies `inside`. */
function paint(rgba: Uint8Array, colour: RGB, inside: (x: number, y: number) => boolean): Uint8Array {
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (inside(x + 0.5, y + 0.5)) rgba.set(colour, 4 * (y * W + x));
  return rgba;
}

const disc = (cx: number, cy: number, r: number) => (x: number, y: number) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;

function polygon(points: ReadonlyArray<readonly [number, number]>) {
  return (x: number, y: number) => {
    let inside = false;
    for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
      const [xi, yi] = points[i], [xj, yj] = points[j];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  };
}

const P = SHAPE_PALETTE;

describe("shape judge (hand-made images)", () => {
  it("uses the public file's palette, in its order", () => {
    expect(Object.entries(SHAPE_PALETTE)).toEqual(Object.entries(rules.palette));
    const g = rules.generation;
    expect(SHAPE_GENERATION).toMatchObject({ width: g.width, height: g.height, steps: g.steps, guidanceScale: g.guidance_scale, scheduler: g.scheduler, negativePrompt: g.negative_prompt });
  });

  it("a red disc on white: fg red, bg white, circle", () => {
    const j = judge(paint(canvas(P.white), P.red, disc(32, 32, 16)), W, H);
    expect([j.fg, j.bg, j.shape]).toEqual(["red", "white", "circle"]);
    expect(j.metrics!.tb).toBeCloseTo(1, 5);
  });

  it("a white square on black: square", () => {
    const j = judge(paint(canvas(P.black), P.white, (x, y) => x > 16 && x < 48 && y > 16 && y < 48), W, H);
    expect([j.fg, j.bg, j.shape]).toEqual(["white", "black", "square"]);
    expect(j.metrics!.fill).toBeGreaterThan(0.99); // the 3×3 vote rounds off the corner pixels
  });

  it("a triangle (apex up): triangle", () => {
    const j = judge(paint(canvas(P.yellow), P.green, polygon([[32, 12], [12, 52], [52, 52]])), W, H);
    expect([j.fg, j.bg, j.shape]).toEqual(["green", "yellow", "triangle"]);
  });

  it("a wide blue peak reaching the bottom on sky blue: mountain; two pink discs: blossoms", () => {
    const m = judge(paint(canvas(P.skyblue), P.blue, polygon([[32, 24], [-4, 64], [68, 64]])), W, H);
    expect([m.fg, m.bg, m.shape]).toEqual(["blue", "skyblue", "mountain"]);
    const b = judge(paint(paint(canvas(P.skyblue), P.pink, disc(20, 24, 8)), P.pink, disc(44, 40, 8)), W, H);
    expect([b.fg, b.shape, b.metrics!.nBlobs]).toEqual(["pink", "blossoms", 2]);
  });

  it("a heart (two lobes over a point) and a five-point star", () => {
    const heart = (x: number, y: number) => disc(24, 24, 10)(x, y) || disc(40, 24, 10)(x, y) || polygon([[14.5, 27], [49.5, 27], [32, 50]])(x, y);
    expect(judge(paint(canvas(P.white), P.red, heart), W, H).shape).toBe("heart");
    const star: Array<[number, number]> = [];
    for (let i = 0; i < 10; i++) {
      const a = -Math.PI / 2 + (i * Math.PI) / 5, r = i % 2 === 0 ? 24 : 10;
      star.push([32 + r * Math.cos(a), 34 + r * Math.sin(a)]);
    }
    expect(judge(paint(canvas(P.blue), P.yellow, polygon(star)), W, H).shape).toBe("star");
  });

  it("ignores unlabelled pixels and calls a foreground under 2% of the image 'none'", () => {
    const grey = judge(paint(canvas([128, 128, 128]), P.red, disc(32, 32, 12)), W, H);
    expect([grey.fg, grey.bg, grey.shape]).toEqual(["red", "none", "circle"]);
    const tiny = judge(paint(canvas(P.white), P.red, disc(32, 32, 4)), W, H); // ~50 px < 82
    expect([tiny.fg, tiny.bg, tiny.shape, tiny.metrics]).toEqual(["none", "white", "none", null]);
  });

  it("stripes: white and the second frame colour are not the foreground; the background passes by frame share", () => {
    const striped = paint(canvas(P.green), P.white, (_x, y) => Math.floor(y / 4) % 2 === 1);
    paint(striped, P.yellow, (x, y) => x > 20 && x < 44 && y > 20 && y < 44);
    const plain = judge(striped, W, H, {});
    expect(plain.fg).not.toBe("yellow"); // white stripes outnumber the square
    const expectation = { fg_color: "yellow", bg_color: "green", shape: "square", pattern: "stripes" };
    const j = judge(striped, W, H, expectation);
    expect([j.fg, j.shape]).toEqual(["yellow", "square"]);
    expect(score(j, expectation)).toEqual({ fg: true, bg: true, shape: true, all: true });
    // The white share passes too, whichever stripe colour wins the frame.
    expect(score(j, { ...expectation, bg_color: "white" }).bg).toBe(true);
    expect(score(j, { ...expectation, bg_color: "red" }).bg).toBe(false);
  });

  it("scoring the stored reference results reproduces the file's reference accuracy", () => {
    const acc = accuracy(prompts.map((p) => score(p.reference_result!, p.expect)));
    const ref = rules.reference_accuracy;
    expect(acc.counts.fg[1]).toBe(ref.n_prompts);
    expect(acc.fg).toBeCloseTo(ref.fg_color, 2);
    expect(acc.bg).toBeCloseTo(ref.bg_color, 2);
    expect(acc.shape).toBeCloseTo(ref.shape, 2);
    expect(acc.all).toBeCloseTo(ref.all_attributes, 2);
  });
});

// ---- end to end -------------------------------------------------------------------------

describe("embedded model, 30 public prompts (end to end)", () => {
  let model: Model;
  let results: ShapePromptResult[] = [];
  let seconds = 0;

  beforeAll(async () => {
    const started = performance.now();
    // One thread: the UNet works on 8×8 latents, so each graph is tiny and a second thread mostly
    // spins; on a shared 2-core machine 2 threads measured ~10 s per image against ~0.7 s with 1.
    model = await loadModel(undefined, { threads: 1 });
    results = await evaluatePrompts(model, prompts);
    seconds = (performance.now() - started) / 1000;
  }, 300_000); // measured ~0.4 s CPU per image: 14-17 s for the 30 on a busy 2-core machine

  afterAll(async () => {
    await model?.close();
  });

  it("generates and judges every prompt; prints the figures", () => {
    expect(results).toHaveLength(30);
    const mark = (v: boolean | null) => (v === null ? "-" : v ? "ok" : "NO");
    const lines = results.map((r) => {
      const j = r.judgement, s = r.score;
      return `${r.id} fg ${j.fg.padEnd(7)} ${mark(s.fg).padEnd(2)}  bg ${j.bg.padEnd(7)} ${mark(s.bg).padEnd(2)}  shape ${j.shape.padEnd(8)} ${mark(s.shape).padEnd(2)}  ref ${r.matchesReference ? "same" : "DIFF"}  ${r.prompt}`;
    });
    const ref = rules.reference_accuracy;
    const agree = results.filter((r) => r.matchesReference).length;
    console.log(
      [
        ...lines,
        "",
        formatAccuracyTable(accuracy(results.map((r) => r.score)), { fg: ref.fg_color, bg: ref.bg_color, shape: ref.shape, all: ref.all_attributes }),
        `same (fg, bg, shape) as reference_result: ${agree}/${results.length}`,
        `load + 30 generations: ${seconds.toFixed(1)} s`,
      ].join("\n"),
    );
  });

  it("meets the suggested accuracy thresholds (fg ≥ 0.7, bg ≥ 0.8, shape ≥ 0.5)", () => {
    const t = rules.suggested_test_thresholds;
    const acc = accuracy(results.map((r) => r.score));
    expect(acc.fg).toBeGreaterThanOrEqual(t.fg_color);
    expect(acc.bg).toBeGreaterThanOrEqual(t.bg_color);
    expect(acc.shape).toBeGreaterThanOrEqual(t.shape);
  });

  it("agrees with the reference implementation's result per prompt", () => {
    // Measured: 30/30 prompts give exactly the reference's (fg, bg, shape) triple (the engine
    // matches PyTorch to ~1e-6, so the images should agree to the 8-bit pixel; 1 and 2 threads give
    // identical bytes). The bound leaves a margin of two flips (28/30 = 93%, above the 90% asked
    // for) for last-bit differences on other CPUs/backends tipping a borderline case: adding ±2 to
    // 20% of the channel values flipped at most 2 prompts in a run (100 runs), mostly pub-15 (one
    // pixel more widens its box and takes fill from 0.708 under the star cut 0.69), pub-02 (fill
    // 0.689) and pub-06 (compact 8.28 against the spiral cut 8.5).
    const differing = results.filter((r) => !r.matchesReference).map((r) => `${r.id}: ${r.judgement.fg}/${r.judgement.bg}/${r.judgement.shape}`);
    expect(results.length - differing.length, differing.join("; ")).toBeGreaterThanOrEqual(28);
  });
});

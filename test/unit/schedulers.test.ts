// Schedulers against schedulers.json / schedulers.safetensors (diffusers 0.8.1, torch 1.13 CPU float32).
//
// Tolerances:
// - timesteps, betas, alphas_cumprod, init_noise_sigma: exact;
// - sigmas: relative 1e-6;
// - traces (scaled_input, prev_sample per step) and add_noise: max |ours - ref| <= 1e-5 * max(1, max |ref|)
//   over the step's tensor, i.e. 1e-5 absolute for values of order 1 and relative to the magnitude
//   where values are large (the sigma-based schedulers reach about 50);
// - step_noise: max |diff| <= 1e-6 (it is a TorchGenerator draw).
// The trace is chained on our own samples (each step gets our previous output), so errors accumulate
// as they would in a pipeline.
// Over 400 lines, and one job: one subject's cases (six schedulers against one reference file).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafetensorsFile, readSafetensors, toFloat32, type RawTensor } from "../../lib/formats/safetensors.js";
import { TorchGenerator } from "../../lib/rng/torch-generator.js";
import {
  createScheduler,
  img2imgStart,
  KARRAS_SCHEDULERS,
  karrasSigmas,
  noiseSchedule,
  resolveSchedulerConfig,
  trainingSigmas,
  sigmaToTimestep,
  LMSDiscreteScheduler,
  type Scheduler,
  type SchedulerName,
} from "../../lib/schedulers/index.js";
import { lagrangeBasisIntegral, lmsCoefficient } from "../../lib/schedulers/lms.js";
import { npLinspace, roundHalfEven, torchLinspaceF32 } from "../../lib/schedulers/common.js";

const REF = fileURLToPath(new URL("../fixtures/reference/", import.meta.url));

interface SetTimesteps {
  timesteps: number[];
  timesteps_dtype: "int64" | "float64";
  sigmas: number[] | null;
  init_noise_sigma: number;
}
interface Trace {
  num_inference_steps: number;
  timesteps: number[];
  tensor_prefix: string;
  steps: number;
  init_noise_sigma: number;
  generator_seed?: number;
}
interface AddNoiseCase {
  num_inference_steps: number;
  timestep_index: number;
  timestep: number;
  tensor: string;
}
interface Entry {
  class: string;
  config: Record<string, unknown>;
  set_timesteps: Record<string, SetTimesteps>;
  traces: Trace[];
  add_noise: AddNoiseCase[];
  eta?: number;
}
const spec = JSON.parse(readFileSync(REF + "schedulers.json", "utf8")) as {
  betas: number[];
  alphas_cumprod: number[];
  trace_definition: { sample_seed: number; gen_seed: number; shape: number[] };
  schedulers: Record<string, Entry>;
};

const NAME_OF_CLASS: Record<string, SchedulerName> = {
  PNDMScheduler: "pndm",
  DDIMScheduler: "ddim",
  LMSDiscreteScheduler: "lms",
  EulerDiscreteScheduler: "euler",
  EulerAncestralDiscreteScheduler: "euler_a",
  DPMSolverMultistepScheduler: "dpmpp_2m",
};

let tensors: Map<string, RawTensor>;
function tensor(name: string): Float32Array {
  const t = tensors.get(name);
  if (!t) throw new Error(`missing tensor ${name}`);
  return toFloat32(t);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN-safe
  }
  return m;
}
/** max |a - b| divided by max(1, max |b|). */
function scaledDiff(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  return maxAbsDiff(ours, ref) / Math.max(1, maxAbs(ref));
}

const TRACE_TOL = 1e-5;
const report = new Map<string, { worst: number; worstAbs: number; exactSteps: number; steps: number }>();
function note(key: string, ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  const d = scaledDiff(ours, ref);
  const abs = maxAbsDiff(ours, ref);
  const r = report.get(key) ?? { worst: 0, worstAbs: 0, exactSteps: 0, steps: 0 };
  r.worst = Math.max(r.worst, d);
  r.worstAbs = Math.max(r.worstAbs, abs);
  r.steps++;
  if (abs === 0) r.exactSteps++;
  report.set(key, r);
  return d;
}

beforeAll(async () => {
  tensors = (await readSafetensors(REF + "schedulers.safetensors")).tensors;
});

afterAll(() => {
  const lines = [...report].map(
    ([k, r]) => `  ${k}: max scaled diff ${r.worst.toExponential(2)}, max abs diff ${r.worstAbs.toExponential(2)}, bit-exact ${r.exactSteps}/${r.steps}`,
  );
  console.log("schedulers: errors vs diffusers 0.8.1\n" + lines.join("\n"));
});

describe("training noise schedule", () => {
  it("betas and alphas_cumprod match torch exactly (float32)", () => {
    const { betas, alphasCumprod } = noiseSchedule(resolveSchedulerConfig({}));
    expect(Array.from(betas)).toEqual(spec.betas.map(Math.fround));
    expect(Array.from(alphasCumprod)).toEqual(spec.alphas_cumprod.map(Math.fround));
  });

  it("torch.linspace's vectorised lanes are reproduced (the plain formula differs)", () => {
    const s = Math.sqrt(0.00085);
    const e = Math.sqrt(0.012);
    const lin = torchLinspaceF32(s, e, 1000);
    expect(lin[0]).toBe(Math.fround(s));
    expect(lin[999]).toBe(Math.fround(e));
    for (let i = 1; i < 1000; i++) expect(lin[i]).toBeGreaterThan(lin[i - 1]);
  });

  it("numpy helpers", () => {
    expect(Array.from(npLinspace(0, 999, 1))).toEqual([0]);
    expect(Array.from(npLinspace(0, 999, 5))).toEqual([0, 249.75, 499.5, 749.25, 999]);
    expect([0.5, 1.5, 2.5, -0.5, 499.5, 500.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, 500, 500, 2, 3]);
  });
});

for (const [key, entry] of Object.entries(spec.schedulers)) {
  const name = NAME_OF_CLASS[entry.class];
  const eta = entry.eta ?? 0;
  const make = (n: number): Scheduler => createScheduler(name, entry.config, n, name === "ddim" ? { eta } : {});

  describe(`${key} (${entry.class})`, () => {
    for (const [nStr, st] of Object.entries(entry.set_timesteps)) {
      it(`set_timesteps(${nStr})`, () => {
        const s = make(Number(nStr));
        expect(Array.from(s.timesteps)).toEqual(st.timesteps);
        if (st.timesteps_dtype === "int64") for (const t of s.timesteps) expect(Number.isInteger(t)).toBe(true);
        expect(s.initNoiseSigma).toBe(Math.fround(st.init_noise_sigma));
        if (st.sigmas === null) {
          expect(s.sigmas).toBeUndefined();
        } else {
          expect(s.sigmas).toBeDefined();
          const ours = s.sigmas!;
          expect(ours.length).toBe(st.sigmas.length);
          let worst = 0;
          let exact = 0;
          for (let i = 0; i < ours.length; i++) {
            const ref = st.sigmas[i];
            const rel = ref === 0 ? Math.abs(ours[i]) : Math.abs(ours[i] - ref) / Math.abs(ref);
            worst = Math.max(worst, rel);
            if (ours[i] === Math.fround(ref)) exact++;
          }
          report.set(`${key} sigmas n=${nStr}`, { worst, worstAbs: 0, exactSteps: exact, steps: ours.length });
          expect(worst).toBeLessThanOrEqual(1e-6);
        }
      });
    }

    for (const trace of entry.traces) {
      it(`trace n=${trace.num_inference_steps}`, () => {
        const s = make(trace.num_inference_steps);
        expect(Array.from(s.timesteps)).toEqual(trace.timesteps);
        expect(s.timesteps.length).toBe(trace.steps);
        const p = trace.tensor_prefix;
        const initialNoise = tensor("initial_noise");
        const n = initialNoise.length;
        // initial_noise is randn(seed 501) of the trace shape.
        expect(maxAbsDiff(new TorchGenerator(spec.trace_definition.sample_seed).randn(spec.trace_definition.shape), initialNoise)).toBeLessThanOrEqual(1e-6);
        const initialSample = tensor(p + "initial_sample");
        const sigma0 = Math.fround(trace.init_noise_sigma);
        expect(s.initNoiseSigma).toBe(sigma0);
        expect(maxAbsDiff(initialNoise.map((x) => x * sigma0), initialSample)).toBe(0);

        const scaled = tensor(p + "scaled_input");
        const modelOutput = tensor(p + "model_output");
        const prev = tensor(p + "prev_sample");
        const stepNoise = tensors.has(p + "step_noise") ? tensor(p + "step_noise") : null;
        const gen = trace.generator_seed !== undefined ? new TorchGenerator(trace.generator_seed) : undefined;
        if (stepNoise) expect(gen).toBeDefined();

        let sample = initialSample;
        for (let i = 0; i < trace.steps; i++) {
          const t = s.timesteps[i];
          const at = (a: Float32Array) => a.subarray(i * n, (i + 1) * n);
          const x = s.scaleModelInput(sample, t);
          expect(note(`${key} scaled_input`, x, at(scaled))).toBeLessThanOrEqual(TRACE_TOL);
          if (stepNoise) {
            const expectedNoise = gen!.clone().randn([n]);
            expect(maxAbsDiff(expectedNoise, at(stepNoise))).toBeLessThanOrEqual(1e-6);
            note(`${key} step_noise`, expectedNoise, at(stepNoise));
          }
          sample = s.step(at(modelOutput).slice(), t, sample, gen);
          expect(note(`${key} prev_sample`, sample, at(prev))).toBeLessThanOrEqual(TRACE_TOL);
        }
      });
    }

    if (entry.add_noise.length > 0) {
      it("add_noise", () => {
        const original = tensor(`${key}.add_noise.original`);
        const noise = tensor(`${key}.add_noise.noise`);
        for (const c of entry.add_noise) {
          const s = make(c.num_inference_steps);
          const t = s.timesteps[c.timestep_index];
          expect(t).toBe(c.timestep);
          const ours = s.addNoise(original, noise, t);
          expect(note(`${key} add_noise`, ours, tensor(c.tensor))).toBeLessThanOrEqual(TRACE_TOL);
        }
      });
    }
  });
}

describe("DDIM eta", () => {
  it("eta > 0 draws from the generator and needs one", () => {
    const s = createScheduler("ddim", {}, 5, { eta: 0.5 });
    const x = new Float32Array(16).fill(0.25);
    expect(() => s.step(x, s.timesteps[0], x)).toThrow();
    const g = new TorchGenerator(1);
    createScheduler("ddim", {}, 5, { eta: 0.5 }).step(x, 801, x, g);
    const expected = new TorchGenerator(1);
    expected.randn([16]);
    expect(Array.from(g.randn([3]))).toEqual(Array.from(expected.randn([3])));
  });

  it("eta = 0 leaves the generator alone", () => {
    const s = createScheduler("ddim", {}, 5);
    const g = new TorchGenerator(1);
    const x = new Float32Array(16).fill(0.25);
    s.step(x, 801, x, g);
    expect(Array.from(g.randn([3]))).toEqual(Array.from(new TorchGenerator(1).randn([3])));
  });
});

describe("batches", () => {
  it("step() on a batch of two equals two single steps (and the noise is one draw over the whole batch)", () => {
    const g0 = new TorchGenerator(9);
    const a = g0.randn([1, 4, 4, 4]);
    const b = g0.randn([1, 4, 4, 4]);
    const both = new Float32Array([...a, ...b]);
    for (const name of ["pndm", "ddim", "lms", "euler", "dpmpp_2m"] as const) {
      const single1 = createScheduler(name, {}, 5);
      const single2 = createScheduler(name, {}, 5);
      const batch = createScheduler(name, {}, 5);
      let s1: Float32Array = a, s2: Float32Array = b, sb: Float32Array = both;
      for (const t of batch.timesteps) {
        s1 = single1.step(s1.map((x) => 0.3 * x), t, s1);
        s2 = single2.step(s2.map((x) => 0.3 * x), t, s2);
        sb = batch.step(sb.map((x) => 0.3 * x), t, sb);
      }
      expect(Array.from(sb)).toEqual([...s1, ...s2]);
    }
    const ea = createScheduler("euler_a", {}, 3);
    const g = new TorchGenerator(4);
    const out = ea.step(both, ea.timesteps[0], both, g);
    expect(out.length).toBe(both.length);
    expect(Array.from(g.randn([2]))).toEqual(Array.from((() => { const h = new TorchGenerator(4); h.randn([both.length]); return h.randn([2]); })()));
  });
});

describe("LMS coefficients", () => {
  it("integrates the Lagrange basis exactly", () => {
    // Basis polynomials sum to 1, so the coefficients sum to the interval length.
    const nodes = [3.2, 2.5, 4.1, 6.0];
    let sum = 0;
    for (let c = 0; c < 4; c++) sum += lagrangeBasisIntegral(nodes, c, 3.2, 2.9);
    expect(sum).toBeCloseTo(2.9 - 3.2, 14);
    // Order 2, nodes x0 = 2, x1 = 4: L0 = (tau - 4)/(2 - 4); integral over [2, 1] = [-(tau-4)^2/4] from 2 to 1 = -9/4 + 1 = -1.25.
    expect(lagrangeBasisIntegral([2, 4], 0, 2, 1)).toBeCloseTo(-1.25, 14);
    // A cubic basis against a fine Simpson rule.
    const simpson = (fn: (x: number) => number, a: number, b: number) => {
      const m = 2000;
      const h = (b - a) / m;
      let acc = fn(a) + fn(b);
      for (let i = 1; i < m; i++) acc += fn(a + i * h) * (i % 2 ? 4 : 2);
      return (acc * h) / 3;
    };
    const L1 = (x: number) => ((x - 3.2) * (x - 4.1) * (x - 6.0)) / ((2.5 - 3.2) * (2.5 - 4.1) * (2.5 - 6.0));
    expect(lagrangeBasisIntegral(nodes, 1, 3.2, 2.9)).toBeCloseTo(simpson(L1, 3.2, 2.9), 12);
  });

  it("quad's estimate on the float32 integrand agrees with the exact integral to float rounding", () => {
    for (const n of [5, 20, 50]) {
      const s = new LMSDiscreteScheduler({}, n);
      for (let i = 0; i < n; i++) {
        const order = Math.min(i + 1, 4);
        const nodes = Array.from({ length: order }, (_, k) => s.sigmas[i - k]);
        for (let c = 0; c < order; c++) {
          const exact = lagrangeBasisIntegral(nodes, c, s.sigmas[i], s.sigmas[i + 1]);
          const quad = lmsCoefficient(nodes, c, s.sigmas[i], s.sigmas[i + 1]);
          expect(Math.abs(quad - exact)).toBeLessThanOrEqual(1e-6 * Math.max(1e-3, Math.abs(exact)));
        }
      }
    }
  });

  it("uses the absolute step index for the order (img2img starts mid-schedule)", () => {
    const s = new LMSDiscreteScheduler({}, 20);
    expect(s.lmsCoefficients(4, 8).length).toBe(4);
    const x = new Float32Array(8).fill(1);
    // Starting at index 8 with a single derivative must not throw (zip stops at the shortest list).
    const out = s.step(x, s.timesteps[8], x);
    expect(out.every(Number.isFinite)).toBe(true);
  });
});

describe("Karras sigmas", () => {
  const train = trainingSigmas(noiseSchedule(resolveSchedulerConfig({})).alphasCumprod);
  const sigmaMin = train[0];
  const sigmaMax = train[999];

  it("formula: endpoints, monotonicity, a hand-computed value", () => {
    const k = karrasSigmas(sigmaMin, sigmaMax, 10);
    expect(k[0]).toBeCloseTo(sigmaMax, 12);
    expect(k[9]).toBeCloseTo(sigmaMin, 12);
    for (let i = 1; i < 10; i++) expect(k[i]).toBeLessThan(k[i - 1]);
    // sigma_min = 0.1, sigma_max = 10, n = 3, rho = 7: the middle value is ((10^(1/7) + 0.1^(1/7)) / 2)^7.
    // 10^(1/7) = 1.38949549437..., 0.1^(1/7) = 0.71968567300..., mean 1.05459058368..., ^7 = 1.45073211356...
    const mid = karrasSigmas(0.1, 10, 3)[1];
    expect(mid).toBeCloseTo(1.4507321135661928, 12);
    // rho = 1 gives a straight line.
    expect(Array.from(karrasSigmas(1, 3, 3, 1))).toEqual([3, 2, 1]);
  });

  it("sigma -> timestep inverts the training schedule", () => {
    expect(sigmaToTimestep(train[500], train)).toBeCloseTo(500, 9);
    expect(sigmaToTimestep(sigmaMax, train)).toBe(999);
    expect(sigmaToTimestep(sigmaMin, train)).toBe(0);
    const between = Math.sqrt(train[100] * train[101]); // geometric mean: halfway in log sigma
    expect(sigmaToTimestep(between, train)).toBeCloseTo(100.5, 9);
  });

  for (const name of KARRAS_SCHEDULERS) {
    it(`${name} with karras: sigmas, timesteps, a full run`, () => {
      const s = createScheduler(name, {}, 12, { karras: true });
      const sig = s.sigmas!;
      expect(sig.length).toBe(13);
      expect(sig[0]).toBe(Math.fround(sigmaMax));
      expect(sig[11]).toBeCloseTo(sigmaMin, 6);
      expect(sig[12]).toBe(0);
      expect(s.timesteps[0]).toBe(999);
      expect(s.timesteps[11]).toBeCloseTo(0, 9);
      for (let i = 1; i < 12; i++) expect(s.timesteps[i]).toBeLessThan(s.timesteps[i - 1]);
      const k = karrasSigmas(sigmaMin, sigmaMax, 12);
      for (let i = 0; i < 12; i++) expect(sig[i]).toBe(Math.fround(k[i]));
      const g = new TorchGenerator(3);
      let x: Float32Array = g.randn([64]).map((v) => v * s.initNoiseSigma);
      for (const t of s.timesteps) x = s.step(s.scaleModelInput(x, t).map((v) => 0.5 * v), t, x, g);
      expect(x.every(Number.isFinite)).toBe(true);
    });
  }

  it("is refused for PNDM and DDIM", () => {
    expect(KARRAS_SCHEDULERS).toEqual(["lms", "euler", "euler_a", "dpmpp_2m"]);
    expect(() => createScheduler("ddim", {}, 10, { karras: true })).toThrow(expect.objectContaining({ code: "JSD_INVALID_ARGUMENT" }));
    expect(() => createScheduler("pndm", {}, 10, { karras: true })).toThrow(expect.objectContaining({ code: "JSD_INVALID_ARGUMENT" }));
  });
});

describe("img2img start", () => {
  it("strength -> timesteps slice as the reference pipelines (against the pipeline files' timesteps)", async () => {
    const files = ["img2img_euler_a_64x64_s4_str0.6", "img2img_lms_64x96_s20_str0.6", "img2img_pndm_64x64_s20_str0.6", "inpaint_ddim_64x96_s4_str0.75", "inpaint_pndm_64x64_s20_str0.75", "pndm_64x64_s20_g7.5", "dpm_64x96_s4_g7.5", "lms_64x96_s4_g1.0"];
    for (const file of files) {
      const st = await SafetensorsFile.open(`${REF}pipeline/${file}.safetensors`);
      const meta = st.metadata;
      await st.close();
      const params = JSON.parse(meta.params_json) as { scheduler: string; scheduler_config: Record<string, unknown>; num_inference_steps: number; strength?: number; timesteps_exact: number[] };
      const s = createScheduler(NAME_OF_CLASS[params.scheduler], params.scheduler_config, params.num_inference_steps);
      const expected = params.timesteps_exact;
      if (params.strength === undefined) {
        expect(Array.from(s.timesteps), file).toEqual(expected);
      } else {
        const start = img2imgStart(s, params.strength);
        expect(Array.from(start.timesteps), file).toEqual(expected);
        expect(start.noiseTimestep).toBe(expected[0]);
      }
    }
  });

  it("offset handling (PNDM/DDIM steps_offset 1, others 0)", () => {
    const pndm = createScheduler("pndm", { steps_offset: 1 }, 20);
    expect(img2imgStart(pndm, 0.6)).toMatchObject({ initTimestep: 13, tStart: 8 });
    expect(img2imgStart(pndm, 0.6).timesteps.length).toBe(13);
    const ddim = createScheduler("ddim", { steps_offset: 1 }, 4);
    expect(img2imgStart(ddim, 0.75)).toMatchObject({ initTimestep: 4, tStart: 1, noiseTimestep: 501 });
    const lms = createScheduler("lms", { steps_offset: 1 }, 20); // LMS has no steps_offset in 0.8.1
    expect(lms.stepsOffset).toBe(0);
    expect(img2imgStart(lms, 0.6)).toMatchObject({ initTimestep: 12, tStart: 8 });
    expect(img2imgStart(lms, 1).tStart).toBe(0);
    expect(() => img2imgStart(lms, 0)).toThrow();
    expect(() => img2imgStart(lms, 1.5)).toThrow();
  });
});

describe("scheduler loop of the reference pipelines (UNet outputs replayed from the pipeline files)", () => {
  const files = [
    "ddim_64x64_s20_g7.5", "ddim_64x96_s1_g7.5", "dpm_64x64_s20_g7.5", "dpm_64x96_s4_g7.5", "euler_64x64_s20_g7.5",
    "euler_64x96_s4_g7.5", "euler_a_64x64_s20_g7.5", "euler_a_64x96_s4_g1.0", "img2img_euler_a_64x64_s4_str0.6",
    "img2img_lms_64x96_s20_str0.6", "img2img_pndm_64x64_s20_str0.6", "inpaint_ddim_64x96_s4_str0.75",
    "inpaint_pndm_64x64_s20_str0.75", "lms_64x64_s20_g7.5", "lms_64x96_s4_g1.0", "pndm_64x64_s1_g1.0",
    "pndm_64x64_s20_g7.5", "pndm_64x96_s4_g7.5_neg",
  ];
  for (const file of files) {
    it(file, async () => {
      const { tensors: pt, metadata } = await readSafetensors(`${REF}pipeline/${file}.safetensors`);
      const get = (k: string) => toFloat32(pt.get(k)!);
      const params = JSON.parse(metadata.params_json) as {
        mode: string; scheduler: string; scheduler_config: Record<string, unknown>; num_inference_steps: number;
        strength?: number; seed: number; eta?: number; timesteps_exact: number[];
      };
      const s = createScheduler(NAME_OF_CLASS[params.scheduler], params.scheduler_config, params.num_inference_steps);
      const shape = pt.get("initial_latents")!.shape;
      const n = shape.reduce((a, b) => a * b, 1);
      const g = new TorchGenerator(params.seed);
      let latents: Float32Array;
      let timesteps: Float64Array;
      let blend: ((latents: Float32Array, t: number) => Float32Array) | null = null;
      if (params.mode === "txt2img") {
        const initial = g.randn(shape);
        expect(maxAbsDiff(initial, get("initial_latents"))).toBe(0);
        latents = initial.map((x) => x * s.initNoiseSigma);
        timesteps = s.timesteps;
      } else {
        expect(maxAbsDiff(g.randn(shape), get("vae_sample_noise"))).toBe(0);
        const noise = g.randn(shape);
        expect(maxAbsDiff(noise, get("noise"))).toBe(0);
        const start = img2imgStart(s, params.strength!);
        timesteps = start.timesteps;
        const initLatents = get("init_latents");
        latents = s.addNoise(initLatents, noise, start.noiseTimestep);
        expect(scaledDiff(latents, get("initial_latents"))).toBeLessThanOrEqual(TRACE_TOL);
        if (params.mode === "inpaint_legacy") {
          // keep = 1 - mask sampled at latent resolution (the mask is constant on 8x8 blocks).
          const mask = get("mask");
          const [, c, h, w] = shape;
          const width = w * 8;
          const keep = new Float32Array(n);
          for (let ch = 0; ch < c; ch++)
            for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) keep[(ch * h + y) * w + x] = 1 - mask[y * 8 * width + x * 8];
          blend = (lat, t) => {
            const proper = s.addNoise(initLatents, noise, t);
            return lat.map((v, i) => Math.fround(proper[i] * keep[i]) + Math.fround(v * Math.fround(1 - keep[i])));
          };
        }
      }
      expect(Array.from(timesteps)).toEqual(params.timesteps_exact);
      expect(scaledDiff(latents, get("loop_start_latents"))).toBeLessThanOrEqual(TRACE_TOL);
      const preds = get("step_noise_pred");
      const ref = get("step_latents");
      for (let i = 0; i < timesteps.length; i++) {
        const t = timesteps[i];
        latents = s.step(preds.slice(i * n, (i + 1) * n), t, latents, s.acceptsGenerator ? g : undefined);
        if (blend) latents = blend(latents, t);
        expect(note(`pipeline loop ${params.mode} ${params.scheduler}`, latents, ref.subarray(i * n, (i + 1) * n))).toBeLessThanOrEqual(TRACE_TOL);
      }
      expect(maxAbsDiff(latents, get("final_latents"))).toBeLessThanOrEqual(TRACE_TOL * Math.max(1, maxAbs(get("final_latents"))));
    });
  }
});

describe("model config", () => {
  it("the model's scheduler_config.json works for every scheduler", () => {
    const config = JSON.parse(readFileSync(fileURLToPath(new URL("../fixtures/tiny-jsd/scheduler/scheduler_config.json", import.meta.url)), "utf8")) as Record<string, unknown>;
    const reference = spec.schedulers;
    const byName: Record<SchedulerName, string> = { pndm: "PNDM", ddim: "DDIM", lms: "LMS", euler: "EulerDiscrete", euler_a: "EulerAncestralDiscrete", dpmpp_2m: "DPMSolverMultistep" };
    for (const [name, key] of Object.entries(byName) as [SchedulerName, string][]) {
      const s = createScheduler(name, config, 20);
      expect(Array.from(s.timesteps), name).toEqual(reference[key].set_timesteps["20"].timesteps);
    }
  });
});

describe("argument checks", () => {
  it("rejects unknown timesteps, sizes and configs", () => {
    const s = createScheduler("euler", {}, 5);
    const x = new Float32Array(4);
    expect(() => s.step(x, 123.5, x)).toThrow();
    expect(() => s.step(x, s.timesteps[0], new Float32Array(5))).toThrow();
    expect(() => createScheduler("ddim", {}, 0)).toThrow();
    expect(() => createScheduler("pndm", { skip_prk_steps: false }, 5)).toThrow();
    expect(() => createScheduler("dpmpp_2m", { solver_order: 3 }, 5)).toThrow();
    expect(() => createScheduler("euler", {}, 5, { eta: 0.3 })).toThrow();
    expect(() => createScheduler("euler_a", {}, 5).step(x, 999, x)).toThrow(); // needs a generator
  });
});

describe("bit-exactness", () => {
  // Stricter than the tolerances above: every trace step, add_noise case and sigma list reproduces
  // diffusers 0.8.1 bit for bit. Runs last: the cases above fill the report.
  it("every compared tensor is bit-identical to the reference", () => {
    const entries = [...report].filter(([k]) => !k.includes(" sigmas "));
    expect(entries.length).toBeGreaterThan(15);
    for (const [k, r] of entries) expect(r.exactSteps, k).toBe(r.steps);
    for (const [k, r] of [...report].filter(([key]) => key.includes(" sigmas "))) expect(r.exactSteps, k).toBe(r.steps);
  });
});

// DPM-Solver++(2M) with Karras sigmas ("DPM++ 2M Karras"). From the training sigmas on, the expected
// values are computed here in float64 from the formulas themselves (the Karras ramp, log-sigma
// interpolation, the DPM-Solver++ updates in k-diffusion's form), not with the library's helpers, so
// a wrong sigma, timestep, coefficient or order shows up as a difference larger than float32 noise.
import { describe, expect, it } from "vitest";
import { resolveOptions } from "../../lib/pipeline/options.js";
import { formatParameters, type GenerationParameters } from "../../lib/pipeline/parameters.js";
import { a1111Samplers, parseSampler, samplerName } from "../../lib/server/a1111/samplers.js";
import {
  createScheduler,
  img2imgStart,
  KARRAS_SCHEDULERS,
  noiseSchedule,
  resolveSchedulerConfig,
  SCHEDULER_NAMES,
  trainingSigmas,
  type Scheduler,
} from "../../lib/schedulers/index.js";

/** SD v1's training sigmas sqrt((1 - ac) / ac), float32 as torch computes them (checked against torch in schedulers.test.ts). */
const TRAIN = Array.from(trainingSigmas(noiseSchedule(resolveSchedulerConfig({})).alphasCumprod));

function karras64(n: number): number[] {
  const lo = TRAIN[0] ** (1 / 7);
  const hi = TRAIN[999] ** (1 / 7);
  return Array.from({ length: n }, (_, i) => (hi + (n === 1 ? 0 : i / (n - 1)) * (lo - hi)) ** 7);
}

/** The timestep t with log sigma linear between neighbouring training timesteps. */
function timestep64(sigma: number): number {
  let j = 0;
  while (j < 998 && TRAIN[j + 1] <= sigma) j++;
  const w = (Math.log(sigma) - Math.log(TRAIN[j])) / (Math.log(TRAIN[j + 1]) - Math.log(TRAIN[j]));
  return j + Math.min(Math.max(w, 0), 1);
}

/** A fake noise prediction that depends on the sample and on the timestep passed. */
function fakeEps(sample: Float32Array, t: number): Float32Array {
  return sample.map((x, i) => 0.4 * x + Math.cos(0.013 * t + 0.7 * i));
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return num / den;
}

/**
 * One step of sample_dpmpp_2m in the variance-preserving form x = alpha*x0 + sigma_t*eps, sigma_t =
 * sigma*alpha, alpha = 1/sqrt(sigma² + 1): lambda = -log(sigma), first order without history or to
 * sigma 0, else x0 blended with the previous x0 as (1 + 1/(2r)) x0 - 1/(2r) x0_prev.
 */
function referenceStep(sample: ArrayLike<number>, x0: number[], prevX0: number[] | null, s: number, next: number, prev: number | null): number[] {
  if (next === 0) return x0.slice();
  const alphaNext = 1 / Math.sqrt(next * next + 1);
  const ratio = (next * alphaNext) / (s / Math.sqrt(s * s + 1));
  const h = Math.log(s) - Math.log(next);
  let d = x0;
  if (prevX0 !== null && prev !== null) {
    const r = (Math.log(prev) - Math.log(s)) / h;
    d = x0.map((v, i) => (1 + 1 / (2 * r)) * v - (1 / (2 * r)) * prevX0[i]);
  }
  return Array.from(sample, (x, i) => ratio * x - alphaNext * Math.expm1(-h) * d[i]);
}

function x0Of(sample: ArrayLike<number>, eps: ArrayLike<number>, sigma: number): number[] {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  return Array.from(sample, (x, i) => (x - sigma * alpha * eps[i]) / alpha);
}

function startSample(n = 16): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(1.3 * i + 0.2) * 1.5);
}

describe("DPM++ 2M Karras: the schedule", () => {
  for (const steps of [1, 5, 20, 50]) {
    it(`${steps} steps: the sigmas are the Karras ramp (rho 7) over the training sigmas, then 0`, () => {
      const s = createScheduler("dpmpp_2m", {}, steps, { karras: true });
      const want = karras64(steps);
      expect(s.sigmas).toHaveLength(steps + 1);
      expect(s.sigmas![steps]).toBe(0);
      for (let i = 0; i < steps; i++) expect(s.sigmas![i]).toBe(Math.fround(want[i]));
    });
  }

  // With 200 steps the last sigmas fall between training timesteps 0 and 2, where interpolating sigma
  // rather than log sigma would be off by about 0.02.
  for (const steps of [20, 200]) {
    it(`${steps} steps: the timesteps interpolate log sigma between training timesteps, fractional, 999 down to 0`, () => {
      const s = createScheduler("dpmpp_2m", {}, steps, { karras: true });
      const want = karras64(steps).map(timestep64);
      expect(s.timesteps).toHaveLength(steps);
      for (let i = 0; i < steps; i++) expect(s.timesteps[i]).toBeCloseTo(want[i], 8);
      expect(s.timesteps[0]).toBe(999);
      expect(s.timesteps[steps - 1]).toBeCloseTo(0, 6);
      for (let i = 1; i < steps; i++) expect(s.timesteps[i]).toBeLessThan(s.timesteps[i - 1]);
      expect(Array.from(s.timesteps).filter((t) => !Number.isInteger(t)).length).toBeGreaterThan(steps / 2);
    });
  }

  it("without karras, dpmpp_2m keeps diffusers 0.8.1's integer timesteps and has no sigmas", () => {
    const s = createScheduler("dpmpp_2m", {}, 20);
    expect(s.sigmas).toBeUndefined();
    expect(Array.from(s.timesteps.slice(0, 3))).toEqual([999, 949, 899]);
    expect(s.timesteps.every(Number.isInteger)).toBe(true);
  });
});

/** Runs the scheduler on fakeEps from `start`, comparing every step with the float64 reference fed the same input. */
function compareRun(s: Scheduler, timesteps: Float64Array, first: number, start: Float32Array) {
  const sigmas = s.sigmas!;
  let sample = start;
  let prevX0: number[] | null = null;
  const errors: number[] = [];
  const orderGaps: number[] = [];
  for (let k = 0; k < timesteps.length; k++) {
    const i = first + k;
    const t = timesteps[k];
    const eps = fakeEps(sample, t);
    const x0 = x0Of(sample, eps, sigmas[i]);
    const prev = prevX0 === null ? null : sigmas[i - 1];
    const want = referenceStep(sample, x0, prevX0, sigmas[i], sigmas[i + 1], prev);
    const firstOrder = referenceStep(sample, x0, null, sigmas[i], sigmas[i + 1], null);
    const out = s.step(eps, t, sample);
    errors.push(relErr(out, want));
    orderGaps.push(relErr(firstOrder, want));
    if (sigmas[i + 1] === 0) expect(Array.from(out)).toEqual(Array.from(s.predictOriginal(eps, t, sample)));
    prevX0 = x0;
    sample = out;
  }
  return { errors, orderGaps, final: sample };
}

describe("DPM++ 2M Karras: each step against a float64 DPM-Solver++(2M)", () => {
  for (const steps of [5, 20]) {
    it(`${steps} steps: first order first, second order between, the last step to sigma 0 returns x0`, () => {
      const s = createScheduler("dpmpp_2m", {}, steps, { karras: true });
      const { errors, orderGaps, final } = compareRun(s, s.timesteps, 0, startSample());
      for (const e of errors) expect(e).toBeLessThan(1e-5);
      // The check can tell the orders apart: in the middle, the first-order result is ten times further off.
      for (let k = 1; k < steps - 1; k++) expect(orderGaps[k]).toBeGreaterThan(1e-4);
      expect(final.every(Number.isFinite)).toBe(true);
    });
  }

  it("the x0 estimate and add_noise use alpha = 1/sqrt(sigma² + 1), sigma_t = sigma·alpha", () => {
    const s = createScheduler("dpmpp_2m", {}, 10, { karras: true });
    const x = startSample(8);
    const eps = fakeEps(x, 3);
    const t = s.timesteps[3];
    const sigma = s.sigmas![3];
    expect(relErr(s.predictOriginal(eps, t, x), x0Of(x, eps, sigma))).toBeLessThan(1e-6);
    const alpha = 1 / Math.sqrt(sigma * sigma + 1);
    const noisy = Array.from(x, (v, i) => alpha * v + sigma * alpha * eps[i]);
    expect(relErr(s.addNoise(x, eps, t), noisy)).toBeLessThan(1e-6);
    expect(() => s.step(eps, 500, x)).toThrow(expect.objectContaining({ code: "JSD_INVALID_ARGUMENT" }));
  });

  it("img2img: a run that starts mid-schedule takes a first-order step first, then matches the reference", () => {
    const s = createScheduler("dpmpp_2m", {}, 20, { karras: true });
    const start = img2imgStart(s, 0.6);
    expect(start.timesteps).toHaveLength(12);
    const { errors, orderGaps } = compareRun(s, start.timesteps, start.tStart, startSample());
    for (const e of errors) expect(e).toBeLessThan(1e-5);
    expect(orderGaps[1]).toBeGreaterThan(1e-4);
  });
});

describe("DPM++ 2M Karras: options and names", () => {
  it("karras is accepted with dpmpp_2m and still refused, with a code, for ddim and pndm", () => {
    expect(KARRAS_SCHEDULERS).toContain("dpmpp_2m");
    expect(resolveOptions({ prompt: "", scheduler: "dpmpp_2m", karras: true, seed: 0 }).karras).toBe(true);
    for (const scheduler of ["ddim", "pndm"] as const) {
      expect(() => resolveOptions({ prompt: "", scheduler, karras: true, seed: 0 })).toThrow(expect.objectContaining({ code: "JSD_INVALID_ARGUMENT", message: expect.stringMatching(/karras/) }));
      expect(() => createScheduler(scheduler, {}, 10, { karras: true })).toThrow(expect.objectContaining({ code: "JSD_INVALID_ARGUMENT" }));
    }
    // Every scheduler in the list builds with Karras sigmas, and those not in it are refused.
    for (const name of SCHEDULER_NAMES) {
      const build = () => createScheduler(name, {}, 4, { karras: true });
      if (KARRAS_SCHEDULERS.includes(name)) expect(build().sigmas).toHaveLength(5);
      else expect(build).toThrow();
    }
  });

  it('is "DPM++ 2M Karras" in the PNG parameters and in the A1111 API, both ways', () => {
    const p: GenerationParameters = {
      prompt: "p", negativePrompt: "", promptMode: "reference", steps: 20, scheduler: "dpmpp_2m", karras: true, guidanceScale: 7.5,
      seed: "1", batchIndex: 0, width: 512, height: 512, mode: "txt2img", droppedTokens: 0, model: "m", backend: "cpu", version: "0",
    };
    expect(formatParameters(p)).toContain("Sampler: DPM++ 2M Karras,");
    expect(a1111Samplers().map((s) => s.name)).toContain("DPM++ 2M Karras");
    expect(a1111Samplers().map((s) => s.name)).not.toContain("DDIM Karras");
    expect(parseSampler("DPM++ 2M Karras")).toEqual({ scheduler: "dpmpp_2m", karras: true });
    expect(parseSampler("DPM++ 2M", "Karras")).toEqual({ scheduler: "dpmpp_2m", karras: true });
    expect(parseSampler("dpmpp_2m_karras")).toEqual({ scheduler: "dpmpp_2m", karras: true });
    expect(parseSampler("DPM++ 2M")).toEqual({ scheduler: "dpmpp_2m", karras: false });
    expect(samplerName({ scheduler: "dpmpp_2m", karras: true })).toBe("DPM++ 2M Karras");
  });
});

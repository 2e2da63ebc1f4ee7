// Pieces shared by the schedulers: the training noise schedule computed as torch 1.13 computes it
// in float32, numpy helpers (linspace, interp, round) in float64, Karras sigmas, and the element-wise
// helpers. Naming: `f` is Math.fround, i.e. "round this double to float32", used wherever torch
// does float32 arithmetic (each torch operation rounds its result to float32).
import { JsdError } from "../errors.js";
import { glibcLogf } from "../rng/glibc-libm.js";
import type { TorchGenerator } from "../rng/torch-generator.js";
import type { SchedulerConfig } from "./config.js";

export const f = Math.fround;

/** float32 log as torch's portable CPU kernel computes it: glibc's logf. */
export function logf(x: number): number {
  return glibcLogf(x);
}

/** float32 exp, as expf. */
export function expf(x: number): number {
  return f(Math.exp(x));
}

/** float32 square root (correctly rounded in both torch and here). */
export function sqrtf(x: number): number {
  return f(Math.sqrt(x));
}

/**
 * torch.linspace(start, end, steps, dtype=float32) on the CPU (torch 1.13). The kernel computes
 * `start + step*i` for the first half and `end - step*(steps-1-i)` for the second half, but its
 * vectorised loop (8 floats per vector, two vectors per iteration) only computes the first element
 * of each vector that way and adds `step*k` for the other lanes. The last `steps % 16` elements use
 * the scalar formula.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f(start);
  const e = f(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const scalarAt = (i: number): number => (i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1))));
  const vectorised = Math.floor(steps / 16) * 16;
  for (let i = 0; i < vectorised; i += 8) {
    const base = scalarAt(i);
    for (let k = 0; k < 8; k++) out[i + k] = f(base + f(step * k));
  }
  for (let i = vectorised; i < steps; i++) out[i] = scalarAt(i);
  return out;
}

/** diffusers' betas_for_alpha_bar (squaredcos_cap_v2), computed in float64 and stored as float32. */
function betasForAlphaBar(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  return out;
}

/** The training noise schedule shared by all schedulers. */
export interface NoiseSchedule {
  readonly betas: Float32Array;
  /** torch.cumprod(1 - betas): float32 values, accumulated in double (torch's CPU cumprod does). */
  readonly alphasCumprod: Float32Array;
}

export function noiseSchedule(config: SchedulerConfig): NoiseSchedule {
  const n = config.num_train_timesteps;
  let betas: Float32Array;
  if (config.trained_betas !== null) {
    betas = Float32Array.from(config.trained_betas);
  } else if (config.beta_schedule === "linear") {
    betas = torchLinspaceF32(config.beta_start, config.beta_end, n);
  } else if (config.beta_schedule === "scaled_linear") {
    betas = torchLinspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n);
    for (let i = 0; i < n; i++) betas[i] = f(betas[i] * betas[i]);
  } else {
    betas = betasForAlphaBar(n);
  }
  const alphasCumprod = new Float32Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) {
    acc *= f(1 - betas[i]);
    alphasCumprod[i] = acc;
  }
  return { betas, alphasCumprod };
}

/** The training sigmas sqrt((1 - ac) / ac) in float32, indexed by timestep (ascending). */
export function trainingSigmas(alphasCumprod: Float32Array): Float32Array {
  const out = new Float32Array(alphasCumprod.length);
  for (let i = 0; i < out.length; i++) {
    const ac = alphasCumprod[i];
    out[i] = sqrtf(f(f(1 - ac) / ac));
  }
  return out;
}

/** np.linspace(start, stop, num) in float64 (numpy 1.24: `i * step + start`, last element = stop). */
export function npLinspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 0) return out;
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  out[num - 1] = stop;
  return out;
}

/** np.round / np.rint: round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // half up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.interp(x, arange(len(fp)), fp) in float64, with numpy's formula `slope*(x - xp[j]) + fp[j]`. */
export function interpUnitGrid(x: number, fp: ArrayLike<number>): number {
  const n = fp.length;
  if (!(x > 0)) return x === 0 || x < 0 ? fp[0] : x; // NaN passes through
  if (x >= n - 1) return fp[n - 1];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  const slope = fp[j + 1] - fp[j];
  return slope * (x - j) + fp[j];
}

/** Karras et al. (2022) sigmas: (max^(1/rho) + i/(n-1) * (min^(1/rho) - max^(1/rho)))^rho, float64, descending. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number, rho = 7): Float64Array {
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) throw new JsdError("JSD_INVALID_ARGUMENT", `karras sigmas need 0 < sigma_min < sigma_max`);
  const ramp = npLinspace(0, 1, n);
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (maxInv + ramp[i] * (minInv - maxInv)) ** rho;
  return out;
}

/**
 * The (fractional) training timestep of a sigma, interpolating log-sigma linearly between
 * neighbouring training timesteps, as diffusers' `_sigma_to_t`. `sigmas` ascend with t.
 */
export function sigmaToTimestep(sigma: number, sigmas: ArrayLike<number>): number {
  const logSigma = Math.log(sigma);
  const n = sigmas.length;
  let low = 0;
  for (let i = 0; i < n; i++) if (logSigma >= Math.log(sigmas[i])) low = i;
  low = Math.min(low, n - 2);
  const lo = Math.log(sigmas[low]);
  const hi = Math.log(sigmas[low + 1]);
  let w = (lo - logSigma) / (lo - hi);
  w = Math.min(Math.max(w, 0), 1);
  return (1 - w) * low + w * (low + 1);
}

/**
 * The Karras schedule over a training schedule: `steps` Karras sigmas from its largest sigma down to
 * its smallest (the endpoints diffusers' `_convert_to_karras` takes by default), and the (fractional)
 * timestep of each by log-sigma interpolation. `trainSigmas` ascend with t.
 */
export function karrasSchedule(trainSigmas: Float32Array, steps: number): { sigmas: Float64Array; timesteps: Float64Array } {
  let min = Infinity;
  let max = -Infinity;
  for (const s of trainSigmas) {
    if (s < min) min = s;
    if (s > max) max = s;
  }
  const sigmas = karrasSigmas(min, max, steps);
  return { sigmas, timesteps: Float64Array.from(sigmas, (s) => sigmaToTimestep(s, trainSigmas)) };
}

/** Index of `t` in `timesteps` (exact match, as `(timesteps == t).nonzero().item()`). */
export function indexOfTimestep(timesteps: Float64Array, t: number, who: string): number {
  const i = timesteps.indexOf(t);
  if (i < 0) throw new JsdError("JSD_INVALID_ARGUMENT", `${who}: timestep ${t} is not in the schedule`);
  return i;
}

/** A training timestep used as an index into alphas_cumprod. */
export function trainIndex(t: number, numTrain: number, who: string): number {
  if (!Number.isInteger(t) || t < 0 || t >= numTrain) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `${who}: timestep ${t} is not an integer in [0, ${numTrain})`);
  }
  return t;
}

export function checkSameLength(who: string, ...arrays: Float32Array[]): number {
  const n = arrays[0].length;
  for (const a of arrays) {
    if (a.length !== n) throw new JsdError("JSD_INVALID_ARGUMENT", `${who}: tensors differ in size (${arrays.map((x) => x.length).join(" vs ")})`);
  }
  return n;
}

export function requireGenerator(generator: TorchGenerator | undefined, who: string): TorchGenerator {
  if (!generator) throw new JsdError("JSD_INVALID_ARGUMENT", `${who} draws noise and needs a generator`);
  return generator;
}

/** add_noise of the alpha-based schedulers (PNDM, DDIM, DPMSolver): sqrt(ac)*x + sqrt(1-ac)*noise in float32. */
export function addNoiseAlpha(alphasCumprod: Float32Array, original: Float32Array, noise: Float32Array, t: number, who: string): Float32Array {
  const n = checkSameLength(`${who}.addNoise`, original, noise);
  const ac = alphasCumprod[trainIndex(t, alphasCumprod.length, `${who}.addNoise`)];
  return addNoiseVp(sqrtf(ac), sqrtf(f(1 - ac)), original, noise, n);
}

/** alpha*x + sigma*noise in float32 (the variance-preserving form). */
export function addNoiseVp(alpha: number, sigma: number, original: Float32Array, noise: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f(alpha * original[i]) + f(sigma * noise[i]);
  return out;
}

/**
 * pred_original_sample of the alpha-based schedulers: (x - sqrt(1-ac)*eps) / sqrt(ac) with ac =
 * alphas_cumprod[t], in float32 as DDIM's step rounds it (and DPMSolver's convert_model_output,
 * whose alpha_t and sigma_t are the same two square roots).
 */
export function predictOriginalAlpha(alphasCumprod: Float32Array, modelOutput: Float32Array, t: number, sample: Float32Array, who: string): Float32Array {
  const n = checkSameLength(`${who}.predictOriginal`, modelOutput, sample);
  const ac = alphasCumprod[trainIndex(t, alphasCumprod.length, `${who}.predictOriginal`)];
  return predictOriginalVp(sqrtf(ac), sqrtf(f(1 - ac)), modelOutput, sample, n);
}

/** (x - sigma*eps) / alpha in float32, for x = alpha*x0 + sigma*eps (the variance-preserving form). */
export function predictOriginalVp(alpha: number, sigma: number, modelOutput: Float32Array, sample: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f(sample[i] - f(sigma * modelOutput[i])) / alpha;
  return out;
}

/** pred_original_sample of the sigma-based schedulers (LMS, Euler): x - sigma*eps in float32. */
export function predictOriginalSigma(sigma: number, modelOutput: Float32Array, sample: Float32Array, who: string): Float32Array {
  const n = checkSameLength(`${who}.predictOriginal`, modelOutput, sample);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sample[i] - f(sigma * modelOutput[i]);
  return out;
}

/** add_noise of the sigma-based schedulers (LMS, Euler): x + noise*sigma in float32. */
export function addNoiseSigma(sigma: number, original: Float32Array, noise: Float32Array, who: string): Float32Array {
  const n = checkSameLength(`${who}.addNoise`, original, noise);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = original[i] + f(noise[i] * sigma);
  return out;
}

/** scale_model_input of the sigma-based schedulers: x / sqrt(sigma^2 + 1) in float32. */
export function scaleBySigma(sample: Float32Array, sigma: number): Float32Array {
  const denom = sqrtf(f(f(sigma * sigma) + 1));
  const out = new Float32Array(sample.length);
  for (let i = 0; i < sample.length; i++) out[i] = sample[i] / denom;
  return out;
}

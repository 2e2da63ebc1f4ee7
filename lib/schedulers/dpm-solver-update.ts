// The DPM-Solver++ (data prediction) updates of diffusers' DPMSolverMultistepScheduler, in float32 as
// its torch code rounds them, on noise levels given from outside: the training schedule's (diffusers
// 0.8.1) or the Karras sigmas' (use_karras_sigmas). The scheduler decides which levels and which order.
import { expf, f, logf, sqrtf } from "./common.js";

/** A point of the variance-preserving schedule: x_t = alpha*x0 + sigma*eps, lambda = log(alpha) - log(sigma). */
export interface NoiseLevel {
  readonly alpha: number;
  readonly sigma: number;
  readonly lambda: number;
}

/** The level of a training timestep: sqrt(ac), sqrt(1 - ac) and the log ratio, float32. */
export function alphaCumprodLevel(alphaCumprod: number): NoiseLevel {
  const alpha = sqrtf(alphaCumprod);
  const sigma = sqrtf(f(1 - alphaCumprod));
  return { alpha, sigma, lambda: f(logf(alpha) - logf(sigma)) };
}

/**
 * The level of a sigma of the sigma-based (variance-exploding) form, diffusers'
 * `_sigma_to_alpha_sigma_t`: alpha = 1/sqrt(sigma² + 1), sigma_t = sigma*alpha, float32. Sigma 0
 * gives alpha 1, sigma_t 0 and lambda +Infinity, which the first-order update turns into x0 itself.
 */
export function sigmaLevel(sigma: number): NoiseLevel {
  const alpha = f(1 / sqrtf(f(f(sigma * sigma) + 1)));
  const sigmaT = f(sigma * alpha);
  return { alpha, sigma: sigmaT, lambda: f(logf(alpha) - logf(sigmaT)) };
}

/** What a step from level s to level t multiplies the sample and x0 by (shared by both orders). */
function firstOrderCoefficients(s: NoiseLevel, t: NoiseLevel) {
  const ratio = f(t.sigma / s.sigma);
  const h = f(t.lambda - s.lambda);
  const expm1 = f(expf(-h) - 1);
  return { ratio, h, expm1, d0Coeff: f(t.alpha * expm1) };
}

/** First order (DDIM-like): x_t = (sigma_t/sigma_s) x - alpha_t (e^-h - 1) x0. */
export function firstOrderUpdate(s: NoiseLevel, t: NoiseLevel, sample: Float32Array, x0: Float32Array): Float32Array {
  const { ratio, d0Coeff } = firstOrderCoefficients(s, t);
  const out = new Float32Array(sample.length);
  for (let i = 0; i < out.length; i++) out[i] = f(ratio * sample[i]) - f(d0Coeff * x0[i]);
  return out;
}

/**
 * Second-order multistep from level s0 to t, with x0 at s0 and `prevX0` at the step before (s1):
 * D1 = (x0 - prevX0) / r0 with r0 = (lambda_s0 - lambda_s1) / h; midpoint subtracts
 * 0.5 alpha_t (e^-h - 1) D1, heun adds alpha_t ((e^-h - 1)/h + 1) D1.
 */
export function secondOrderUpdate(
  solverType: "midpoint" | "heun",
  s1: NoiseLevel,
  s0: NoiseLevel,
  t: NoiseLevel,
  sample: Float32Array,
  x0: Float32Array,
  prevX0: Float32Array,
): Float32Array {
  const { ratio, h, expm1, d0Coeff } = firstOrderCoefficients(s0, t);
  const r0 = f(f(s0.lambda - s1.lambda) / h);
  const invR0 = f(1 / r0);
  const midpoint = solverType === "midpoint";
  const d1Coeff = midpoint ? f(0.5 * d0Coeff) : f(t.alpha * f(f(expm1 / h) + 1));
  const d1Sign = midpoint ? -1 : 1;
  const out = new Float32Array(sample.length);
  for (let i = 0; i < out.length; i++) {
    const d1 = f(invR0 * f(x0[i] - prevX0[i]));
    const a = f(f(ratio * sample[i]) - f(d0Coeff * x0[i]));
    out[i] = a + d1Sign * f(d1Coeff * d1);
  }
  return out;
}

// LMSDiscreteScheduler of diffusers 0.8.1: linear multistep on the sigma ODE, order up to 4.
import type { TorchGenerator } from "../rng/torch-generator.js";
import type { SchedulerConfig } from "./config.js";
import { checkSameLength, f } from "./common.js";
import { SigmaScheduler } from "./sigma-base.js";
import type { Scheduler } from "./types.js";

// diffusers 0.8.1 computes each LMS coefficient with scipy's `quad` over an integrand evaluated
// with torch float32 scalars. For these polynomials (degree <= 3) quad's first 21-point
// Gauss-Kronrod estimate already meets its tolerance and is returned, so we evaluate that rule on
// the same float32 integrand: this gives the reference coefficients bit for bit, where the exact
// integral (`lagrangeBasisIntegral`) differs from them in the last float32 bit now and then.

// Abscissae and weights of the 21-point Kronrod rule on [-1, 1] (QUADPACK's qk21; the odd entries,
// counting from 1, are the 10-point Gauss nodes), largest abscissa first, centre last.
const XGK = [
  0.995657163025808080735527280689003, 0.973906528517171720077964012084452, 0.930157491355708226001207180059508,
  0.865063366688984510732096688423493, 0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
  0.562757134668604683339000099272694, 0.433395394129247190799265943165784, 0.294392862701460198131126603103866,
  0.14887433898163121088482600112972, 0,
];
const WGK = [
  0.011694638867371874278064396062192, 0.03255816230796472747881897245939, 0.05475589657435199603138130024458,
  0.07503967481091995276704314091619, 0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
  0.123491976262065851077958109831074, 0.134709217311473325928054001771707, 0.142775938577060080797094273138717,
  0.147739104901338491374841515972068, 0.149445554002916905664936468389821,
];

/** The 21-point Gauss-Kronrod estimate of the integral of `fn` from a to b, summed in QUADPACK's order. */
export function kronrod21(fn: (x: number) => number, a: number, b: number): number {
  const centre = 0.5 * (a + b);
  const half = 0.5 * (b - a);
  let sum = WGK[10] * fn(centre);
  // The Gauss abscissae first (0-based indices 1, 3, ..., 9), then the Kronrod ones (0, 2, ..., 8).
  for (const start of [1, 0]) {
    for (let j = start; j < 10; j += 2) {
      const x = half * XGK[j];
      sum += WGK[j] * (fn(centre - x) + fn(centre + x));
    }
  }
  return sum * half;
}

/**
 * The Lagrange basis polynomial that is 1 at nodes[current] and 0 at the other nodes, evaluated as
 * diffusers does: `tau` and every factor in float32 (torch scalars), the product accumulated in float32.
 */
function lagrangeBasisF32(nodes: readonly number[], current: number, tau: number): number {
  if (nodes.length === 1) return 1;
  const t = f(tau);
  let prod = 1;
  for (let k = 0; k < nodes.length; k++) {
    if (k === current) continue;
    prod = f(prod * f(f(t - nodes[k]) / f(nodes[current] - nodes[k])));
  }
  return prod;
}

/** diffusers' get_lms_coefficient: quad's estimate of the basis integral from lo to hi. */
export function lmsCoefficient(nodes: readonly number[], current: number, lo: number, hi: number): number {
  return kronrod21((tau) => lagrangeBasisF32(nodes, current, tau), lo, hi);
}

// 3-point Gauss-Legendre rule: exact for polynomials up to degree 5.
const GL_NODES = [-Math.sqrt(3 / 5), 0, Math.sqrt(3 / 5)];
const GL_WEIGHTS = [5 / 9, 8 / 9, 5 / 9];

/**
 * The exact integral (up to float64 rounding) from `lo` to `hi` of the Lagrange basis polynomial
 * that is 1 at nodes[current] and 0 at the other nodes (degree <= 4 here).
 */
export function lagrangeBasisIntegral(nodes: readonly number[], current: number, lo: number, hi: number): number {
  const half = (hi - lo) / 2;
  const mid = (hi + lo) / 2;
  let sum = 0;
  for (let q = 0; q < GL_NODES.length; q++) {
    const tau = mid + half * GL_NODES[q];
    let prod = 1;
    for (let k = 0; k < nodes.length; k++) {
      if (k === current) continue;
      prod *= (tau - nodes[k]) / (nodes[current] - nodes[k]);
    }
    sum += GL_WEIGHTS[q] * prod;
  }
  return sum * half;
}

export class LMSDiscreteScheduler extends SigmaScheduler implements Scheduler {
  readonly name = "lms" as const;
  readonly className = "LMSDiscreteScheduler";
  readonly acceptsGenerator = false;
  /** The highest order used (diffusers' step(order=4)). */
  readonly maxOrder = 4;
  #derivatives: Float32Array[] = [];

  constructor(config: Partial<SchedulerConfig> = {}, steps?: number, options: { karras?: boolean } = {}) {
    super(config, options.karras ?? false);
    if (steps !== undefined) this.setTimesteps(steps);
  }

  protected resetState(): void {
    this.#derivatives = [];
  }

  /** The coefficients for step `stepIndex` at `order` (diffusers' get_lms_coefficient for each current order). */
  lmsCoefficients(order: number, stepIndex: number): number[] {
    const s = this.sigmas;
    const nodes = Array.from({ length: order }, (_, k) => s[stepIndex - k]);
    return nodes.map((_, c) => lmsCoefficient(nodes, c, s[stepIndex], s[stepIndex + 1]));
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, _generator?: TorchGenerator): Float32Array {
    const n = checkSameLength("LMSDiscreteScheduler.step", modelOutput, sample);
    const index = this.stepIndex(t, "LMSDiscreteScheduler.step");
    const sigma = this.sigmas[index];
    const derivative = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const x0 = f(sample[i] - f(sigma * modelOutput[i]));
      derivative[i] = f(sample[i] - x0) / sigma;
    }
    this.#derivatives.push(derivative);
    if (this.#derivatives.length > this.maxOrder) this.#derivatives.shift();
    // The order follows the absolute step index, even when a run starts mid-schedule (img2img) and
    // fewer derivatives exist; the sum then stops at the shorter list (Python's zip).
    const order = Math.min(index + 1, this.maxOrder);
    const coeffs = this.lmsCoefficients(order, index).map(f);
    const terms = Math.min(coeffs.length, this.#derivatives.length);
    const acc = new Float32Array(n);
    for (let j = 0; j < terms; j++) {
      const d = this.#derivatives[this.#derivatives.length - 1 - j];
      const c = coeffs[j];
      for (let i = 0; i < n; i++) acc[i] = acc[i] + f(c * d[i]);
    }
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = sample[i] + acc[i];
    return out;
  }
}

// float32 logf, sinf and cosf with the results of glibc (2.28 and later) on x86-64, so that
// TorchGenerator reproduces PyTorch's float Box-Muller kernel bit for bit.
//
// glibc's single-precision log/sin/cos (from ARM's Optimized Routines) evaluate a short polynomial in
// double precision and round once to float. Their polynomial error, although far below a float ulp,
// moves about 1% of the results to the other float neighbour of the exact value, so a correctly
// rounded log/sin/cos (Math.log/sin/cos then Math.fround) does not reproduce torch's output. Here
// the same algorithms are evaluated with the same constants. On CPUs with FMA (every x86-64 CPU
// with AVX2) glibc selects builds in which the compiler fused each `a * b + c` into one fma; `fma`
// below emulates that.
//
// The constants (table and polynomial coefficients) are those published in ARM Optimized Routines
// (math/logf_data.c, math/sincosf_data.c; Copyright (c) 2017-2018 Arm Limited, MIT licence), which
// glibc uses unchanged.

import { JsdError } from "../errors.js";

/** Parses a C99 hexadecimal float literal such as "-0x1.57bf7808caadep-2" (at most 53 significant bits). */
export function hexFloat(literal: string): number {
  const m = /^(-?)0x([0-9a-f]+)(?:\.([0-9a-f]*))?p([+-]?\d+)$/i.exec(literal);
  if (!m) throw new JsdError("JSD_INTERNAL", `bad hex float ${literal}`);
  const frac = m[3] ?? "";
  const digits = BigInt("0x" + m[2] + frac);
  if (digits >= 1n << 53n) throw new JsdError("JSD_INTERNAL", `hex float ${literal} has more than 53 bits`);
  const value = Number(digits) * 2 ** (Number(m[4]) - 4 * frac.length);
  return m[1] === "-" ? -value : value;
}

const SPLIT = 134217729; // 2^27 + 1, Veltkamp splitting

/**
 * a * b + c with a single rounding (up to the rare cases where the sum of the rounded product and
 * its error term rounds twice, which does not matter here: results are rounded to float32 next).
 */
export function fma(a: number, b: number, c: number): number {
  const p = a * b;
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  const pErr = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
  const s = p + c;
  const v = s - p;
  const sErr = (p - (s - v)) + (c - v);
  return s + (sErr + pErr);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function asUint(x: number): number {
  f32[0] = x;
  return u32[0];
}

function asFloat(i: number): number {
  u32[0] = i >>> 0;
  return f32[0];
}

// ---- logf --------------------------------------------------------------------------------

// log(x) = log1p(z/c - 1) + log(c) + k*ln2 with x = 2^k z, z in [OFF, 2 OFF); 16 subintervals with
// 1/c and log(c) tabulated.
const LOGF_INVC = [
  "0x1.661ec79f8f3bep+0", "0x1.571ed4aaf883dp+0", "0x1.49539f0f010bp+0", "0x1.3c995b0b80385p+0",
  "0x1.30d190c8864a5p+0", "0x1.25e227b0b8eap+0", "0x1.1bb4a4a1a343fp+0", "0x1.12358f08ae5bap+0",
  "0x1.0953f419900a7p+0", "0x1p+0", "0x1.e608cfd9a47acp-1", "0x1.ca4b31f026aap-1",
  "0x1.b2036576afce6p-1", "0x1.9c2d163a1aa2dp-1", "0x1.886e6037841edp-1", "0x1.767dcf5534862p-1",
].map(hexFloat);
const LOGF_LOGC = [
  "-0x1.57bf7808caadep-2", "-0x1.2bef0a7c06ddbp-2", "-0x1.01eae7f513a67p-2", "-0x1.b31d8a68224e9p-3",
  "-0x1.6574f0ac07758p-3", "-0x1.1aa2bc79c81p-3", "-0x1.a4e76ce8c0e5ep-4", "-0x1.1973c5a611cccp-4",
  "-0x1.252f438e10c1ep-5", "0x0p+0", "0x1.aa5aa5df25984p-5", "0x1.c5e53aa362eb4p-4",
  "0x1.526e57720db08p-3", "0x1.bc2860d22477p-3", "0x1.1058bc8a07ee1p-2", "0x1.4043057b6ee09p-2",
].map(hexFloat);
const LOGF_LN2 = hexFloat("0x1.62e42fefa39efp-1");
const LOGF_A0 = hexFloat("-0x1.00ea348b88334p-2");
const LOGF_A1 = hexFloat("0x1.5575b0be00b6ap-2");
const LOGF_A2 = hexFloat("-0x1.ffffef20a4123p-2");
const LOGF_OFF = 0x3f330000;

/** glibc's logf for positive normal floats (the only inputs TorchGenerator passes); others via Math.log. */
export function glibcLogf(x: number): number {
  const ix = asUint(x);
  if (ix === 0x3f800000) return 0;
  if (ix < 0x00800000 || ix >= 0x7f800000) return Math.fround(Math.log(x));
  const tmp = (ix - LOGF_OFF) >>> 0;
  const i = (tmp >>> 19) & 15;
  const k = (tmp | 0) >> 23; // arithmetic shift
  const z = asFloat(ix - (tmp & 0xff800000));
  const r = fma(z, LOGF_INVC[i], -1);
  const y0 = fma(k, LOGF_LN2, LOGF_LOGC[i]);
  const r2 = r * r;
  let y = fma(LOGF_A1, r, LOGF_A2);
  y = fma(LOGF_A0, r2, y);
  y = fma(y, r2, y0 + r);
  return Math.fround(y);
}

// ---- sinf / cosf -------------------------------------------------------------------------

const HPI_INV_2P24 = hexFloat("0x1.45f306dc9c883p+23"); // 2/pi * 2^24
const HPI = hexFloat("0x1.921fb54442d18p0"); // pi/2
const C0 = 1;
const C1 = hexFloat("-0x1.ffffffd0c621cp-2");
const C2 = hexFloat("0x1.55553e1068f19p-5");
const C3 = hexFloat("-0x1.6c087e89a359dp-10");
const C4 = hexFloat("0x1.99343027bf8c3p-16");
const S1 = hexFloat("-0x1.555545995a603p-3");
const S2 = hexFloat("0x1.1107605230bc4p-7");
const S3 = hexFloat("-0x1.994eb3774cf24p-13");
const QUADRANT_SIGN = [1, -1, -1, 1];

/** sin(x) for even n, cos(x) for odd n (negated when `negCos`), x small; rounded to float. */
function poly(x: number, x2: number, n: number, negCos: boolean): number {
  if ((n & 1) === 0) {
    const x3 = x * x2;
    const s1 = fma(x2, S3, S2);
    const x7 = x3 * x2;
    const s = fma(x3, S1, x);
    return Math.fround(fma(x7, s1, s));
  }
  const sg = negCos ? -1 : 1;
  const x4 = x2 * x2;
  const c2 = fma(x2, sg * C4, sg * C3);
  const c1 = fma(x2, sg * C1, sg * C0);
  const x6 = x4 * x2;
  const c = fma(x4, sg * C2, c1);
  return Math.fround(fma(x6, c2, c));
}

/** Reduction for 0.75 <= |x| < 120: x - n*pi/2 with n the nearest integer to x*2/pi. */
function reduce(x: number): [number, number] {
  const r = x * HPI_INV_2P24;
  const n = (Math.trunc(r) + 0x800000) >> 24;
  return [fma(-n, HPI, x), n];
}

/** glibc's sinf for |x| < 120 (TorchGenerator's range is [0, 2 pi]); correctly rounded beyond. */
export function glibcSinf(x: number): number {
  const top = (asUint(x) >>> 20) & 0x7ff;
  if (top < 0x3f4) {
    if (top < 0x398) return x;
    return poly(x, x * x, 0, false);
  }
  if (top < 0x42f) {
    const [r, n] = reduce(x);
    return poly(r * QUADRANT_SIGN[n & 3], r * r, n, (n & 2) !== 0);
  }
  return Math.fround(Math.sin(x));
}

/** glibc's cosf for |x| < 120; correctly rounded beyond. */
export function glibcCosf(x: number): number {
  const top = (asUint(x) >>> 20) & 0x7ff;
  if (top < 0x3f4) {
    if (top < 0x398) return 1;
    return poly(x, x * x, 1, false);
  }
  if (top < 0x42f) {
    const [r, n] = reduce(x);
    return poly(r * QUADRANT_SIGN[n & 3], r * r, n ^ 1, (n & 2) !== 0);
  }
  return Math.fround(Math.cos(x));
}


// A random generator that reproduces PyTorch 1.13's CPU generator bit for bit:
//
//   g = torch.Generator("cpu").manual_seed(seed)
//   torch.randn(shape, generator=g, dtype=torch.float32)
//
// with PyTorch's portable (non-AVX2) normal kernel. How PyTorch computes it:
//
// - The engine is a standard 32-bit Mersenne Twister (MT19937). manual_seed takes the seed as a
//   uint64 (a negative Python int is reinterpreted as two's complement), but the twister is
//   initialised from the low 32 bits only, so seeds 2^32 + 17 and 17 give the same stream.
// - randn of 16 or more elements (float32, contiguous) first fills every element with a uniform
//   float in [0, 1) built from the low 24 bits of one 32-bit draw, then turns each block of 16
//   into normals with Box-Muller in float32: element j (j < 8) and j + 8 are the cosine and sine
//   branches of the pair (1 - u[j], u[j + 8]). When the count is not a multiple of 16, 16 fresh
//   uniforms are drawn for the last 16 positions and that block is transformed again, which
//   overwrites the tail of the previous pass.
// - randn of fewer than 16 elements is computed per element in double precision: two uniform
//   doubles from 53-bit draws (each 64-bit draw takes two 32-bit outputs, the first one as the high
//   word; the first uniform gives the angle 2*pi*u1, the second the radius sqrt(-2 log(1 - u2))),
//   Box-Muller, the cosine branch returned and the sine branch cached on the generator. The
//   next small draw uses the cached value first, even in a later call. Only manual_seed clears it.
//
// Values depend only on the element count, not on the shape, because the tensor is contiguous.
//
// PyTorch's float kernel calls the C library's logf/cosf/sinf, whose results differ from the
// correctly rounded ones in about 1% of cases; glibc-libm.ts reproduces glibc's (x86-64, 2.28+).
import { JsdError } from "../errors.js";
import { glibcCosf, glibcLogf, glibcSinf } from "./glibc-libm.js";

const N = 624;
const M = 397;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const MATRIX_A = 0x9908b0df;

const TWO_POW_M24 = 1 / 16777216; // 2^-24
const TWO_POW_32 = 4294967296;
const TWO_POW_M53 = 1 / 9007199254740992; // 2^-53
// `2.0f * c10::pi<double>` in PyTorch's float kernel: a double.
const TWO_PI = 2 * Math.PI;

const U64_MASK = (1n << 64n) - 1n;

/** Normalises a seed the way torch.Generator.manual_seed does: to a uint64. */
function toUint64Seed(seed: number | bigint): bigint {
  let value: bigint;
  if (typeof seed === "bigint") {
    value = seed;
  } else {
    if (!Number.isInteger(seed)) throw new JsdError("JSD_INVALID_ARGUMENT", `seed must be an integer, got ${seed}`);
    if (!Number.isSafeInteger(seed)) {
      throw new JsdError("JSD_INVALID_ARGUMENT", `seed ${seed} is not a safe integer; pass it as a bigint to keep every bit`);
    }
    value = BigInt(seed);
  }
  if (value < -(1n << 63n) || value >= 1n << 64n) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `seed ${value} is outside the int64/uint64 range torch accepts`);
  }
  return value & U64_MASK;
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new JsdError("JSD_INVALID_ARGUMENT", `invalid shape ${JSON.stringify(shape)}`);
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new JsdError("JSD_INVALID_ARGUMENT", `shape ${JSON.stringify(shape)} is too large`);
  return n;
}

/** Bit-compatible stand-in for `torch.Generator("cpu")` (PyTorch 1.13) with `torch.randn`. */
export class TorchGenerator {
  readonly #state = new Uint32Array(N);
  #index = N;
  #seed = 0n;
  /** The cached second Box-Muller value of the double-precision path (`next_double_normal_sample`). */
  #nextDoubleNormal: number | null = null;

  constructor(seed: number | bigint) {
    this.manualSeed(seed);
  }

  /** The seed as torch stores it (`g.initial_seed()`): a uint64. */
  get seed(): bigint {
    return this.#seed;
  }

  /** Re-seeds the generator, like `g.manual_seed(seed)`; also clears the cached normal value. Returns `this`. */
  manualSeed(seed: number | bigint): this {
    this.#seed = toUint64Seed(seed);
    const state = this.#state;
    state[0] = Number(this.#seed & 0xffffffffn);
    for (let i = 1; i < N; i++) {
      const prev = state[i - 1];
      state[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.#index = N;
    this.#nextDoubleNormal = null;
    return this;
  }

  /** An independent copy with the same state (engine position and cached normal value). */
  clone(): TorchGenerator {
    const copy = new TorchGenerator(0);
    copy.#state.set(this.#state);
    copy.#index = this.#index;
    copy.#seed = this.#seed;
    copy.#nextDoubleNormal = this.#nextDoubleNormal;
    return copy;
  }

  #twist(): void {
    const s = this.#state;
    let k = 0;
    for (; k < N - M; k++) {
      const y = (s[k] & UPPER_MASK) | (s[k + 1] & LOWER_MASK);
      s[k] = s[k + M] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    for (; k < N - 1; k++) {
      const y = (s[k] & UPPER_MASK) | (s[k + 1] & LOWER_MASK);
      s[k] = s[k + M - N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    const y = (s[N - 1] & UPPER_MASK) | (s[0] & LOWER_MASK);
    s[N - 1] = s[M - 1] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    this.#index = 0;
  }

  /** The next 32-bit output of the engine (`g.random()` in C++). */
  nextUint32(): number {
    if (this.#index >= N) this.#twist();
    let y = this.#state[this.#index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** A uniform double in [0, 1) from a 53-bit draw, as `at::uniform_real_distribution<double>(0, 1)`. */
  #uniformDouble(): number {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  /** The double-precision per-element path (`at::normal_distribution<double>`), mean 0, std 1. */
  #normalDouble(): number {
    const cached = this.#nextDoubleNormal;
    if (cached !== null) {
      this.#nextDoubleNormal = null;
      return cached;
    }
    const u1 = this.#uniformDouble();
    const u2 = this.#uniformDouble();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = TWO_PI * u1;
    this.#nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Box-Muller on one block of 16 uniforms at `offset`, in float32 arithmetic. */
  static #normal16(data: Float32Array, offset: number): void {
    const f = Math.fround;
    for (let j = 0; j < 8; j++) {
      const u1 = 1 - data[offset + j]; // exact: the uniforms have 24 bits
      const u2 = data[offset + j + 8];
      const radius = f(Math.sqrt(-2 * glibcLogf(u1)));
      const theta = f(TWO_PI * u2);
      data[offset + j] = radius * glibcCosf(theta);
      data[offset + j + 8] = radius * glibcSinf(theta);
    }
  }

  /** `torch.randn(shape, generator=g, dtype=torch.float32)`, row-major. */
  randn(shape: readonly number[]): Float32Array {
    const n = numelOf(shape);
    const out = new Float32Array(n);
    if (n >= 16) {
      for (let i = 0; i < n; i++) out[i] = (this.nextUint32() & 0xffffff) * TWO_POW_M24;
      for (let i = 0; i + 16 <= n; i += 16) TorchGenerator.#normal16(out, i);
      if (n % 16 !== 0) {
        const tail = n - 16;
        for (let i = 0; i < 16; i++) out[tail + i] = (this.nextUint32() & 0xffffff) * TWO_POW_M24;
        TorchGenerator.#normal16(out, tail);
      }
    } else {
      for (let i = 0; i < n; i++) out[i] = this.#normalDouble();
    }
    return out;
  }
}

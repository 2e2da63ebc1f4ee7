// The body of cpu_activations.cpp's kernels, one copy per instruction set. Deliberately no include
// guard: cpu_activations.cpp includes this file once per set, each time in a namespace of its own
// with a vector type V (simd_f32.h's, or cpu_activations.cpp's scalar one: F a vector of kLanes floats, M a lane mask) and JSD_ACT_TARGET naming the
// set (a function's target attribute cannot depend on a template parameter). All sets run the same
// operations in the same order, with fused multiply-adds where V has them.
//
// Coefficients: least-squares fits for relative error on Chebyshev nodes, in double, rounded to
// float (the fits' own errors are below 3e-10; float rounding dominates).

// e^x: x = n ln2 + r (ln2 in two parts, Cody and Waite), |r| <= ln2/2, e^r by a degree-6
// polynomial, times 2^n through the exponent bits. x is clamped to [-87, 88], where 2^n is a
// normal float.
JSD_ACT_TARGET inline V::F exp_v(V::F x) {
  x = V::min(V::max(x, V::set1(-87.0f)), V::set1(88.0f));
  const V::F n = V::round(V::mul(x, V::set1(1.44269504f)));
  V::F r = V::fma(n, V::set1(-0.693145752f), x);
  r = V::fma(n, V::set1(-1.42860677e-06f), r);
  V::F p = V::set1(1.382942079e-03f);
  p = V::fma(p, r, V::set1(8.374771103e-03f));
  p = V::fma(p, r, V::set1(4.166835919e-02f));
  p = V::fma(p, r, V::set1(1.666642129e-01f));
  p = V::fma(p, r, V::set1(4.999999106e-01f));
  p = V::fma(p, r, V::set1(1.0f));
  p = V::fma(p, r, V::set1(1.0f));
  return V::mul(p, V::pow2(n));
}

// x * Phi(x), Phi the normal distribution, from z = |x| / sqrt 2:
//   below 0.875, erf(z) = z P(z^2) (degree 6), and Phi(-|x|) = (1 - erf z) / 2;
//   from 0.875 to 4, erfc(z) = e^-z^2 Q(1 / (1 + z/2)) (degree 8), and Phi(-|x|) = erfc(z) / 2;
//   beyond 4, Phi(-|x|) = 0 (erfc 4 = 1.5e-8, below float's resolution of 1 - Phi);
// then Phi(x) = 1 - Phi(-|x|) for x >= 0. The erfc form keeps the negative side's small
// values accurate (PyTorch's 1 + erf(x / sqrt 2) loses them to cancellation; both are far
// below any tolerance).
JSD_ACT_TARGET inline V::F gelu_v(V::F x) {
  const V::F z = V::mul(V::abs(x), V::set1(0.707106781f));
  const V::F w = V::mul(z, z);
  V::F p = V::set1(8.714060095e-05f);
  p = V::fma(p, w, V::set1(-8.220518357e-04f));
  p = V::fma(p, w, V::set1(5.207621492e-03f));
  p = V::fma(p, w, V::set1(-2.686196938e-02f));
  p = V::fma(p, w, V::set1(1.128374115e-01f));
  p = V::fma(p, w, V::set1(-3.761263788e-01f));
  p = V::fma(p, w, V::set1(1.128379226e+00f));
  const V::F tail_small = V::fma(V::mul(z, p), V::set1(-0.5f), V::set1(0.5f));

  const V::F zc = V::min(z, V::set1(4.0f));
  const V::F t = V::div(V::set1(1.0f), V::fma(zc, V::set1(0.5f), V::set1(1.0f)));
  V::F q = V::set1(8.366337046e-03f);
  q = V::fma(q, t, V::set1(8.599068224e-02f));
  q = V::fma(q, t, V::set1(-4.135781825e-01f));
  q = V::fma(q, t, V::set1(5.069509149e-01f));
  q = V::fma(q, t, V::set1(-6.954696774e-02f));
  q = V::fma(q, t, V::set1(3.347437084e-01f));
  q = V::fma(q, t, V::set1(2.627869546e-01f));
  q = V::fma(q, t, V::set1(2.844960988e-01f));
  q = V::fma(q, t, V::set1(-1.299213618e-04f));
  V::F tail_large = V::mul(V::mul(exp_v(V::mul(zc, V::neg(zc))), q), V::set1(0.5f));
  tail_large = V::select(V::gt(z, V::set1(4.0f)), V::set1(0.0f), tail_large);

  const V::F tail = V::select(V::gt(z, V::set1(0.875f)), tail_large, tail_small);  // Phi(-|x|)
  const V::F phi = V::select(V::gt(x, V::set1(0.0f)), V::sub(V::set1(1.0f), tail), tail);
  return V::mul(x, phi);
}

// y / (1 + e^-y), as PyTorch's SiLU.
JSD_ACT_TARGET inline V::F silu_v(V::F y) { return V::div(y, V::add(V::set1(1.0f), exp_v(V::neg(y)))); }

// Runs f over n values in whole vectors, the last partial one through zero-padded copies:
// f(i, count) handles values i .. i + kLanes - 1 of its arrays, count of them valid. (Functors
// with a target attribute of their own, not lambdas: a lambda's body would lose the set's target.)
template <class F>
JSD_ACT_TARGET inline void for_vectors(int64_t n, const F& f) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) f(i, V::kLanes);
  if (i < n) f(i, static_cast<int>(n - i));
}

// A vector of count floats at p (count <= kLanes), zeros past them.
JSD_ACT_TARGET inline V::F load_part(const float* p, int count) {
  if (count == V::kLanes) return V::load(p);
  float buf[V::kLanes] = {};
  for (int j = 0; j < count; ++j) buf[j] = p[j];
  return V::load(buf);
}

JSD_ACT_TARGET inline void store_part(float* p, V::F v, int count) {
  if (count == V::kLanes) return V::store(p, v);
  float buf[V::kLanes];
  V::store(buf, v);
  for (int j = 0; j < count; ++j) p[j] = buf[j];
}

struct Geglu {
  const float *value, *gate;
  float* out;
  JSD_ACT_TARGET void operator()(int64_t i, int count) const {
    store_part(out + i, V::mul(load_part(value + i, count), gelu_v(load_part(gate + i, count))), count);
  }
};

struct Affine {
  const float* x;
  V::F a, b;
  bool silu;
  float* y;
  JSD_ACT_TARGET void operator()(int64_t i, int count) const {
    const V::F v = V::fma(load_part(x + i, count), a, b);
    store_part(y + i, silu ? silu_v(v) : v, count);
  }
};

struct Gelu {
  const float* x;
  float* y;
  JSD_ACT_TARGET void operator()(int64_t i, int count) const { store_part(y + i, gelu_v(load_part(x + i, count)), count); }
};

JSD_ACT_TARGET void geglu_row(const float* value, const float* gate, float* out, int64_t n) { for_vectors(n, Geglu{value, gate, out}); }

JSD_ACT_TARGET void affine_row(const float* x, float scale, float shift, bool silu, float* y, int64_t n) {
  for_vectors(n, Affine{x, V::set1(scale), V::set1(shift), silu, y});
}

JSD_ACT_TARGET void gelu_row(const float* x, float* y, int64_t n) { for_vectors(n, Gelu{x, y}); }

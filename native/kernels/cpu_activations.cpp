// cpu_activations.h's kernels: one copy of cpu_activations_simd.h per instruction set, each over
// its vector type, and the choice among them.
#include "kernels/cpu_activations.h"

#include <cmath>
#include <cstdint>
#include "kernels/kernel_choice.h"
#include "kernels/simd_f32.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JSD_ACT_X86 1
#endif

namespace jsd {

namespace {

struct Kernels {
  const char* name;  // the instruction set
  void (*geglu)(const float*, const float*, float*, int64_t);
  void (*affine)(const float*, float, float, bool, float*, int64_t);
  void (*gelu)(const float*, float*, int64_t);
};

// Plain C++, one float at a time (the compiler may vectorize it for the build's baseline).
namespace generic {
struct V {
  using F = float;
  using M = bool;
  static constexpr int kLanes = 1;
  static F load(const float* p) { return *p; }
  static void store(float* p, F v) { *p = v; }
  static F set1(float v) { return v; }
  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F div(F a, F b) { return a / b; }
  static F fma(F a, F b, F c) { return a * b + c; }
  static F neg(F a) { return -a; }
  static F abs(F a) { return std::fabs(a); }
  static F min(F a, F b) { return a < b ? a : b; }
  static F max(F a, F b) { return a > b ? a : b; }
  static F round(F a) { return std::nearbyint(a); }
  // 2^n for an integral n in [-126, 127].
  static F pow2(F n) {
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float r;
    std::memcpy(&r, &bits, 4);
    return r;
  }
  static M gt(F a, F b) { return a > b; }
  static F select(M m, F a, F b) { return m ? a : b; }
};
#define JSD_ACT_TARGET
#include "kernels/cpu_activations_simd.h"
#undef JSD_ACT_TARGET
constexpr Kernels kKernels{"generic", geglu_row, affine_row, gelu_row};
}  // namespace generic

#if JSD_ACT_X86

namespace avx512 {
#define JSD_ACT_TARGET __attribute__((target("avx512f,fma")))
using V = F32x16;
#include "kernels/cpu_activations_simd.h"
#undef JSD_ACT_TARGET
constexpr Kernels kKernels{"avx512", geglu_row, affine_row, gelu_row};
}  // namespace avx512

namespace avx2 {
#define JSD_ACT_TARGET __attribute__((target("avx2,fma")))
using V = F32x8;
#include "kernels/cpu_activations_simd.h"
#undef JSD_ACT_TARGET
constexpr Kernels kKernels{"avx2", geglu_row, affine_row, gelu_row};
}  // namespace avx2

#endif

const Kernels* generic_kernels() { return &generic::kKernels; }
#if JSD_ACT_X86
const Kernels* avx512_kernels() { return __builtin_cpu_supports("avx512f") ? &avx512::kKernels : nullptr; }
const Kernels* avx2_kernels() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &avx2::kKernels : nullptr; }
const Kernels* (*const candidates[])() = {avx512_kernels, avx2_kernels, generic_kernels};
#else
const Kernels* (*const candidates[])() = {generic_kernels};
#endif

// The best set this CPU runs, or the one JSD_ACTIVATIONS names (a switch for checks: every set
// computes the same operations in the same order, with the same fused multiply-adds, so AVX-512
// and AVX2 give the same bits; the generic copy may round without fusing). A name this CPU does
// not run leaves the generic copy.
const Kernels& choose() {
  const Kernels* k = first_table(candidates, forced_name("JSD_ACTIVATIONS"));
  return k != nullptr ? *k : generic::kKernels;
}

const Kernels& kernels() {
  static const Kernels& chosen = choose();
  return chosen;
}

}  // namespace

void geglu_row(const float* value, const float* gate, float* out, int64_t n) { kernels().geglu(value, gate, out, n); }

void affine_row(const float* x, float scale, float shift, bool silu, float* y, int64_t n) { kernels().affine(x, scale, shift, silu, y, n); }

void gelu_row(const float* x, float* y, int64_t n) { kernels().gelu(x, y, n); }

const char* activations_isa() { return kernels().name; }

double sum_row(const float* x, int64_t n) {
  float part[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) part[j] += x[i + j];
  }
  double s = 0;
  for (int j = 0; j < 16; ++j) s += part[j];
  for (; i < n; ++i) s += x[i];
  return s;
}

double squared_deviations_row(const float* x, int64_t n, float mean) {
  float part[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) part[j] += (x[i + j] - mean) * (x[i + j] - mean);
  }
  double s = 0;
  for (int j = 0; j < 16; ++j) s += part[j];
  for (; i < n; ++i) s += static_cast<double>(x[i] - mean) * (x[i] - mean);
  return s;
}

void layer_norm_row(const float* __restrict x, float mean, float rstd, const float* __restrict weight, const float* __restrict bias,
                    float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * weight[i] + bias[i];
}

}  // namespace jsd

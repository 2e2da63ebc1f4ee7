// cpu_activations.h's kernels: one copy of cpu_activations_simd.h per instruction set, each over
// its vector type, and the choice among them.
#include "kernels/cpu_activations.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/x86_intrinsics.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JSD_ACT_X86 1
#endif

namespace jsd {

namespace {

struct Kernels {
  const char* isa;
  void (*geglu)(const float*, const float*, float*, int64_t);
  void (*affine)(const float*, float, float, bool, float*, int64_t);
  void (*gelu)(const float*, float*, int64_t);
};

// Plain C++, one float at a time (the compiler may vectorize it for the build's baseline).
namespace generic {
struct V {
  using F = float;
  using M = bool;
  static constexpr int kWidth = 1;
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
struct V {
  using F = __m512;
  using M = __mmask16;
  static constexpr int kWidth = 16;
  JSD_ACT_TARGET static F load(const float* p) { return _mm512_loadu_ps(p); }
  JSD_ACT_TARGET static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  JSD_ACT_TARGET static F set1(float v) { return _mm512_set1_ps(v); }
  JSD_ACT_TARGET static F add(F a, F b) { return _mm512_add_ps(a, b); }
  JSD_ACT_TARGET static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  JSD_ACT_TARGET static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  JSD_ACT_TARGET static F div(F a, F b) { return _mm512_div_ps(a, b); }
  JSD_ACT_TARGET static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  JSD_ACT_TARGET static F neg(F a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))); }
  JSD_ACT_TARGET static F abs(F a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MAX))); }
  JSD_ACT_TARGET static F min(F a, F b) { return _mm512_min_ps(a, b); }
  JSD_ACT_TARGET static F max(F a, F b) { return _mm512_max_ps(a, b); }
  JSD_ACT_TARGET static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  JSD_ACT_TARGET static F pow2(F n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  JSD_ACT_TARGET static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  JSD_ACT_TARGET static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
};
#include "kernels/cpu_activations_simd.h"
#undef JSD_ACT_TARGET
constexpr Kernels kKernels{"avx512", geglu_row, affine_row, gelu_row};
}  // namespace avx512

namespace avx2 {
#define JSD_ACT_TARGET __attribute__((target("avx2,fma")))
struct V {
  using F = __m256;
  using M = __m256;
  static constexpr int kWidth = 8;
  JSD_ACT_TARGET static F load(const float* p) { return _mm256_loadu_ps(p); }
  JSD_ACT_TARGET static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  JSD_ACT_TARGET static F set1(float v) { return _mm256_set1_ps(v); }
  JSD_ACT_TARGET static F add(F a, F b) { return _mm256_add_ps(a, b); }
  JSD_ACT_TARGET static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  JSD_ACT_TARGET static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  JSD_ACT_TARGET static F div(F a, F b) { return _mm256_div_ps(a, b); }
  JSD_ACT_TARGET static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  JSD_ACT_TARGET static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  JSD_ACT_TARGET static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  JSD_ACT_TARGET static F min(F a, F b) { return _mm256_min_ps(a, b); }
  JSD_ACT_TARGET static F max(F a, F b) { return _mm256_max_ps(a, b); }
  JSD_ACT_TARGET static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  JSD_ACT_TARGET static F pow2(F n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  JSD_ACT_TARGET static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  JSD_ACT_TARGET static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
};
#include "kernels/cpu_activations_simd.h"
#undef JSD_ACT_TARGET
constexpr Kernels kKernels{"avx2", geglu_row, affine_row, gelu_row};
}  // namespace avx2

#endif

// The best set this CPU runs, or the one JSD_ACTIVATIONS names (a switch for checks: every set
// computes the same operations in the same order, with the same fused multiply-adds, so AVX-512
// and AVX2 give the same bits; the generic copy may round without fusing).
const Kernels& choose() {
  const char* forced = std::getenv("JSD_ACTIVATIONS");
  const auto allowed = [&](const Kernels& k) { return forced == nullptr || *forced == 0 || std::strcmp(forced, k.isa) == 0; };
#if JSD_ACT_X86
  if (__builtin_cpu_supports("avx512f") && allowed(avx512::kKernels)) return avx512::kKernels;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && allowed(avx2::kKernels)) return avx2::kKernels;
#endif
  (void)allowed;
  return generic::kKernels;
}

const Kernels& kernels() {
  static const Kernels& chosen = choose();
  return chosen;
}

}  // namespace

void geglu_row(const float* value, const float* gate, float* out, int64_t n) { kernels().geglu(value, gate, out, n); }

void affine_row(const float* x, float scale, float shift, bool silu, float* y, int64_t n) { kernels().affine(x, scale, shift, silu, y, n); }

void gelu_row(const float* x, float* y, int64_t n) { kernels().gelu(x, y, n); }

const char* activations_isa() { return kernels().isa; }

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

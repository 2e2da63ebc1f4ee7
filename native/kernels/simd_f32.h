// Float vectors for the CPU kernels that are written once over a vector type and compiled per
// instruction set (cpu_activations, cpu_attention_*, cpu_conv_*): the same operations, under the
// same names, on 16 floats with AVX-512F (F32x16) and on 8 with AVX2 (F32x8), both with FMA. Each
// operation carries its set's target attribute, so that a kernel compiled for that set or a larger
// one (AVX-512 with DQ, AMX...) inlines it. F is the vector, M a lane mask (gt, select).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cstdint>

#include "kernels/x86_intrinsics.h"

namespace jsd {

#define JSD_F32X16_TARGET __attribute__((target("avx512f,fma")))

struct F32x16 {
  using F = __m512;
  using M = __mmask16;
  static constexpr int kLanes = 16;
  JSD_F32X16_TARGET static F zero() { return _mm512_setzero_ps(); }
  JSD_F32X16_TARGET static F set1(float v) { return _mm512_set1_ps(v); }
  JSD_F32X16_TARGET static F load(const float* p) { return _mm512_loadu_ps(p); }
  JSD_F32X16_TARGET static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  JSD_F32X16_TARGET static F add(F a, F b) { return _mm512_add_ps(a, b); }
  JSD_F32X16_TARGET static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  JSD_F32X16_TARGET static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  JSD_F32X16_TARGET static F div(F a, F b) { return _mm512_div_ps(a, b); }
  JSD_F32X16_TARGET static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  JSD_F32X16_TARGET static F neg(F a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))); }
  JSD_F32X16_TARGET static F abs(F a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MAX))); }
  JSD_F32X16_TARGET static F min(F a, F b) { return _mm512_min_ps(a, b); }
  JSD_F32X16_TARGET static F max(F a, F b) { return _mm512_max_ps(a, b); }
  JSD_F32X16_TARGET static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for an integral n in [-126, 127], through the exponent bits.
  JSD_F32X16_TARGET static F pow2(F n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  JSD_F32X16_TARGET static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  JSD_F32X16_TARGET static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
};

#undef JSD_F32X16_TARGET

#define JSD_F32X8_TARGET __attribute__((target("avx2,fma")))

struct F32x8 {
  using F = __m256;
  using M = __m256;
  static constexpr int kLanes = 8;
  JSD_F32X8_TARGET static F zero() { return _mm256_setzero_ps(); }
  JSD_F32X8_TARGET static F set1(float v) { return _mm256_set1_ps(v); }
  JSD_F32X8_TARGET static F load(const float* p) { return _mm256_loadu_ps(p); }
  JSD_F32X8_TARGET static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  JSD_F32X8_TARGET static F add(F a, F b) { return _mm256_add_ps(a, b); }
  JSD_F32X8_TARGET static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  JSD_F32X8_TARGET static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  JSD_F32X8_TARGET static F div(F a, F b) { return _mm256_div_ps(a, b); }
  JSD_F32X8_TARGET static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  JSD_F32X8_TARGET static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  JSD_F32X8_TARGET static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  JSD_F32X8_TARGET static F min(F a, F b) { return _mm256_min_ps(a, b); }
  JSD_F32X8_TARGET static F max(F a, F b) { return _mm256_max_ps(a, b); }
  JSD_F32X8_TARGET static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  JSD_F32X8_TARGET static F pow2(F n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  JSD_F32X8_TARGET static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  JSD_F32X8_TARGET static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
};

#undef JSD_F32X8_TARGET

}  // namespace jsd

#endif

// The Simd struct of cpu_attention_tiles.h for AVX-512 (F and DQ): 16-float vectors, register
// tiles of 4 query vectors by 6 keys or 5 channels. Deliberately no include guard: the AVX-512
// and AMX kernels include it in their own namespaces, with JSD_ATTENTION_TARGET naming their
// instruction sets; it expects simd_f32.h.

struct Simd : F32x16 {
  using V = F;
  static constexpr int kRowVectors = 4;
  static constexpr int kScoreKeys = 6;
  static constexpr int kValueChannels = 5;

  // 2^x: f = x - floor(x) in [0, 1) by vreduceps, 2^f by a polynomial fitted for relative error
  // (below 2e-7 in float), times 2^floor(x) by vscalefps, which also underflows to 0. Seven
  // vector instructions, where e^x by a round-to-nearest reduction and a Taylor series took 12.
  JSD_ATTENTION_TARGET static V exp2(V x) {
    const V f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    V p = _mm512_set1_ps(1.8825974548235536e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.973280899226665e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.584403872489929e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.401454746723175e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93154513835907e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999998807907104e-1f));
    return _mm512_scalef_ps(p, x);
  }

  JSD_ATTENTION_TARGET static __mmask16 first(int64_t count) {
    return count >= 16 ? static_cast<__mmask16>(0xffff) : count > 0 ? static_cast<__mmask16>((1u << count) - 1) : static_cast<__mmask16>(0);
  }
  // base[i * stride] for the first count lanes, zero past them.
  JSD_ATTENTION_TARGET static V gather(const float* base, int64_t stride, int64_t count) {
    const __m512i index = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(static_cast<int>(stride)));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), first(count), index, base, 4);
  }
  JSD_ATTENTION_TARGET static void store_first(float* p, V x, int64_t count) { _mm512_mask_storeu_ps(p, first(count), x); }
};

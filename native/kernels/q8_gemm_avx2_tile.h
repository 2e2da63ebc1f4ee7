// The register tile of q8_gemm_avx2.cpp's tables, one template for both: the dot-product step is
// the parameter Dot. Deliberately no include guard: q8_gemm_avx2.cpp includes this file once per
// instruction set, each time in a namespace of its own and with JSD_AVX2_TILE_TARGET naming that
// set, because a function's target attribute cannot depend on a template parameter and the two
// tables must not share one target (with AVX-VNNI enabled, clang may fuse the plain table's
// maddubs + madd + add into vpdpwssd, which an AVX2-only CPU cannot run). It expects <immintrin.h>,
// q8_gemm_isa.h, an AVX2 quantize_rows and the weight steps Q8Weights and Q4Weights in scope.
//
// A 16-row weight group is two 256-bit registers of int32 (rows 0..7, 8..15). Per 32-wide block:
// int32 accumulators (Dot::kOffsets: start at the record's offset, for u8 x s8 products of the
// stored weights, offset / 16 for q4_0's; else at 0), eight dot-product steps of 4 bytes per row, then
// sum += float(acc) * (dw * dx) with fma, in the order of q8_gemm_avx512.cpp, so that the results
// are bit for bit those of the AVX-512 table.

// One register tile: 16 output rows (one weight group) by MT activation rows, over all of k.
// Weights reads the stored quants of a step (q8_0 or q4_0 groups), Dot multiplies them.
template <class Weights, class Dot, int MT>
JSD_AVX2_TILE_TARGET inline void gemm_tile(const uint8_t* quants, const uint16_t* scales, int64_t nb, const uint8_t* x, int64_t k,
                                           int64_t row_bytes, float* out, int64_t ldo) {
  __m256 sum[MT][2];
  for (int m = 0; m < MT; ++m) sum[m][0] = sum[m][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256 dw0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + b * kQ8Group)));
    const __m256 dw1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + b * kQ8Group + 8)));
    const uint8_t* wb = quants + b * Weights::kBlockBytes;
    __m256i acc[MT][2];
    for (int m = 0; m < MT; ++m) {
      const int32_t offset = Dot::kOffsets ? Weights::offset(reinterpret_cast<const int32_t*>(x + m * row_bytes + k + 4 * nb)[b]) : 0;
      acc[m][0] = acc[m][1] = _mm256_set1_epi32(offset);
    }
#pragma GCC unroll 8
    for (int i = 0; i < kQ8Block / 4; ++i) {
      // One load (and, for the plain table, one abs) of the weights feeds all MT rows.
      const typename Dot::Weight w0 = Dot::prepare(Weights::load(wb, i, 0));
      const typename Dot::Weight w1 = Dot::prepare(Weights::load(wb, i, 1));
      for (int m = 0; m < MT; ++m) {
        int32_t xi;
        std::memcpy(&xi, x + m * row_bytes + b * kQ8Block + 4 * i, 4);
        const __m256i xv = _mm256_set1_epi32(xi);
        acc[m][0] = Dot::dot(acc[m][0], w0, xv);
        acc[m][1] = Dot::dot(acc[m][1], w1, xv);
      }
    }
    for (int m = 0; m < MT; ++m) {
      const __m256 dx = _mm256_set1_ps(reinterpret_cast<const float*>(x + m * row_bytes + k)[b]);
      sum[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[m][0]), _mm256_mul_ps(dw0, dx), sum[m][0]);
      sum[m][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[m][1]), _mm256_mul_ps(dw1, dx), sum[m][1]);
    }
  }
  for (int m = 0; m < MT; ++m) {
    _mm256_storeu_ps(out + m * ldo, sum[m][0]);
    _mm256_storeu_ps(out + m * ldo + 8, sum[m][1]);
  }
}

// Dot multiplies q8_0 groups, Q4Dot q4_0 groups.
template <class Dot, class Q4Dot, int... MT>
constexpr Q8Kernels make_table(const char* name, std::integer_sequence<int, MT...>) {
  return Q8Kernels{name, quantize_rows, static_cast<int>(sizeof...(MT)), {&gemm_tile<Q8Weights, Dot, MT + 1>...},
                   {&gemm_tile<Q4Weights, Q4Dot, MT + 1>...}};
}

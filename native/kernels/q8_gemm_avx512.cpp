// q8_gemm.h's kernel for x86 CPUs with AVX-512 VNNI: 16 output rows in each 512-bit register,
// tiles of 16 rows by 12 activation rows, so every weight load feeds 12 VNNI dot products
// (vpdpbusd, unsigned stored weights by signed activations; the records' offsets undo the +128).
// The same tile reads q4_0 groups (q8_gemm.h), the nibbles unpacked in registers.
#include <cstring>
#include <utility>

#include "kernels/q8_gemm_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__clang__)
#include <immintrin.h>
#else
// gcc 12's AVX-512 headers trip its own uninitialized-variable warning (gcc bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace jsd {

#define JSD_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

namespace {

constexpr int kBlock = kQ8Block;
constexpr int kGroup = kQ8Group;
constexpr int kTileRows = 12;  // activation rows per register tile

// Rows ith, ith + nth, ... of x to the activation records.
JSD_VNNI_TARGET void quantize_rows(const float* x, int64_t rows, int64_t k, size_t x_stride, uint8_t* records, int ith, int nth) {
  const int64_t nb = k / kBlock;
  const __m512 sign_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t m = ith; m < rows; m += nth) {
    const float* in = reinterpret_cast<const float*>(reinterpret_cast<const char*>(x) + m * x_stride);
    const Q8Record out = q8_activation_record(records, m, k);
    for (int64_t b = 0; b < nb; ++b) {
      const __m512 lo = _mm512_loadu_ps(in + b * kBlock);
      const __m512 hi = _mm512_loadu_ps(in + b * kBlock + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(lo, sign_mask), _mm512_and_ps(hi, sign_mask)));
      const float d = amax / 127.0f;
      const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
      // Round to nearest (the default rounding mode), as ggml's own q8_0 quantizer does.
      const __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, id));
      const __m512i qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, id));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.quants + b * kBlock), _mm512_cvtsepi32_epi8(qlo));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.quants + b * kBlock + 16), _mm512_cvtsepi32_epi8(qhi));
      out.scales[b] = d;
      out.offsets[b] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi));
    }
  }
}

// The weight steps of a tile: Weights::load(wb, i) gives the 16 rows' stored quants for values
// 4i .. 4i+3 of each row's block (unsigned), from the block's bytes at wb; offset(o) is where the
// block's int32 accumulator starts for a record's offset o (-128 * the block's activation sum).
// q8_0: one 64-byte load per step, +128 stored.
struct Q8Weights {
  static constexpr int kBlockBytes = kGroup * kBlock;
  JSD_VNNI_TARGET static __m512i load(const uint8_t* wb, int i) { return _mm512_loadu_si512(wb + i * 64); }
  static int32_t offset(int32_t o) { return o; }
};

// q4_0: one 64-byte load per two steps, low nibbles for steps 0..3, high ones for 4..7; stored
// 0..15 for values q - 8, so the accumulator starts at -8 * sum = o / 16 (exact).
struct Q4Weights {
  static constexpr int kBlockBytes = kGroup * kBlock / 2;
  JSD_VNNI_TARGET static __m512i load(const uint8_t* wb, int i) {
    const __m512i raw = _mm512_loadu_si512(wb + (i & 3) * 64);
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    return _mm512_and_si512(i < 4 ? raw : _mm512_srli_epi16(raw, 4), nibble);
  }
  static int32_t offset(int32_t o) { return o / 16; }
};

// One register tile: 16 output rows (one weight group) by MT activation rows, over all of k.
template <class Weights, int MT>
JSD_VNNI_TARGET inline void gemm_tile(const uint8_t* quants, const uint16_t* scales, int64_t nb, const uint8_t* x, int64_t k,
                                      int64_t row_bytes, float* out, int64_t ldo) {
  __m512 sum[MT];
  for (int m = 0; m < MT; ++m) sum[m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * kGroup)));
    const uint8_t* wb = quants + b * Weights::kBlockBytes;
    __m512i acc[MT];
    for (int m = 0; m < MT; ++m) {
      acc[m] = _mm512_set1_epi32(Weights::offset(reinterpret_cast<const int32_t*>(x + m * row_bytes + k + 4 * nb)[b]));
    }
#pragma GCC unroll 8
    for (int i = 0; i < kBlock / 4; ++i) {
      const __m512i w = Weights::load(wb, i);
      for (int m = 0; m < MT; ++m) {
        int32_t xi;
        std::memcpy(&xi, x + m * row_bytes + b * kBlock + 4 * i, 4);
        acc[m] = _mm512_dpbusd_epi32(acc[m], w, _mm512_set1_epi32(xi));
      }
    }
    for (int m = 0; m < MT; ++m) {
      const float dx = reinterpret_cast<const float*>(x + m * row_bytes + k)[b];
      sum[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[m]), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), sum[m]);
    }
  }
  for (int m = 0; m < MT; ++m) _mm512_storeu_ps(out + m * ldo, sum[m]);
}

template <int... MT>
constexpr Q8Kernels make_table(std::integer_sequence<int, MT...>) {
  return Q8Kernels{"q8-vnni", quantize_rows, kTileRows, {&gemm_tile<Q8Weights, MT + 1>...}, {&gemm_tile<Q4Weights, MT + 1>...}};
}

}  // namespace

const Q8Kernels* q8_kernels_avx512() {
  static constexpr Q8Kernels table = make_table(std::make_integer_sequence<int, kTileRows>{});
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  return cpu ? &table : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const Q8Kernels* q8_kernels_avx512() { return nullptr; }
}  // namespace jsd

#endif

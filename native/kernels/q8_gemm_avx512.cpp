// q8_gemm.h's kernel for x86 CPUs with AVX-512 VNNI: 16 output rows in each 512-bit register,
// tiles of 16 rows by 12 activation rows, so every weight load feeds 12 VNNI dot products
// (vpdpbusd, unsigned stored weights by signed activations; the records' offsets undo the +128).
// The same tile reads q4_0 groups (q8_gemm.h), the nibbles unpacked in registers.
#include <cstring>
#include <utility>

#include "kernels/q8_gemm_isa.h"
#include "kernels/x86_intrinsics.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

namespace jsd {

#define JSD_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

namespace {

constexpr int kBlock = kQ8Block;
constexpr int kGroup = kQ8Group;
constexpr int kTileRows = 12;  // activation rows per register tile

// One block's record entries the slow way: max |x| by a horizontal reduction, two scalar
// divisions. quantize_rows does sixteen blocks at a time with the same arithmetic where it can.
JSD_VNNI_TARGET inline void quantize_block(const float* in, const Q8Record& out, int64_t b) {
  const __m512 sign_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
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

// Sixteen vectors to one whose lane 4j + q holds vector 4q + j's reduction by op (max or add):
// four rounds of pairing halves, quarters, pairs and single lanes, 30 shuffles in all where one
// reduction per vector takes 8.
struct MaxOp {
  JSD_VNNI_TARGET __m512 operator()(__m512 a, __m512 b) const { return _mm512_max_ps(a, b); }
};
struct AddOp {  // int32 lanes
  JSD_VNNI_TARGET __m512 operator()(__m512 a, __m512 b) const {
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  }
};

template <class Op>
JSD_VNNI_TARGET inline __m512 reduce16(__m512* v, Op op) {
  for (int i = 0; i < 8; ++i) v[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i) v[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x88), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i) {
    v[i] = op(_mm512_shuffle_ps(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return op(_mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Rows ith, ith + nth, ... of x to the activation records: sixteen blocks at a time (their
// maxima and sums reduced together, their scales divided in one vector), the rest one by one.
// The same operations per value as quantize_block, so the same bytes.
JSD_VNNI_TARGET void quantize_rows(const float* x, int64_t rows, int64_t k, size_t x_stride, uint8_t* records, int ith, int nth) {
  const int64_t nb = k / kBlock;
  const __m512 sign_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  // reduce16's lane order back to block order (block j's value is at lane 4 (j % 4) + j / 4); the
  // same permutation puts packed bytes back in order.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (int64_t m = ith; m < rows; m += nth) {
    const float* in = reinterpret_cast<const float*>(reinterpret_cast<const char*>(x) + m * x_stride);
    const Q8Record out = q8_activation_record(records, m, k);
    int64_t b0 = 0;
    for (; b0 + 16 <= nb; b0 += 16) {
      const float* block = in + b0 * kBlock;
      __m512 v[16];
      for (int j = 0; j < 16; ++j) {
        v[j] = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(block + j * kBlock), sign_mask), _mm512_and_ps(_mm512_loadu_ps(block + j * kBlock + 16), sign_mask));
      }
      const __m512 amax = _mm512_permutexvar_ps(order, reduce16(v, MaxOp{}));
      const __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
      const __m512 id = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_NEQ_OQ), _mm512_set1_ps(127.0f), amax);
      _mm512_storeu_ps(out.scales + b0, d);
      alignas(64) float ids[16];
      _mm512_store_ps(ids, id);
      // Two blocks per step: their four int32 vectors packed to bytes with saturation (as
      // vpmovsdb does), in 128-bit lanes' dword order, which `order` puts back.
      for (int j = 0; j < 16; j += 2) {
        __m512i q[4];
        for (int h = 0; h < 4; ++h) {
          q[h] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(block + j * kBlock + 16 * h), _mm512_set1_ps(ids[j + h / 2])));
        }
        const __m512i bytes = _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
        _mm512_storeu_si512(out.quants + (b0 + j) * kBlock, _mm512_permutexvar_epi32(order, bytes));
        v[j] = _mm512_castsi512_ps(_mm512_add_epi32(q[0], q[1]));
        v[j + 1] = _mm512_castsi512_ps(_mm512_add_epi32(q[2], q[3]));
      }
      const __m512i sums = _mm512_permutexvar_epi32(order, _mm512_castps_si512(reduce16(v, AddOp{})));
      _mm512_storeu_si512(out.offsets + b0, _mm512_mullo_epi32(sums, _mm512_set1_epi32(-128)));
    }
    for (int64_t b = b0; b < nb; ++b) quantize_block(in, out, b);
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

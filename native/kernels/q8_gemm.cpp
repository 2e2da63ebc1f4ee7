#include "kernels/q8_gemm.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <utility>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JSD_Q8_VNNI 1
#if defined(__clang__)
#include <immintrin.h>
#else
// gcc 12's AVX-512 headers trip its own uninitialized-variable warning (gcc bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#endif

namespace jsd {

namespace {

constexpr int kBlock = 32;          // q8_0 block width
constexpr int kGroup = 16;          // output rows per group (one 512-bit register of int32)
constexpr int kBlockBytes = 34;     // ggml's block_q8_0: f16 scale + 32 int8
}  // namespace

bool q8_interleavable(const ggml_tensor* weight) {
  return weight->type == GGML_TYPE_Q8_0 && ggml_n_dims(weight) == 2 && weight->ne[1] % kGroup == 0 && weight->ne[0] % kBlock == 0;
}

namespace {

// Both directions of the layout change: forward reads ggml's rows and writes the groups in order.
template <bool forward>
void reorder(const uint8_t* src, uint8_t* dst, int64_t n, int64_t k) {
  const int64_t nb = k / kBlock;
  const int64_t row_bytes = nb * kBlockBytes;
  for (int64_t g = 0; g < n / kGroup; ++g) {
    const int64_t group = g * kGroup * row_bytes;
    const int64_t scales = group + nb * kGroup * kBlock;
    int64_t quants = group;
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < kGroup; ++r) {
        const int64_t plain = group + r * row_bytes + b * kBlockBytes;
        const int64_t packed = scales + (b * kGroup + r) * 2;
        std::memcpy(dst + (forward ? packed : plain), src + (forward ? plain : packed), 2);
      }
      for (int i = 0; i < kBlock / 4; ++i) {
        for (int r = 0; r < kGroup; ++r) {
          // Four quants at a time; +128 on each byte is a flip of its top bit, and its own inverse.
          const int64_t plain = group + r * row_bytes + b * kBlockBytes + 2 + 4 * i;
          uint32_t four;
          std::memcpy(&four, src + (forward ? plain : quants), 4);
          four ^= 0x80808080u;
          std::memcpy(dst + (forward ? quants : plain), &four, 4);
          quants += 4;
        }
      }
    }
  }
}

}  // namespace

void q8_interleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<true>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

void q8_deinterleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<false>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

#if JSD_Q8_VNNI

#define JSD_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

namespace {

constexpr int kTileRows = 12;             // activation rows per register tile
constexpr int kTaskGroups = 4;            // weight groups per task (64 rows: ~200 KB of a 3x3 conv's weights)
constexpr int kTaskRows = 8 * kTileRows;  // activation rows per task

// Quantized activations, one record per row of x: k int8, then per block its f32 scale, then per
// block -128 * (sum of its quants), which removes the +128 offset of the weights.
int64_t activation_row_bytes(int64_t k) { return k + 8 * (k / kBlock); }

// Rows [ith, ...) of x, every nth-th, to the activation records.
JSD_VNNI_TARGET void quantize_rows(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* x = dst->src[0];
  const int64_t k = x->ne[0];
  const int64_t nb = k / kBlock;
  const int64_t rows = ggml_nrows(x);
  const int64_t row_bytes = activation_row_bytes(k);
  const __m512 sign_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t m = ith; m < rows; m += nth) {
    const float* in = reinterpret_cast<const float*>(static_cast<const char*>(x->data) + m * x->nb[1]);
    auto* out = static_cast<uint8_t*>(dst->data) + m * row_bytes;
    auto* scales = reinterpret_cast<float*>(out + k);
    auto* offsets = reinterpret_cast<int32_t*>(out + k + 4 * nb);
    for (int64_t b = 0; b < nb; ++b) {
      const __m512 lo = _mm512_loadu_ps(in + b * kBlock);
      const __m512 hi = _mm512_loadu_ps(in + b * kBlock + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(lo, sign_mask), _mm512_and_ps(hi, sign_mask)));
      const float d = amax / 127.0f;
      const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
      // Round to nearest (the default rounding mode), as ggml's own q8_0 quantizer does.
      const __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, id));
      const __m512i qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, id));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + b * kBlock), _mm512_cvtsepi32_epi8(qlo));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + b * kBlock + 16), _mm512_cvtsepi32_epi8(qhi));
      scales[b] = d;
      offsets[b] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi));
    }
  }
}

// One register tile: 16 output rows (one weight group) by MT activation rows, over all of k.
template <int MT>
JSD_VNNI_TARGET inline void gemm_tile(const uint8_t* quants, const uint16_t* scales, int64_t nb, const uint8_t* x, int64_t k,
                                      int64_t row_bytes, float* out, int64_t ldo) {
  __m512 sum[MT];
  for (int m = 0; m < MT; ++m) sum[m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * kGroup)));
    const uint8_t* wb = quants + b * kGroup * kBlock;
    __m512i acc[MT];
    for (int m = 0; m < MT; ++m) {
      acc[m] = _mm512_set1_epi32(reinterpret_cast<const int32_t*>(x + m * row_bytes + k + 4 * nb)[b]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < kBlock / 4; ++i) {
      const __m512i w = _mm512_loadu_si512(wb + i * 64);
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

using TileFn = void (*)(const uint8_t*, const uint16_t*, int64_t, const uint8_t*, int64_t, int64_t, float*, int64_t);

template <int... MT>
constexpr std::array<TileFn, sizeof...(MT)> tile_table(std::integer_sequence<int, MT...>) {
  return {&gemm_tile<MT + 1>...};
}

JSD_VNNI_TARGET void gemm(ggml_tensor* dst, int ith, int nth, void*) {
  static constexpr auto tiles = tile_table(std::make_integer_sequence<int, kTileRows>{});
  const ggml_tensor* w = dst->src[0];
  const ggml_tensor* xq = dst->src[1];
  const int64_t k = w->ne[0];
  const int64_t n = w->ne[1];
  const int64_t nb = k / kBlock;
  const int64_t rows = ggml_nrows(xq);
  const int64_t row_bytes = activation_row_bytes(k);
  const int64_t groups = n / kGroup;
  const int64_t group_bytes = kGroup * nb * kBlockBytes;
  const int64_t n_tasks = (groups + kTaskGroups - 1) / kTaskGroups;
  const int64_t m_tasks = (rows + kTaskRows - 1) / kTaskRows;
  const auto* wdata = static_cast<const uint8_t*>(w->data);
  const auto* xdata = static_cast<const uint8_t*>(xq->data);
  auto* out = static_cast<float*>(dst->data);
  for (int64_t task = ith; task < n_tasks * m_tasks; task += nth) {
    const int64_t g0 = (task % n_tasks) * kTaskGroups;
    const int64_t m0 = (task / n_tasks) * kTaskRows;
    const int64_t g1 = std::min(groups, g0 + kTaskGroups);
    const int64_t m1 = std::min(rows, m0 + kTaskRows);
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* quants = wdata + g * group_bytes;
      const auto* scales = reinterpret_cast<const uint16_t*>(quants + nb * kGroup * kBlock);
      for (int64_t m = m0; m < m1; m += kTileRows) {
        const int64_t mt = std::min<int64_t>(kTileRows, m1 - m);
        tiles[mt - 1](quants, scales, nb, xdata + m * row_bytes, k, row_bytes, out + m * n + g * kGroup, n);
      }
    }
  }
}

}  // namespace

bool q8_gemm_available() {
  static const bool available = std::getenv("JSD_NO_REPACK") == nullptr && __builtin_cpu_supports("avx512f") &&
                                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  return available;
}

ggml_tensor* q8_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x) {
  if (x->type != GGML_TYPE_F32) x = ggml_cast(ctx, x, GGML_TYPE_F32);
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  const int64_t k = weight->ne[0];
  ggml_tensor* xq = ggml_custom_4d(ctx, GGML_TYPE_I8, activation_row_bytes(k), ggml_nrows(x), 1, 1, &x, 1, quantize_rows,
                                   GGML_N_TASKS_MAX, nullptr);
  ggml_tensor* args[2] = {weight, xq};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, weight->ne[1], x->ne[1], x->ne[2], x->ne[3], args, 2, gemm, GGML_N_TASKS_MAX, nullptr);
}

#else

bool q8_gemm_available() { return false; }

// Never reached: without the kernel no weight is interleaved.
ggml_tensor* q8_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x) { return ggml_mul_mat(ctx, weight, x); }

#endif

}  // namespace jsd

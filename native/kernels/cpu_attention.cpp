#include "kernels/cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JSD_FUSED_ATTENTION 1
#if defined(__clang__)
#include <immintrin.h>
#else
// gcc 12's AVX-512 headers trip its own uninitialized-variable warning (gcc bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#endif

namespace jsd {

#if JSD_FUSED_ATTENTION

#define JSD_AVX512_TARGET __attribute__((target("avx512f,fma")))

namespace {

constexpr int kQueryBlock = 32;  // queries per task: their scores stay in L2 up to ~4K keys
constexpr int kKeyChunk = 128;   // keys per pass over a block's register tiles (20 KB of 40-wide keys)
constexpr int kScoreRows = 6;    // queries per register tile of the score product (24 accumulators)
constexpr int kKeyVectors = 4;   // 16-key vectors per register tile of the score product
constexpr int kMaxChannelVectors = 6;  // 16-channel vectors per register tile of the value sum

// The op's parameters travel in its userdata pointer: heads in the low 32 bits, the scale's
// bits in the high 32 (graphs outlive any call frame, and this needs no allocation).
void* pack(int heads, float scale) {
  uint32_t bits;
  std::memcpy(&bits, &scale, 4);
  return reinterpret_cast<void*>((static_cast<uintptr_t>(bits) << 32) | static_cast<uint32_t>(heads));
}

void unpack(void* userdata, int* heads, float* scale) {
  const auto v = reinterpret_cast<uintptr_t>(userdata);
  *heads = static_cast<int>(v & 0xffffffffu);
  const auto bits = static_cast<uint32_t>(v >> 32);
  std::memcpy(scale, &bits, 4);
}

__mmask16 tail_mask(int64_t valid) { return valid >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << valid) - 1); }

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7 (relative error below
// 2e-7), times 2^n by vscalefps (which also takes care of underflow to 0).
JSD_AVX512_TARGET inline __m512 exp_ps(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

struct Head {
  const float* q;   // row i at q + i * ldq, d values
  const float* kt;  // channel c at kt + c * lk, lk values (keys transposed)
  const float* v;   // key j at v + j * ldv, d values
  float* out;       // row i at out + i * ldq
  int64_t ldq, ldv, d, lk;
  float scale;
};

// scores[r][j0, j1) = scale * q_r . k_j for R query rows.
template <int R>
JSD_AVX512_TARGET void score_rows(const Head& h, const float* const* q, float* const* scores, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + 16 * kKeyVectors <= j1; j += 16 * kKeyVectors) {
    __m512 acc[R][kKeyVectors];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < kKeyVectors; ++t) acc[r][t] = _mm512_setzero_ps();
    for (int64_t c = 0; c < h.d; ++c) {
      __m512 k[kKeyVectors];
      for (int t = 0; t < kKeyVectors; ++t) k[t] = _mm512_loadu_ps(h.kt + c * h.lk + j + 16 * t);
      for (int r = 0; r < R; ++r) {
        const __m512 qv = _mm512_set1_ps(q[r][c]);
        for (int t = 0; t < kKeyVectors; ++t) acc[r][t] = _mm512_fmadd_ps(qv, k[t], acc[r][t]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < kKeyVectors; ++t) _mm512_storeu_ps(scores[r] + j + 16 * t, _mm512_mul_ps(acc[r][t], _mm512_set1_ps(h.scale)));
  }
  for (; j < j1; j += 16) {
    const __mmask16 m = tail_mask(j1 - j);
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t c = 0; c < h.d; ++c) {
      const __m512 k = _mm512_maskz_loadu_ps(m, h.kt + c * h.lk + j);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][c]), k, acc[r]);
    }
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(scores[r] + j, m, _mm512_mul_ps(acc[r], _mm512_set1_ps(h.scale)));
  }
}

// Replaces a row of scores by exp(score - max) and returns 1 / their sum.
JSD_AVX512_TARGET float softmax_row(float* s, int64_t lk) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < lk; j += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask(lk - j), s + j));
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < lk; j += 16) {
    const __mmask16 m = tail_mask(lk - j);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), top));
    _mm512_mask_storeu_ps(s + j, m, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e));
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

// out[r][c0, c0 + 16 CH) (+)= sum over keys [j0, j1) of p[r][j] v_j, for R query rows; the
// first key chunk starts the sums, the last multiplies them by mul[r] (1 / the softmax's sum).
template <int R, int CH>
JSD_AVX512_TARGET void value_rows(const Head& h, const float* const* p, float* const* out, int64_t c0, int64_t j0, int64_t j1, bool first,
                                  const float* mul) {
  __mmask16 mask[CH];
  for (int t = 0; t < CH; ++t) mask[t] = tail_mask(h.d - c0 - 16 * t);
  __m512 acc[R][CH];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < CH; ++t) acc[r][t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask[t], out[r] + c0 + 16 * t);
  for (int64_t j = j0; j < j1; ++j) {
    __m512 v[CH];
    for (int t = 0; t < CH; ++t) v[t] = _mm512_maskz_loadu_ps(mask[t], h.v + j * h.ldv + c0 + 16 * t);
    for (int r = 0; r < R; ++r) {
      const __m512 pv = _mm512_set1_ps(p[r][j]);
      for (int t = 0; t < CH; ++t) acc[r][t] = _mm512_fmadd_ps(pv, v[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < CH; ++t) _mm512_mask_storeu_ps(out[r] + c0 + 16 * t, mask[t], _mm512_mul_ps(acc[r][t], _mm512_set1_ps(mul[r])));
}

template <int R>
JSD_AVX512_TARGET void value_chunk(const Head& h, const float* const* p, float* const* out, int64_t c0, int vectors, int64_t j0, int64_t j1,
                                   bool first, const float* mul) {
  switch (vectors) {
    case 1: return value_rows<R, 1>(h, p, out, c0, j0, j1, first, mul);
    case 2: return value_rows<R, 2>(h, p, out, c0, j0, j1, first, mul);
    case 3: return value_rows<R, 3>(h, p, out, c0, j0, j1, first, mul);
  }
  if constexpr (R <= 4) {
    switch (vectors) {
      case 4: return value_rows<R, 4>(h, p, out, c0, j0, j1, first, mul);
      case 5: return value_rows<R, 5>(h, p, out, c0, j0, j1, first, mul);
      default: return value_rows<R, 6>(h, p, out, c0, j0, j1, first, mul);
    }
  }
}

// Rows [i0, i0 + rows) of one head, rows <= kQueryBlock; scratch holds their scores. Keys go in
// chunks that stay in L1 while every register tile of the block uses them.
JSD_AVX512_TARGET void attend_block(const Head& h, int64_t i0, int64_t rows, float* scratch) {
  const float* q[kQueryBlock];
  float* scores[kQueryBlock];
  float* out[kQueryBlock];
  float inv[kQueryBlock];
  float one[kQueryBlock];
  for (int64_t r = 0; r < rows; ++r) {
    q[r] = h.q + (i0 + r) * h.ldq;
    scores[r] = scratch + r * h.lk;
    out[r] = h.out + (i0 + r) * h.ldq;
    one[r] = 1.0f;
  }
  for (int64_t j0 = 0; j0 < h.lk; j0 += kKeyChunk) {
    const int64_t j1 = std::min(h.lk, j0 + kKeyChunk);
    int64_t r = 0;
    for (; r + kScoreRows <= rows; r += kScoreRows) score_rows<kScoreRows>(h, q + r, scores + r, j0, j1);
    for (; r < rows; ++r) score_rows<1>(h, q + r, scores + r, j0, j1);
  }
  for (int64_t r = 0; r < rows; ++r) inv[r] = softmax_row(scores[r], h.lk);
  for (int64_t c0 = 0; c0 < h.d; c0 += 16 * kMaxChannelVectors) {
    const int vectors = static_cast<int>(std::min<int64_t>(kMaxChannelVectors, (h.d - c0 + 15) / 16));
    for (int64_t j0 = 0; j0 < h.lk; j0 += kKeyChunk) {
      const int64_t j1 = std::min(h.lk, j0 + kKeyChunk);
      const float* mul = j1 == h.lk ? inv : one;
      int64_t r = 0;
      // Up to 24 accumulators: 8 rows of up to 3 vectors (40-wide heads), else 4 rows.
      if (vectors <= 3) {
        for (; r + 8 <= rows; r += 8) value_chunk<8>(h, scores + r, out + r, c0, vectors, j0, j1, j0 == 0, mul + r);
      }
      for (; r + 4 <= rows; r += 4) value_chunk<4>(h, scores + r, out + r, c0, vectors, j0, j1, j0 == 0, mul + r);
      for (; r < rows; ++r) value_chunk<1>(h, scores + r, out + r, c0, vectors, j0, j1, j0 == 0, mul + r);
    }
  }
}

JSD_AVX512_TARGET void attention_op(ggml_tensor* dst, int ith, int nth, void* userdata) {
  int heads = 0;
  float scale = 0;
  unpack(userdata, &heads, &scale);
  const ggml_tensor* q = dst->src[0];
  const ggml_tensor* kt = dst->src[1];
  const ggml_tensor* v = dst->src[2];
  const ggml_tensor* scratch = dst->src[3];
  const int64_t c = q->ne[0];
  const int64_t lq = q->ne[1];
  const int64_t n = q->ne[2];
  const int64_t lk = kt->ne[0];
  const int64_t d = c / heads;
  const int64_t blocks = (lq + kQueryBlock - 1) / kQueryBlock;
  // One block's scores per thread, in the compute buffer: threads beyond its slots (a thread
  // count above the one the graph was built for) leave the work to the others.
  const int64_t slots = scratch->ne[0] / (kQueryBlock * lk);
  const int64_t workers = std::min<int64_t>(nth, slots);
  if (ith >= workers) return;
  float* rows = static_cast<float*>(scratch->data) + ith * kQueryBlock * lk;
  for (int64_t task = ith; task < n * heads * blocks; task += workers) {
    const int64_t b = task % blocks;
    const int64_t hh = (task / blocks) % heads;
    const int64_t nn = task / (blocks * heads);
    Head h;
    h.q = static_cast<const float*>(q->data) + nn * lq * c + hh * d;
    h.kt = static_cast<const float*>(kt->data) + (nn * heads + hh) * d * lk;
    h.v = static_cast<const float*>(v->data) + nn * lk * c + hh * d;
    h.out = static_cast<float*>(dst->data) + nn * lq * c + hh * d;
    h.ldq = c;
    h.ldv = c;
    h.d = d;
    h.lk = lk;
    h.scale = scale;
    const int64_t i0 = b * kQueryBlock;
    attend_block(h, i0, std::min<int64_t>(kQueryBlock, lq - i0), rows);
  }
}

}  // namespace

bool cpu_attention_available() {
  static const bool available = std::getenv("JSD_NO_FUSED_ATTENTION") == nullptr && __builtin_cpu_supports("avx512f");
  return available;
}

ggml_tensor* cpu_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, int heads, float scale, int threads) {
  const int64_t c = q->ne[0];
  const int64_t d = c / heads;
  const int64_t lk = k->ne[1];
  const int64_t n = q->ne[2];
  if (!ggml_is_contiguous(q)) q = ggml_cont(ctx, q);
  if (!ggml_is_contiguous(v)) v = ggml_cont(ctx, v);
  // Keys transposed per head, [Lk, d, heads, N], so that the score product runs along the keys.
  ggml_tensor* kt = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, k, d, heads, lk, n), 1, 2, 0, 3));
  ggml_tensor* scratch = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, std::max(1, threads) * kQueryBlock * lk);
  ggml_tensor* args[4] = {q, kt, v, scratch};
  return ggml_set_name(ggml_custom_4d(ctx, GGML_TYPE_F32, c, q->ne[1], n, 1, args, 4, attention_op, GGML_N_TASKS_MAX, pack(heads, scale)),
                       "attention");
}

#else

bool cpu_attention_available() { return false; }

// Never reached: graphs use it only when cpu_attention_available().
ggml_tensor* cpu_attention(ggml_context*, ggml_tensor* q, ggml_tensor*, ggml_tensor*, int, float, int) { return q; }

#endif

}  // namespace jsd

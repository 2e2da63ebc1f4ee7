#include "kernels/cpu_attention_block.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <algorithm>
#include <cmath>
#include <utility>

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

#define JSD_AVX512_TARGET __attribute__((target("avx512f,avx512dq,fma")))
// Register tiles are arrays of vectors indexed by constants: unrolled early, gcc keeps them in
// registers (unrolled late, it copies them through the stack at every call).
#if defined(__clang__)
#define JSD_UNROLL _Pragma("unroll")
#else
#define JSD_UNROLL _Pragma("GCC unroll 32")
#endif

namespace jsd {
namespace {

// Register tiles of 24 and 20 accumulators: per broadcast key or value, 4 query vectors; per
// query vector, 6 keys or 5 channels (40-wide heads are 8 such). Loads per FMA stay below one
// half, which this core needs to keep both FMA units busy (measured: 88% of peak in a bare
// loop, against 82% for 2 x 8).
constexpr int kRowVectors = 4;                    // 16-query vectors per block
constexpr int64_t kBlock = kAttentionQueryBlock;  // = 16 * kRowVectors
constexpr int64_t kKeyTile = 64;                  // keys per softmax tile: 16 KB of scores, in L1
constexpr int kScoreKeys = 6;                     // keys per register tile of the scores
constexpr int kValueChannels = 5;                 // channels per register tile of the values

static_assert(kBlock == 16 * kRowVectors, "a block is whole vectors of queries");

// 2^x for x <= 0 (and x = -1e30, which gives 0): f = x - floor(x) in [0, 1) by vreduceps, 2^f by
// a polynomial fitted for relative error (below 2e-7 in float), times 2^floor(x) by vscalefps.
// Seven vector instructions, where e^x by a round-to-nearest reduction and a Taylor series took 12.
JSD_AVX512_TARGET inline __m512 exp2_ps(__m512 x) {
  const __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 p = _mm512_set1_ps(1.8825974548235536e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.973280899226665e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.584403872489929e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.401454746723175e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93154513835907e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999998807907104e-1f));
  return _mm512_scalef_ps(p, x);
}

// s[j][.] = q^T k_j for J keys (queries across lanes; q^T already scaled), and tmax takes in
// their maximum per query.
template <int J>
JSD_AVX512_TARGET void score_keys(const float* qt, const float* k, int64_t ldk, int64_t d, float* s, __m512* tmax, const char* pf, int64_t pf_lines) {
  __m512 acc[J][kRowVectors];
  JSD_UNROLL
  for (int j = 0; j < J; ++j)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) acc[j][t] = _mm512_setzero_ps();
  for (int64_t c = 0; c < d; ++c) {
    if (c < pf_lines) _mm_prefetch(pf + 64 * c, _MM_HINT_T0);
    __m512 q[kRowVectors];
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) q[t] = _mm512_loadu_ps(qt + c * kBlock + 16 * t);
    JSD_UNROLL
    for (int j = 0; j < J; ++j) {
      const __m512 kb = _mm512_set1_ps(k[j * ldk + c]);
      JSD_UNROLL
      for (int t = 0; t < kRowVectors; ++t) acc[j][t] = _mm512_fmadd_ps(kb, q[t], acc[j][t]);
    }
  }
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) {
    __m512 top = tmax[t];
    JSD_UNROLL
    for (int j = 0; j < J; ++j) {
      _mm512_storeu_ps(s + j * kBlock + 16 * t, acc[j][t]);
      top = _mm512_max_ps(top, acc[j][t]);
    }
    tmax[t] = top;
  }
}

// The last keys of a tile, fewer than kScoreKeys: the kernel for exactly that many.
template <int... J>
JSD_AVX512_TARGET void score_rest(std::integer_sequence<int, J...>, int64_t keys, const float* qt, const float* k, int64_t ldk, int64_t d,
                                  float* s, __m512* tmax) {
  ((keys == J + 1 ? score_keys<J + 1>(qt, k, ldk, d, s, tmax, nullptr, 0) : void()), ...);
}

// Scores of a tile of keys; meanwhile the tile's values come into L1 (a few cache lines per
// register tile), where the value product will want them.
JSD_AVX512_TARGET void score_tile(const float* qt, const float* k, int64_t ldk, int64_t d, int64_t keys, float* s, __m512* tmax, const float* v,
                                  int64_t ldv) {
  int64_t j = 0;
  const int64_t lines = (kScoreKeys * ldv * 4 + 63) / 64;
  for (; j + kScoreKeys <= keys; j += kScoreKeys)
    score_keys<kScoreKeys>(qt, k + j * ldk, ldk, d, s + j * kBlock, tmax, reinterpret_cast<const char*>(v + j * ldv), lines);
  score_rest(std::make_integer_sequence<int, kScoreKeys - 1>(), keys - j, qt, k + j * ldk, ldk, d, s + j * kBlock, tmax);
}

// The online softmax of one tile: the running maximum m takes in the tile's, the running sum l
// and (through alpha) the output are rescaled to it, and the scores become 2^(s - m).
JSD_AVX512_TARGET void softmax_tile(float* s, int64_t keys, const __m512* tmax, __m512* m, __m512* l, __m512* alpha) {
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) {
    const __m512 top = _mm512_max_ps(m[t], tmax[t]);
    alpha[t] = exp2_ps(_mm512_sub_ps(m[t], top));
    l[t] = _mm512_mul_ps(l[t], alpha[t]);
    m[t] = top;
  }
  for (int64_t j = 0; j < keys; ++j)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) {
      const __m512 p = exp2_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j * kBlock + 16 * t), m[t]));
      _mm512_storeu_ps(s + j * kBlock + 16 * t, p);
      l[t] = _mm512_add_ps(l[t], p);
    }
}

// o^T[c][.] = alpha o^T[c][.] + sum over the tile's keys of v_j[c] p[j][.], for C channels.
template <int C>
JSD_AVX512_TARGET void value_channels(const float* p, int64_t keys, const float* v, int64_t ldv, float* ot, const __m512* alpha, const char* pf,
                                      int64_t pf_lines) {
  __m512 acc[C][kRowVectors];
  JSD_UNROLL
  for (int c = 0; c < C; ++c)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) acc[c][t] = _mm512_mul_ps(_mm512_loadu_ps(ot + c * kBlock + 16 * t), alpha[t]);
  for (int64_t j = 0; j < keys; ++j) {
    if (j < pf_lines) _mm_prefetch(pf + 64 * j, _MM_HINT_T0);
    __m512 pj[kRowVectors];
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) pj[t] = _mm512_loadu_ps(p + j * kBlock + 16 * t);
    JSD_UNROLL
    for (int c = 0; c < C; ++c) {
      const __m512 vb = _mm512_set1_ps(v[j * ldv + c]);
      JSD_UNROLL
      for (int t = 0; t < kRowVectors; ++t) acc[c][t] = _mm512_fmadd_ps(vb, pj[t], acc[c][t]);
    }
  }
  JSD_UNROLL
  for (int c = 0; c < C; ++c)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) _mm512_storeu_ps(ot + c * kBlock + 16 * t, acc[c][t]);
}

// The last channels of a head, fewer than kValueChannels.
template <int... C>
JSD_AVX512_TARGET void value_rest(std::integer_sequence<int, C...>, int64_t channels, const float* p, int64_t keys, const float* v, int64_t ldv,
                                  float* ot, const __m512* alpha) {
  ((channels == C + 1 ? value_channels<C + 1>(p, keys, v, ldv, ot, alpha, nullptr, 0) : void()), ...);
}

// The value product of a tile; meanwhile the next tile's keys (next_bytes from next) come into
// L1, a cache line per key and register tile.
JSD_AVX512_TARGET void value_tile(const float* p, int64_t keys, const float* v, int64_t ldv, int64_t d, float* ot, const __m512* alpha,
                                  const float* next, int64_t next_bytes) {
  int64_t c = 0;
  int64_t line = 0;
  const int64_t lines = (next_bytes + 63) / 64;
  for (; c + kValueChannels <= d; c += kValueChannels, line += keys)
    value_channels<kValueChannels>(p, keys, v + c, ldv, ot + c * kBlock, alpha, reinterpret_cast<const char*>(next) + 64 * line, std::max<int64_t>(0, lines - line));
  value_rest(std::make_integer_sequence<int, kValueChannels - 1>(), d - c, p, keys, v + c, ldv, ot + c * kBlock, alpha);
}

// qt[c][r] = scale q_r[c] for the block's rows (zero past the last), a vector of 16 rows at a
// time by gathers: the block's queries are read once, and each row is a run of d floats.
JSD_AVX512_TARGET void transpose_queries(const AttentionHead& h, int64_t i0, int64_t rows, float scale, float* qt) {
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i stride = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(static_cast<int>(h.ldq)));
  const __m512 factor = _mm512_set1_ps(scale);
  for (int t = 0; t < kRowVectors; ++t) {
    const int64_t r0 = 16 * t;
    const __mmask16 valid = rows - r0 >= 16 ? 0xffff : rows > r0 ? static_cast<__mmask16>((1u << (rows - r0)) - 1) : 0;
    const float* base = h.q + (i0 + r0) * h.ldq;
    for (int64_t c = 0; c < h.d; ++c) {
      const __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, stride, base + c, 4);
      _mm512_storeu_ps(qt + c * kBlock + r0, _mm512_mul_ps(x, factor));
    }
  }
}

// out_r = ot[.][r] / l_r for the block's rows: each row's d channels gathered from the
// transposed output, 16 at a time.
JSD_AVX512_TARGET void write_rows(const AttentionHead& h, int64_t i0, int64_t rows, const float* ot, const float* inv) {
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i stride = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(static_cast<int>(kBlock)));
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 factor = _mm512_set1_ps(inv[r]);
    float* out = h.out + (i0 + r) * h.ldo;
    for (int64_t c = 0; c < h.d; c += 16) {
      const __mmask16 valid = h.d - c >= 16 ? 0xffff : static_cast<__mmask16>((1u << (h.d - c)) - 1);
      const __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, stride, ot + c * kBlock + r, 4);
      _mm512_mask_storeu_ps(out + c, valid, _mm512_mul_ps(x, factor));
    }
  }
}

float* align64(float* p) { return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63}); }

}  // namespace

int64_t attention_scratch_floats(int64_t d) { return (2 * d + kKeyTile) * kBlock + 16; }

JSD_AVX512_TARGET void attend_block(const AttentionHead& h, int64_t i0, int64_t rows, float* scratch) {
  const int64_t d = h.d;
  float* qt = align64(scratch);  // the block's queries transposed, [d][kBlock], times scale / ln 2
  float* ot = qt + d * kBlock;    // its output transposed, [d][kBlock], not yet divided by l
  float* s = ot + d * kBlock;     // one tile's scores, then weights, [kKeyTile][kBlock]
  // Scores in base-2 units: 2^(s log2 e) = e^s, so the softmax's exponentials are exp2_ps.
  transpose_queries(h, i0, rows, h.scale * 1.44269504088896341f, qt);
  std::fill(ot, ot + d * kBlock, 0.0f);
  // Subnormal weights (scores 126 below the maximum) add nothing visible but cost microcode
  // assists: flush them to zero while this block runs.
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040);
  __m512 m[kRowVectors], l[kRowVectors], alpha[kRowVectors];
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) {
    m[t] = _mm512_set1_ps(-1e30f);  // finite, so that the first tile's alpha is 2^-1e30 = 0
    l[t] = _mm512_setzero_ps();
  }
  for (int64_t j0 = 0; j0 < h.lk; j0 += kKeyTile) {
    const int64_t keys = std::min(kKeyTile, h.lk - j0);
    __m512 tmax[kRowVectors];
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) tmax[t] = _mm512_set1_ps(-INFINITY);
    score_tile(qt, h.k + j0 * h.ldk, h.ldk, d, keys, s, tmax, h.v + j0 * h.ldv, h.ldv);
    softmax_tile(s, keys, tmax, m, l, alpha);
    const int64_t next_keys = std::min(kKeyTile, h.lk - j0 - keys);
    value_tile(s, keys, h.v + j0 * h.ldv, h.ldv, d, ot, alpha, h.k + (j0 + keys) * h.ldk, next_keys * h.ldk * 4);
  }
  _mm_setcsr(csr);
  float inv[kBlock];
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) _mm512_storeu_ps(inv + 16 * t, _mm512_div_ps(_mm512_set1_ps(1.0f), l[t]));
  write_rows(h, i0, rows, ot, inv);
}

}  // namespace jsd

#endif

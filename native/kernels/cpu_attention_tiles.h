// The attention kernel of cpu_attention_isa.h, one template for every vector width. Deliberately
// no include guard: each ISA file includes it once, in a namespace of its own, with
// JSD_ATTENTION_TARGET naming its instruction set (a function's target attribute cannot depend on
// a template parameter) and a struct Simd in scope: the vector type V of kLanes floats, the
// register tile (kRowVectors, kScoreKeys, kValueChannels), and load, store, set1, zero, fmadd,
// add, sub, mul, max, exp2 (for x <= 0; x = -1e30 gives 0), gather (count rows of a strided
// column, zero past them) and store_first (the first count lanes). It expects <immintrin.h>,
// <utility> and cpu_attention_isa.h.
//
// A block of kRowVectors * kLanes queries sits across the vector lanes (one lane per query), so
// that any head width uses whole vectors and each row's softmax needs no sums across lanes. Per
// tile of keys, the scores go to a small buffer that stays in L1, their softmax is taken against
// a running maximum, and the weighted values are added to the block's output (kept transposed,
// [d][block]) after rescaling it to that maximum. Scores are in base-2 units: the queries are
// scaled by scale / ln 2 up front, so that e^s is 2^s' and the softmax's exponential is exp2.

// Register tiles are arrays of vectors indexed by constants: unrolled early, gcc keeps them in
// registers; unrolled late (its default), it copies them through the stack at every call (a
// few percent of the kernel's time, measured).
#ifndef JSD_UNROLL
#if defined(__clang__)
#define JSD_UNROLL _Pragma("unroll")
#else
#define JSD_UNROLL _Pragma("GCC unroll 32")
#endif
#endif

constexpr int kRowVectors = Simd::kRowVectors;
constexpr int64_t kBlock = Simd::kLanes * Simd::kRowVectors;
constexpr int64_t kKeyTile = 64;  // keys per softmax tile: at most 16 KB of scores, in L1
constexpr int kScoreKeys = Simd::kScoreKeys;
constexpr int kValueChannels = Simd::kValueChannels;
using V = Simd::V;

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// s[j][.] = q^T k_j for J keys (q^T already scaled), and tmax takes in their maximum per query.
// Meanwhile pf_lines cache lines from pf come into L1, one per channel.
template <int J>
JSD_ATTENTION_TARGET void score_keys(const float* qt, const float* k, int64_t ldk, int64_t d, float* s, V* tmax, const char* pf, int64_t pf_lines) {
  V acc[J][kRowVectors];
  JSD_UNROLL
  for (int j = 0; j < J; ++j)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) acc[j][t] = Simd::zero();
  for (int64_t c = 0; c < d; ++c) {
    if (c < pf_lines) _mm_prefetch(pf + 64 * c, _MM_HINT_T0);
    V q[kRowVectors];
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) q[t] = Simd::load(qt + c * kBlock + Simd::kLanes * t);
    JSD_UNROLL
    for (int j = 0; j < J; ++j) {
      const V kb = Simd::set1(k[j * ldk + c]);
      JSD_UNROLL
      for (int t = 0; t < kRowVectors; ++t) acc[j][t] = Simd::fma(kb, q[t], acc[j][t]);
    }
  }
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) {
    V top = tmax[t];
    JSD_UNROLL
    for (int j = 0; j < J; ++j) {
      Simd::store(s + j * kBlock + Simd::kLanes * t, acc[j][t]);
      top = Simd::max(top, acc[j][t]);
    }
    tmax[t] = top;
  }
}

// The last keys of a tile, fewer than kScoreKeys: the kernel for exactly that many.
template <int... J>
JSD_ATTENTION_TARGET void score_rest(std::integer_sequence<int, J...>, int64_t keys, const float* qt, const float* k, int64_t ldk, int64_t d,
                                     float* s, V* tmax) {
  ((keys == J + 1 ? score_keys<J + 1>(qt, k, ldk, d, s, tmax, nullptr, 0) : void()), ...);
}

// Scores of a tile of keys; meanwhile the tile's values come into L1, where the value product
// will want them (a few lines per register tile).
JSD_ATTENTION_TARGET void score_tile(const float* qt, const float* k, int64_t ldk, int64_t d, int64_t keys, float* s, V* tmax, const float* v,
                                     int64_t ldv) {
  int64_t j = 0;
  const int64_t lines = (kScoreKeys * ldv * 4 + 63) / 64;
  for (; j + kScoreKeys <= keys; j += kScoreKeys)
    score_keys<kScoreKeys>(qt, k + j * ldk, ldk, d, s + j * kBlock, tmax, reinterpret_cast<const char*>(v + j * ldv), lines);
  score_rest(std::make_integer_sequence<int, kScoreKeys - 1>(), keys - j, qt, k + j * ldk, ldk, d, s + j * kBlock, tmax);
}

// The online softmax of one tile: the running maximum m takes in the tile's, the running sum l
// and (through alpha) the output are rescaled to it, and the scores become 2^(s - m).
JSD_ATTENTION_TARGET void softmax_tile(float* s, int64_t keys, const V* tmax, V* m, V* l, V* alpha) {
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) {
    const V top = Simd::max(m[t], tmax[t]);
    alpha[t] = Simd::exp2(Simd::sub(m[t], top));
    l[t] = Simd::mul(l[t], alpha[t]);
    m[t] = top;
  }
  for (int64_t j = 0; j < keys; ++j)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) {
      float* at = s + j * kBlock + Simd::kLanes * t;
      const V p = Simd::exp2(Simd::sub(Simd::load(at), m[t]));
      Simd::store(at, p);
      l[t] = Simd::add(l[t], p);
    }
}

// o^T[c][.] = alpha o^T[c][.] + sum over the tile's keys of v_j[c] p[j][.], for C channels.
// Meanwhile pf_lines cache lines from pf come into L1, one per key.
template <int C>
JSD_ATTENTION_TARGET void value_channels(const float* p, int64_t keys, const float* v, int64_t ldv, float* ot, const V* alpha, const char* pf,
                                         int64_t pf_lines) {
  V acc[C][kRowVectors];
  JSD_UNROLL
  for (int c = 0; c < C; ++c)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) acc[c][t] = Simd::mul(Simd::load(ot + c * kBlock + Simd::kLanes * t), alpha[t]);
  for (int64_t j = 0; j < keys; ++j) {
    if (j < pf_lines) _mm_prefetch(pf + 64 * j, _MM_HINT_T0);
    V pj[kRowVectors];
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) pj[t] = Simd::load(p + j * kBlock + Simd::kLanes * t);
    JSD_UNROLL
    for (int c = 0; c < C; ++c) {
      const V vb = Simd::set1(v[j * ldv + c]);
      JSD_UNROLL
      for (int t = 0; t < kRowVectors; ++t) acc[c][t] = Simd::fma(vb, pj[t], acc[c][t]);
    }
  }
  JSD_UNROLL
  for (int c = 0; c < C; ++c)
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) Simd::store(ot + c * kBlock + Simd::kLanes * t, acc[c][t]);
}

// The last channels of a head, fewer than kValueChannels.
template <int... C>
JSD_ATTENTION_TARGET void value_rest(std::integer_sequence<int, C...>, int64_t channels, const float* p, int64_t keys, const float* v, int64_t ldv,
                                     float* ot, const V* alpha) {
  ((channels == C + 1 ? value_channels<C + 1>(p, keys, v, ldv, ot, alpha, nullptr, 0) : void()), ...);
}

// The value product of a tile; meanwhile the next tile's keys (next_bytes from next) come into
// L1, a cache line per key and register tile.
JSD_ATTENTION_TARGET void value_tile(const float* p, int64_t keys, const float* v, int64_t ldv, int64_t d, float* ot, const V* alpha, const float* next,
                                     int64_t next_bytes) {
  int64_t c = 0;
  const char* pf = reinterpret_cast<const char*>(next);
  int64_t lines = (next_bytes + 63) / 64;
  for (; c + kValueChannels <= d; c += kValueChannels, pf += 64 * keys, lines -= keys)
    value_channels<kValueChannels>(p, keys, v + c, ldv, ot + c * kBlock, alpha, pf, lines);
  value_rest(std::make_integer_sequence<int, kValueChannels - 1>(), d - c, p, keys, v + c, ldv, ot + c * kBlock, alpha);
}

// qt[c][r] = scale q_r[c] for the block's rows, zero past the last: the block's queries are read
// once, a vector of rows per channel.
JSD_ATTENTION_TARGET void transpose_queries(const AttentionHead& h, int64_t i0, int64_t rows, float scale, float* qt) {
  const V factor = Simd::set1(scale);
  for (int t = 0; t < kRowVectors; ++t) {
    const int64_t r0 = Simd::kLanes * t;
    const float* base = h.q + (i0 + r0) * h.ldq;
    for (int64_t c = 0; c < h.d; ++c) Simd::store(qt + c * kBlock + r0, Simd::mul(Simd::gather(base + c, h.ldq, rows - r0), factor));
  }
}

// out_r = ot[.][r] * inv_r for the block's rows, each row's channels gathered a vector at a time.
JSD_ATTENTION_TARGET void write_rows(const AttentionHead& h, int64_t i0, int64_t rows, const float* ot, const float* inv) {
  for (int64_t r = 0; r < rows; ++r) {
    const V factor = Simd::set1(inv[r]);
    float* out = h.out + (i0 + r) * h.ldo;
    for (int64_t c = 0; c < h.d; c += Simd::kLanes) Simd::store_first(out + c, Simd::mul(Simd::gather(ot + c * kBlock + r, kBlock, h.d - c), factor), h.d - c);
  }
}

int64_t scratch_floats(int64_t d) { return (2 * d + kKeyTile) * kBlock + 16; }

JSD_ATTENTION_TARGET void attend_block(const AttentionHead& h, int64_t i0, int64_t rows, float* scratch) {
  const int64_t d = h.d;
  float* qt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});  // [d][kBlock]
  float* ot = qt + d * kBlock;  // the block's output transposed, [d][kBlock], not yet divided by l
  float* s = ot + d * kBlock;   // one tile's scores, then weights, [kKeyTile][kBlock]
  transpose_queries(h, i0, rows, h.scale * 1.44269504088896341f, qt);
  for (int64_t i = 0; i < d * kBlock; i += Simd::kLanes) Simd::store(ot + i, Simd::zero());
  // Subnormal weights (scores 126 below the maximum, in base 2) add nothing visible but cost
  // microcode assists: flush them to zero while this block runs.
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040);
  V m[kRowVectors], l[kRowVectors], alpha[kRowVectors];
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) {
    m[t] = Simd::set1(-1e30f);  // finite, so that the first tile's alpha is 2^-1e30 = 0
    l[t] = Simd::zero();
  }
  for (int64_t j0 = 0; j0 < h.lk; j0 += kKeyTile) {
    const int64_t keys = min64(kKeyTile, h.lk - j0);
    V tmax[kRowVectors];
    JSD_UNROLL
    for (int t = 0; t < kRowVectors; ++t) tmax[t] = Simd::set1(-1e30f);
    score_tile(qt, h.k + j0 * h.ldk, h.ldk, d, keys, s, tmax, h.v + j0 * h.ldv, h.ldv);
    softmax_tile(s, keys, tmax, m, l, alpha);
    const int64_t next_keys = min64(kKeyTile, h.lk - j0 - keys);
    value_tile(s, keys, h.v + j0 * h.ldv, h.ldv, d, ot, alpha, h.k + (j0 + keys) * h.ldk, next_keys * h.ldk * 4);
  }
  _mm_setcsr(csr);
  float inv[kBlock];
  JSD_UNROLL
  for (int t = 0; t < kRowVectors; ++t) Simd::store(inv + Simd::kLanes * t, Simd::div(Simd::set1(1.0f), l[t]));
  write_rows(h, i0, rows, ot, inv);
}

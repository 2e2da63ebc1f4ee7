// cpu_attention_isa.h's bf16 kernel on AMX tiles (x86 with AMX-BF16 and AVX-512 BF16: Sapphire
// Rapids on; Linux, which must grant the process the tile state). A tile product multiplies a
// 16 x 32 bf16 tile by a 32 x 16 one into 16 x 16 floats, 12 times the work of the two FMA units
// per cycle, so the products cost little and the softmax's exponentials (AVX-512, as in the f32
// kernel) take most of the time. The price is rounding: queries, keys, values and the softmax's
// weights go to bf16 (8 bits of mantissa) before each product, the sums stay f32. It runs the ops
// that allow bf16 (a UNet with quantized weights: docs/benchmark.md measures that its images move
// no more than under any reordering of the f32 sums), or every op when named
// (JSD_ATTENTION_KERNEL=amx-bf16); everything else stays on the f32 kernels.
//
// The same blocks and tiles as cpu_attention_tiles.h (64 queries across the lanes of 4 vectors,
// 64 keys a tile), and its softmax, query transposition and output:
//   scores^T (keys x queries) = K (keys x channels, bf16 rows) . Q^T (channel pairs x queries x 2)
//   out^T (channels x queries) += V^T (channels x keys, bf16 rows) . P^T (key pairs x queries x 2)
// so that a stored score tile is the f32 kernel's [key][query] buffer, and the output stays
// transposed in f32 between tiles (rescaled by the softmax there). A packing op (pack_head)
// writes each head's keys as bf16 rows and its values transposed, zero-padded to whole tiles.
#include <cstdint>
#include <utility>

#include "kernels/cpu_attention_isa.h"

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "kernels/simd_f32.h"

namespace jsd {
namespace attention_amx {

#define JSD_ATTENTION_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512bf16,fma,amx-tile,amx-bf16")))

#include "kernels/cpu_attention_avx512_simd.h"
#include "kernels/cpu_attention_tiles.h"

constexpr int64_t kQueryTiles = kBlock / 16;  // 16-query columns of a score tile: 4
static_assert(kQueryTiles == 4 && kKeyTile == 64, "the tile products below are written out for 4 query tiles and 64 keys");

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
// Padded sizes: channels to whole 32-wide products (keys' rows), to 16-row tiles (values'
// rows); keys to whole tiles of 64.
int64_t key_channels(int64_t d) { return round_up(d, 32); }
int64_t value_rows(int64_t d) { return round_up(d, 16); }
int64_t padded_keys(int64_t lk) { return round_up(lk, kKeyTile); }

int64_t packed_floats(int64_t d, int64_t lk) { return padded_keys(lk) * (key_channels(d) + value_rows(d)) / 2; }

// One tile of 64 keys, packed: every tile operand a contiguous 1 KB (16 rows of 64 bytes), and
// the tiles of a head one after another, so that the next one streams in while this one runs.
//   keys:   [16-key block kb][32-channel chunk][16 keys][32 channels]   64 * kc bf16
//   values: [32-key half][value row c][32 keys]                          64 * vr bf16
int64_t tile_elements(int64_t d) { return kKeyTile * (key_channels(d) + value_rows(d)); }

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// 32 floats as one tile row of bf16 (round to nearest even): lo in elements 0-15, hi in 16-31.
JSD_ATTENTION_TARGET void bf16_row(V lo, V hi, uint16_t* out) { _mm512_storeu_si512(out, (__m512i)_mm512_cvtne2ps_pbh(hi, lo)); }

// Two rows of 16 queries (a, b) as one tile row of bf16 pairs (a_i, b_i).
JSD_ATTENTION_TARGET void pair_rows(V a, V b, uint16_t* out) {
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  _mm512_storeu_si512(out, _mm512_permutexvar_epi16(order, (__m512i)_mm512_cvtne2ps_pbh(b, a)));
}

// A row of 16 floats from p, zeros where absent.
JSD_ATTENTION_TARGET V row_or_zero(const float* p, bool present) { return present ? Simd::load(p) : Simd::zero(); }

JSD_ATTENTION_TARGET void pack_head(const float* k, const float* v, int64_t ldk, int64_t ldv, int64_t d, int64_t lk, float* out) {
  const int64_t kc = key_channels(d), vr = value_rows(d);
  uint16_t* tile = reinterpret_cast<uint16_t*>(out);
  for (int64_t j0 = 0; j0 < lk; j0 += kKeyTile, tile += tile_elements(d)) {
    uint16_t* keys = tile;
    for (int64_t kb = 0; kb < kKeyTile / 16; ++kb)
      for (int64_t c0 = 0; c0 < kc; c0 += 32)
        for (int64_t jj = 0; jj < 16; ++jj, keys += 32) {
          const int64_t j = j0 + 16 * kb + jj;
          const float* row = k + j * ldk + c0;
          const bool key = j < lk;
          bf16_row(_mm512_maskz_loadu_ps(key ? Simd::first(d - c0) : 0, row), _mm512_maskz_loadu_ps(key ? Simd::first(d - c0 - 16) : 0, row + 16), keys);
        }
    uint16_t* values = tile + kKeyTile * kc;
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t c = 0; c < vr; ++c, values += 32) {
        const int64_t j = j0 + 32 * half;
        const bool channel = c < d;
        bf16_row(channel ? Simd::gather(v + j * ldv + c, ldv, lk - j) : Simd::zero(), channel ? Simd::gather(v + (j + 16) * ldv + c, ldv, lk - j - 16) : Simd::zero(), values);
      }
  }
}

// The online softmax of one tile, as cpu_attention_tiles.h's softmax_tile, with the weights
// written straight to tile rows of bf16 key pairs (zeros past the tile's keys, whose padded
// values are zeros too).
JSD_ATTENTION_TARGET void softmax_pairs(const float* s, int64_t keys, const V* tmax, V* m, V* l, V* alpha, uint16_t* ppairs) {
  for (int t = 0; t < kRowVectors; ++t) {
    const V top = Simd::max(m[t], tmax[t]);
    alpha[t] = Simd::exp2(Simd::sub(m[t], top));
    l[t] = Simd::mul(l[t], alpha[t]);
    m[t] = top;
  }
  for (int64_t p = 0; p < (keys + 31) / 32 * 16; ++p)
    for (int t = 0; t < kRowVectors; ++t) {
      const V a = 2 * p < keys ? Simd::exp2(Simd::sub(Simd::load(s + 2 * p * kBlock + 16 * t), m[t])) : Simd::zero();
      const V b = 2 * p + 1 < keys ? Simd::exp2(Simd::sub(Simd::load(s + (2 * p + 1) * kBlock + 16 * t), m[t])) : Simd::zero();
      l[t] = Simd::add(l[t], Simd::add(a, b));
      pair_rows(a, b, ppairs + (t * 32 + p) * 32);
    }
}

int64_t amx_scratch_floats(int64_t d) {
  // qt, ot (f32, value rows), the scores, then bf16: Q^T pairs [4][kc/2][32], P^T pairs [4][32][32].
  return d * kBlock + value_rows(d) * kBlock + kKeyTile * kBlock + key_channels(d) * 32 + kQueryTiles * 32 * 32 / 2 + 64;
}

JSD_ATTENTION_TARGET void attend_amx(const AttentionHead& h, int64_t i0, int64_t rows, float* scratch) {
  const int64_t d = h.d, kc = key_channels(d), vr = value_rows(d);
  const uint16_t* packed = reinterpret_cast<const uint16_t*>(h.k);
  float* qt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  float* ot = qt + d * kBlock;
  float* s = ot + vr * kBlock;
  uint16_t* qpairs = reinterpret_cast<uint16_t*>(s + kKeyTile * kBlock);  // [query tile][kc / 2][32]
  uint16_t* ppairs = qpairs + kc * 64;                                     // [query tile][32 key pairs][32]
  transpose_queries(h, i0, rows, h.scale * 1.44269504088896341f, qt);
  for (int64_t t = 0; t < kQueryTiles; ++t)
    for (int64_t p = 0; p < kc / 2; ++p)
      pair_rows(row_or_zero(qt + 2 * p * kBlock + 16 * t, 2 * p < d), row_or_zero(qt + (2 * p + 1) * kBlock + 16 * t, 2 * p + 1 < d),
                qpairs + (t * kc / 2 + p) * 32);
  for (int64_t i = 0; i < vr * kBlock; i += 16) _mm512_storeu_ps(ot + i, _mm512_setzero_ps());
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = 16;
    config.bytes_per_row[t] = 64;
  }
  _tile_loadconfig(&config);
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040);
  V m[kRowVectors], l[kRowVectors], alpha[kRowVectors];
  for (int t = 0; t < kRowVectors; ++t) {
    m[t] = Simd::set1(-1e30f);
    l[t] = Simd::zero();
  }
  const int64_t score_stride = kBlock * 4;
  for (int64_t j0 = 0; j0 < h.lk; j0 += kKeyTile) {
    const int64_t keys = min64(kKeyTile, h.lk - j0);
    const uint16_t* kpack = packed + (j0 / kKeyTile) * tile_elements(d);
    const uint16_t* vpack = kpack + kKeyTile * kc;
    const char* next = reinterpret_cast<const char*>(kpack + tile_elements(d));
    const int64_t next_lines = j0 + kKeyTile < h.lk ? tile_elements(d) * 2 / 64 : 0;
    // Scores: tiles 0-3 hold 16 keys by the 4 query tiles; 4 the keys' channels, 5 the queries'.
    for (int64_t kb = 0; kb < (keys + 15) / 16; ++kb) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t c = 0; c < kc; c += 32) {
        _tile_loadd(4, kpack + (kb * kc + c) * 16, 64);
        _tile_loadd(5, qpairs + (0 * kc / 2 + c / 2) * 32, 64);
        _tile_dpbf16ps(0, 4, 5);
        _tile_loadd(5, qpairs + (1 * kc / 2 + c / 2) * 32, 64);
        _tile_dpbf16ps(1, 4, 5);
        _tile_loadd(5, qpairs + (2 * kc / 2 + c / 2) * 32, 64);
        _tile_dpbf16ps(2, 4, 5);
        _tile_loadd(5, qpairs + (3 * kc / 2 + c / 2) * 32, 64);
        _tile_dpbf16ps(3, 4, 5);
      }
      float* row = s + 16 * kb * kBlock;
      _tile_stored(0, row, score_stride);
      _tile_stored(1, row + 16, score_stride);
      _tile_stored(2, row + 32, score_stride);
      _tile_stored(3, row + 48, score_stride);
    }
    // The tile's maximum per query; meanwhile the next tile comes into L1.
    V tmax[kRowVectors];
    for (int t = 0; t < kRowVectors; ++t) tmax[t] = Simd::set1(-1e30f);
    for (int64_t j = 0; j < keys; ++j) {
      for (int64_t line = j; line < next_lines; line += keys) _mm_prefetch(next + 64 * line, _MM_HINT_T0);
      for (int t = 0; t < kRowVectors; ++t) tmax[t] = Simd::max(tmax[t], Simd::load(s + j * kBlock + 16 * t));
    }
    softmax_pairs(s, keys, tmax, m, l, alpha, ppairs);
    const int64_t pairs = (keys + 31) / 32 * 16;
    for (int64_t c = 0; c < d; ++c)
      for (int t = 0; t < kRowVectors; ++t) Simd::store(ot + c * kBlock + 16 * t, Simd::mul(Simd::load(ot + c * kBlock + 16 * t), alpha[t]));
    // Values: tiles 0-3 hold 16 output channels by the 4 query tiles; 4 the values, 5 the weights.
    for (int64_t cb = 0; cb < vr; cb += 16) {
      float* out = ot + cb * kBlock;
      _tile_loadd(0, out, score_stride);
      _tile_loadd(1, out + 16, score_stride);
      _tile_loadd(2, out + 32, score_stride);
      _tile_loadd(3, out + 48, score_stride);
      for (int64_t p = 0; p < pairs; p += 16) {
        _tile_loadd(4, vpack + ((p / 16) * vr + cb) * 32, 64);
        _tile_loadd(5, ppairs + (0 * 32 + p) * 32, 64);
        _tile_dpbf16ps(0, 4, 5);
        _tile_loadd(5, ppairs + (1 * 32 + p) * 32, 64);
        _tile_dpbf16ps(1, 4, 5);
        _tile_loadd(5, ppairs + (2 * 32 + p) * 32, 64);
        _tile_dpbf16ps(2, 4, 5);
        _tile_loadd(5, ppairs + (3 * 32 + p) * 32, 64);
        _tile_dpbf16ps(3, 4, 5);
      }
      _tile_stored(0, out, score_stride);
      _tile_stored(1, out + 16, score_stride);
      _tile_stored(2, out + 32, score_stride);
      _tile_stored(3, out + 48, score_stride);
    }
  }
  _mm_setcsr(csr);
  _tile_release();
  float inv[kBlock];
  for (int t = 0; t < kRowVectors; ++t) Simd::store(inv + 16 * t, Simd::div(Simd::set1(1.0f), l[t]));
  write_rows(h, i0, rows, ot, inv);
}

#undef JSD_ATTENTION_TARGET

// AMX-BF16 and AMX-TILE (CPUID leaf 7, EDX bits 22 and 24): compilers' __builtin_cpu_supports
// names for them are recent.
bool has_amx_bf16() {
  unsigned a = 0, b = 0, c = 0, dx = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &dx)) return false;
  return (dx & (1u << 22)) != 0 && (dx & (1u << 24)) != 0;
}

// Linux hands out the tile state (8 KB per thread) only to processes that ask for it.
bool tiles_granted() {
  constexpr long kRequestPermission = 0x1023;  // ARCH_REQ_XCOMP_PERM
  constexpr long kTileData = 18;               // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
}

}  // namespace attention_amx

const AttentionKernel* attention_kernel_amx_bf16() {
  static const AttentionKernel kernel{"amx-bf16", attention_amx::kBlock, attention_amx::amx_scratch_floats, attention_amx::attend_amx,
                                      attention_amx::packed_floats, attention_amx::pack_head};
  static const bool runs = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512bf16") && attention_amx::has_amx_bf16() && attention_amx::tiles_granted();
  return runs ? &kernel : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const AttentionKernel* attention_kernel_amx_bf16() { return nullptr; }
}  // namespace jsd

#endif

// q8_gemm.h's kernels for x86 CPUs without AVX-512: 16 output rows in two 256-bit registers of
// int32, tiles of 16 rows by a few activation rows, so that every weight load feeds the whole tile.
// Two tables, one tile template (q8_gemm_avx2_tile.h) with the dot-product step as parameter:
//   "q8-avx-vnni": AVX2 + AVX-VNNI (Alder Lake, Zen 5 without AVX-512...): vpdpbusd on 256 bits,
//     unsigned stored weights by signed activations, the records' offsets undo the +128;
//   "q8-avx2": plain AVX2 (Haswell on): vpmaddubsw would saturate on u8 x s8 pairs
//     (255 * 127 * 2 > 32767), so the weights are flipped to signed on load (w ^ 0x80) and
//     multiplied as maddubs(abs(w), sign(x, w)) (pairs at most 2 * 128 * 127), then vpmaddwd by
//     ones to int32; the offsets are not needed.
// Both compute the same integers and then the same float operations in the same order as the
// AVX-512 table, so all three give the same bits. The plain table's step is 4 vector ops per 32
// products (sign, maddubs, madd, add), 3 of them on the two ports that multiply: about 1.7 times
// ggml's AVX2 q8_0 product, which spends about 6 such ops per 32 products with no reuse of loads.
// Both also have q4 tiles (q8_gemm.h's q4_0 groups): the same tile on nibbles unpacked in
// registers, with vpdpbusd or, for the plain table, maddubs on the unsigned nibbles.
#include <cstring>
#include <utility>

#include "kernels/q8_gemm_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

namespace jsd {

#define JSD_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define JSD_AVX_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))

namespace {

// Activation rows per register tile: two int32 accumulators per row, plus the weights (two
// registers, four for the plain table's abs and sign) and the broadcast activations, in the 16
// ymm registers; the float sums, touched once per block, may live in memory. Measured on a
// Sapphire Rapids core (bench mat-mul shapes): 3 to 6 rows within noise of each other for both
// tables, 8 rows 20 % slower for AVX-VNNI (spills).
constexpr int kAvxVnniTileRows = 4;
constexpr int kAvx2TileRows = 4;

// Rows ith, ith + nth, ... of x to the activation records, the same bytes as the AVX-512 table's.
JSD_AVX2_TARGET void quantize_rows(const float* x, int64_t rows, int64_t k, size_t x_stride, uint8_t* records, int ith, int nth) {
  const int64_t nb = k / kQ8Block;
  const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // packs_epi32 then packs_epi16 interleave the four registers by 128-bit lane; this puts the
  // 32 bytes back in order (as ggml's own AVX2 q8_0 quantizer does).
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t m = ith; m < rows; m += nth) {
    const float* in = reinterpret_cast<const float*>(reinterpret_cast<const char*>(x) + m * x_stride);
    const Q8Record out = q8_activation_record(records, m, k);
    for (int64_t b = 0; b < nb; ++b) {
      __m256 v[4];
      for (int j = 0; j < 4; ++j) v[j] = _mm256_loadu_ps(in + b * kQ8Block + 8 * j);
      const __m256 max8 = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], sign_mask), _mm256_and_ps(v[1], sign_mask)),
                                        _mm256_max_ps(_mm256_and_ps(v[2], sign_mask), _mm256_and_ps(v[3], sign_mask)));
      __m128 max4 = _mm_max_ps(_mm256_castps256_ps128(max8), _mm256_extractf128_ps(max8, 1));
      max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
      max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4));
      const float amax = _mm_cvtss_f32(max4);
      const float d = amax / 127.0f;
      const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
      // Round to nearest (the default rounding mode), saturating to int8 like vpmovsdb.
      __m256i q[4];
      for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], id));
      const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.quants + b * kQ8Block), _mm256_permutevar8x32_epi32(bytes, order));
      const __m256i sum8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i sum4 = _mm_add_epi32(_mm256_castsi256_si128(sum8), _mm256_extracti128_si256(sum8, 1));
      sum4 = _mm_add_epi32(sum4, _mm_shuffle_epi32(sum4, _MM_SHUFFLE(1, 0, 3, 2)));
      sum4 = _mm_add_epi32(sum4, _mm_shuffle_epi32(sum4, _MM_SHUFFLE(2, 3, 0, 1)));
      out.scales[b] = d;
      out.offsets[b] = -128 * _mm_cvtsi128_si32(sum4);
    }
  }
}

// The weight steps: load(wb, i, h) gives rows 8h .. 8h+7's stored quants (unsigned) for values
// 4i .. 4i+3 of each row's block, from the block's bytes at wb; offset(o) is where a block's int32
// accumulator starts for a record's offset o. q8_0: +128 stored, one 32-byte load per step.
struct Q8Weights {
  static constexpr int kBlockBytes = kQ8Group * kQ8Block;
  JSD_AVX2_TARGET static __m256i load(const uint8_t* wb, int i, int h) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + i * 64 + 32 * h));
  }
  static int32_t offset(int32_t o) { return o; }
};

// q4_0 (q8_gemm.h): low nibbles for steps 0..3, high ones for 4..7; stored 0..15 for q - 8, so the
// accumulator starts at -8 * sum = o / 16.
struct Q4Weights {
  static constexpr int kBlockBytes = kQ8Group * kQ8Block / 2;
  JSD_AVX2_TARGET static __m256i load(const uint8_t* wb, int i, int h) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + (i & 3) * 64 + 32 * h));
    return _mm256_and_si256(i < 4 ? raw : _mm256_srli_epi16(raw, 4), _mm256_set1_epi8(0x0F));
  }
  static int32_t offset(int32_t o) { return o / 16; }
};

// The dot-product steps: acc += the 4-byte dot products of one row's stored weights (per int32
// lane) with 4 activation bytes broadcast to every lane.

// AVX-VNNI: unsigned stored weights by signed activations in one instruction.
struct VnniDot {
  static constexpr bool kOffsets = true;
  using Weight = __m256i;
  JSD_AVX_VNNI_TARGET static Weight prepare(__m256i w) { return w; }
  JSD_AVX_VNNI_TARGET static __m256i dot(__m256i acc, Weight w, __m256i x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
};

// Plain AVX2: the weights back to signed, |w| by x carrying w's sign, pairs to int32 by ones.
struct SignedDot {
  static constexpr bool kOffsets = false;
  struct Weight {
    __m256i abs, sign;
  };
  JSD_AVX2_TARGET static Weight prepare(__m256i stored) {
    const __m256i w = _mm256_xor_si256(stored, _mm256_set1_epi8(static_cast<char>(0x80)));
    return {_mm256_abs_epi8(w), w};
  }
  JSD_AVX2_TARGET static __m256i dot(__m256i acc, const Weight& w, __m256i x) {
    const __m256i pairs = _mm256_maddubs_epi16(w.abs, _mm256_sign_epi8(x, w.sign));
    __m256i sum = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    // Keeps the additions a chain per accumulator: gcc otherwise reassociates a block's eight
    // into a tree and keeps all 64 products of a 4-row tile in memory at once.
    __asm__("" : "+x"(sum));
    return sum;
  }
};

// Plain AVX2 on q4_0's unsigned quants (0..15): maddubs cannot saturate (2 * 15 * 128 < 32767),
// so the stored weights multiply the signed activations as they are; the offsets undo the 8.
struct UnsignedDot {
  static constexpr bool kOffsets = true;
  using Weight = __m256i;
  JSD_AVX2_TARGET static Weight prepare(__m256i w) { return w; }
  JSD_AVX2_TARGET static __m256i dot(__m256i acc, Weight w, __m256i x) {
    __m256i sum = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
    __asm__("" : "+x"(sum));  // as SignedDot's
    return sum;
  }
};

namespace avx_vnni {
#define JSD_AVX2_TILE_TARGET JSD_AVX_VNNI_TARGET
#include "kernels/q8_gemm_avx2_tile.h"
#undef JSD_AVX2_TILE_TARGET
}  // namespace avx_vnni

namespace avx2 {
#define JSD_AVX2_TILE_TARGET JSD_AVX2_TARGET
#include "kernels/q8_gemm_avx2_tile.h"
#undef JSD_AVX2_TILE_TARGET
}  // namespace avx2

// AVX2 with FMA and F16C (Haswell and later), and where the OS saves the ymm registers:
// __builtin_cpu_supports checks that for avx2. F16C and AVX-VNNI are read from CPUID here:
// clang 14's __builtin_cpu_supports knows neither name.
bool has_avx2() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
  return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool has_avx_vnni() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return has_avx2() && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)) != 0;
}

}  // namespace

const Q8Kernels* q8_kernels_avx_vnni() {
  static constexpr Q8Kernels table = avx_vnni::make_table<VnniDot, VnniDot>("q8-avx-vnni", std::make_integer_sequence<int, kAvxVnniTileRows>{});
  static const bool cpu = has_avx_vnni();
  return cpu ? &table : nullptr;
}

const Q8Kernels* q8_kernels_avx2() {
  static constexpr Q8Kernels table = avx2::make_table<SignedDot, UnsignedDot>("q8-avx2", std::make_integer_sequence<int, kAvx2TileRows>{});
  static const bool cpu = has_avx2();
  return cpu ? &table : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const Q8Kernels* q8_kernels_avx_vnni() { return nullptr; }
const Q8Kernels* q8_kernels_avx2() { return nullptr; }
}  // namespace jsd

#endif

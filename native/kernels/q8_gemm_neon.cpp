// q8_gemm.h's kernel for AArch64 CPUs with the dot-product extension (FEAT_DotProd: Apple M1 and
// later, Neoverse N1/V1/V2 = Graviton 2/3/4, Cortex-A76 and later): "q8-neon-dot".
//
// SDOT multiplies signed bytes by signed bytes, so the stored weights (w + 128) are flipped back
// to signed on load (eor 0x80) and the records' offsets are ignored. One SDOT by lane,
// vdotq_laneq_s32(acc, w, x, l), adds to each of 4 int32 lanes (4 weight rows) the dot product of
// that row's 4 bytes with the 4 activation bytes of lane l of x: one 64-byte step i of the layout
// (16 rows x 4 bytes) is four such weight registers, rows 4q..4q+3 in register q.
//
// Registers: a whole 16-row group by n activation rows needs 4n int32 accumulators and 4n f32
// sums; with 8 registers of weights that fits 32 only for n <= 2 (and a weight load then feeds 2
// rows). So a tile runs in four passes, one per register q (4 weight rows), over all blocks: per
// block its 8 weight registers (32 bytes of each of the 4 rows) are loaded and flipped once, then
// each activation row takes 2 loads, 8 SDOTs into one int32x4 and the block's float step
// (scvtf, fmul dw * dx, fma) into its one f32x4 sum. 12 activation rows per tile: 12 sums + 8
// weights + the flip constant + dw + the row's 2 x registers, its accumulator and dx = 26 of 32.
// q4_0 groups (q8_gemm.h) take the same tile: per pass and block, 4 loads give the 8 weight
// registers (low nibbles, high nibbles, each minus 8 to signed), the offsets ignored as for q8_0.
// The arithmetic is the VNNI kernel's: per block an exact int32 dot, then
// sum += float(acc) * (dw * dx) fused, so both give the same floats.
//
// Expected cost per 32-wide block per tile (16 weight rows x 12 activation rows = 6144 MACs):
//   loads  32 x 128-bit weights (4 passes x 8), 96 x 128-bit activations, 48 f32 activation
//          scales, 4 x 64-bit f16 weight scales = 180
//   SIMD   384 sdot, 32 eor, 48 scvtf, 48 fmul, 48 fma, 4 fcvtl = 564, of which 68% sdot
//          (and 48 register moves that zero the accumulators, which cores usually do at rename)
// On a core with 4 128-bit SIMD pipes that all take SDOT (Apple M-series P-cores, Neoverse V1/V2:
// SDOT latency 3, throughput 4 per cycle; the loads, 1.3 per cycle here, go to the separate load
// units) that is 564 / 4 = 141 cycles per 6144 MACs: about 44 MACs = 87 int8 ops per cycle of
// a peak of 128 (64 MACs), so about 280 GOP/s on a 3.2 GHz M1 P-core and 225 on a 2.6 GHz
// Graviton 3 core; Neoverse N1 (Graviton 2) has 2 such pipes: half per cycle. An assumption from
// published instruction tables, not measured: this machine has no Arm CPU; the kernel's results are
// checked under qemu (scripts/check-arm-kernel.sh).
//
// No i8mm (SMMLA) table yet: SMMLA does twice SDOT's MACs, but its operands are 2 rows x 8 bytes,
// so the weights need a zip per register (beside the flip) and each activation row pair 4 zips
// per block and pass, and its 2x2 result wants per-block scales [dw0 dx0, dw0 dx1, dw1 dx0, dw1 dx1]
// built from two rows' records. Counted the same way (12 rows, passes of 4 weight rows) that is
// 550 to 580 SIMD ops per block and tile against 564 here: no gain to expect while the per-block
// float step dominates, and nothing to measure it on.
#include <cstring>
#include <utility>

#include "kernels/q8_gemm_isa.h"

// gcc (8 and later) compiles the kernel for any AArch64 target, enabling the extension per function;
// clang only where the target has it already (Apple's arm64 does: its default CPU is an M1), as
// clang 14 (tried here) declares the dot-product intrinsics only then. Elsewhere the table is null and
// ggml's own kernels run.
#if defined(__aarch64__) && (defined(__linux__) || defined(__APPLE__)) && \
    ((defined(__GNUC__) && !defined(__clang__)) || (defined(__clang__) && defined(__ARM_FEATURE_DOTPROD)))
#include <arm_neon.h>
#if defined(__APPLE__)
#include <sys/sysctl.h>
#else
#include <sys/auxv.h>
#endif

namespace jsd {

// gcc's scheduler before register allocation hoists every row's loads and scale products to the
// top of the block and then spills the sums (12 rows: about 100 stack accesses per block); without
// it the tile keeps all in registers.
#if defined(__clang__)
#define JSD_DOTPROD_TARGET
#define JSD_TILE_SCHEDULE
#else
#define JSD_DOTPROD_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#define JSD_TILE_SCHEDULE __attribute__((optimize("no-schedule-insns")))
#endif

namespace {

constexpr int kBlock = kQ8Block;
constexpr int kGroup = kQ8Group;
constexpr int kTileRows = 12;  // activation rows per register tile

// Rows ith, ith + nth, ... of x to the activation records, exactly as the x86 quantizer writes
// them: round to nearest even of x * (127 / amax), saturated to int8 (plain NEON, no extension).
void quantize_rows(const float* x, int64_t rows, int64_t k, size_t x_stride, uint8_t* records, int ith, int nth) {
  const int64_t nb = k / kBlock;
  const int64_t row_bytes = q8_activation_row_bytes(k);
  for (int64_t m = ith; m < rows; m += nth) {
    const float* in = reinterpret_cast<const float*>(reinterpret_cast<const char*>(x) + m * x_stride);
    uint8_t* out = records + m * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      float32x4_t v[8];
      for (int j = 0; j < 8; ++j) v[j] = vld1q_f32(in + b * kBlock + 4 * j);
      float32x4_t mx = vabsq_f32(v[0]);
      for (int j = 1; j < 8; ++j) mx = vmaxq_f32(mx, vabsq_f32(v[j]));
      const float amax = vmaxvq_f32(mx);
      const float d = amax / 127.0f;
      const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
      int32x4_t q[8];
      for (int j = 0; j < 8; ++j) q[j] = vcvtnq_s32_f32(vmulq_n_f32(v[j], id));
      int8x8_t narrow[4];
      for (int j = 0; j < 4; ++j) narrow[j] = vqmovn_s16(vcombine_s16(vqmovn_s32(q[2 * j]), vqmovn_s32(q[2 * j + 1])));
      vst1q_s8(reinterpret_cast<int8_t*>(out + b * kBlock), vcombine_s8(narrow[0], narrow[1]));
      vst1q_s8(reinterpret_cast<int8_t*>(out + b * kBlock + 16), vcombine_s8(narrow[2], narrow[3]));
      const int32x4_t sum = vaddq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])),
                                      vaddq_s32(vaddq_s32(q[4], q[5]), vaddq_s32(q[6], q[7])));
      const int32_t offset = -128 * vaddvq_s32(sum);
      std::memcpy(out + k + 4 * b, &d, 4);
      std::memcpy(out + k + 4 * nb + 4 * b, &offset, 4);
    }
  }
}

// The weight steps of a pass: load(wb, i) gives rows 4q..4q+3's signed weights for values
// 4i .. 4i+3 of each row's block, wb pointing at the block's bytes + 16q. q8_0: +128 stored, flipped.
struct Q8Weights {
  static constexpr int kBlockBytes = kGroup * kBlock;
  JSD_DOTPROD_TARGET static int8x16_t load(const uint8_t* wb, int i) {
    return vreinterpretq_s8_u8(veorq_u8(vld1q_u8(wb + 64 * i), vdupq_n_u8(0x80)));
  }
};

// q4_0 groups (q8_gemm.h): low nibbles for steps 0..3, high ones for 4..7, stored 0..15 for q - 8.
struct Q4Weights {
  static constexpr int kBlockBytes = kGroup * kBlock / 2;
  JSD_DOTPROD_TARGET static int8x16_t load(const uint8_t* wb, int i) {
    const uint8x16_t raw = vld1q_u8(wb + 64 * (i & 3));
    const uint8x16_t nibble = i < 4 ? vandq_u8(raw, vdupq_n_u8(0x0F)) : vshrq_n_u8(raw, 4);
    return vsubq_s8(vreinterpretq_s8_u8(nibble), vdupq_n_s8(8));
  }
};

// One register tile: 16 output rows (one weight group) by MT activation rows, over all of k, in
// four passes of 4 weight rows (the comment at the top).
template <class Weights, int MT>
JSD_DOTPROD_TARGET JSD_TILE_SCHEDULE void gemm_tile(const uint8_t* quants, const uint16_t* scales, int64_t nb, const uint8_t* x,
                                                     int64_t k, int64_t row_bytes, float* out, int64_t ldo) {
  for (int q = 0; q < 4; ++q) {
    float32x4_t sum[MT];
#pragma GCC unroll 16
    for (int m = 0; m < MT; ++m) sum[m] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* wb = quants + b * Weights::kBlockBytes + 16 * q;
      int8x16_t w[kBlock / 4];
#pragma GCC unroll 8
      for (int i = 0; i < kBlock / 4; ++i) w[i] = Weights::load(wb, i);
      const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(scales + b * kGroup + 4 * q)));
#pragma GCC unroll 16
      for (int m = 0; m < MT; ++m) {
        const uint8_t* xm = x + m * row_bytes;
        const int8x16_t x0 = vld1q_s8(reinterpret_cast<const int8_t*>(xm + b * kBlock));
        const int8x16_t x1 = vld1q_s8(reinterpret_cast<const int8_t*>(xm + b * kBlock + 16));
        int32x4_t acc = vdupq_n_s32(0);
        acc = vdotq_laneq_s32(acc, w[0], x0, 0);
        acc = vdotq_laneq_s32(acc, w[1], x0, 1);
        acc = vdotq_laneq_s32(acc, w[2], x0, 2);
        acc = vdotq_laneq_s32(acc, w[3], x0, 3);
        acc = vdotq_laneq_s32(acc, w[4], x1, 0);
        acc = vdotq_laneq_s32(acc, w[5], x1, 1);
        acc = vdotq_laneq_s32(acc, w[6], x1, 2);
        acc = vdotq_laneq_s32(acc, w[7], x1, 3);
        float dx;
        std::memcpy(&dx, xm + k + 4 * b, 4);
        sum[m] = vfmaq_f32(sum[m], vcvtq_f32_s32(acc), vmulq_n_f32(dw, dx));
      }
    }
#pragma GCC unroll 16
    for (int m = 0; m < MT; ++m) vst1q_f32(out + m * ldo + 4 * q, sum[m]);
  }
}

template <int... MT>
constexpr Q8Kernels make_table(std::integer_sequence<int, MT...>) {
  return Q8Kernels{"q8-neon-dot", quantize_rows, kTileRows, {&gemm_tile<Q8Weights, MT + 1>...}, {&gemm_tile<Q4Weights, MT + 1>...}};
}

bool cpu_has_dotprod() {
#if defined(__APPLE__)
  int has = 0;
  size_t size = sizeof(has);
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &has, &size, nullptr, 0) == 0 && has != 0;
#else
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
}

}  // namespace

const Q8Kernels* q8_kernels_neon() {
  static constexpr Q8Kernels table = make_table(std::make_integer_sequence<int, kTileRows>{});
  static const bool cpu = cpu_has_dotprod();
  return cpu ? &table : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const Q8Kernels* q8_kernels_neon() { return nullptr; }
}  // namespace jsd

#endif

// The instruction-set kernels behind q8_gemm.h: each ISA file (q8_gemm_avx512.cpp,
// q8_gemm_neon.cpp) provides one Q8Kernels table, compiled with its own target attributes, and
// reports it only where the CPU can run it. q8_layout.cpp owns the weight layout; q8_gemm.cpp the
// split into tasks, the ggml ops and the choice among the tables. The tables see plain pointers
// only (no ggml), so that a kernel can be compiled and checked on its own, e.g. for another
// architecture under emulation (native/kernels/check/q8_neon_check.cpp).
//
// The activation record of one row of x (k values, nb = k / 32 blocks):
//   k int8 quants (round to nearest of x * 127 / amax per block),
//   nb f32 scales (amax / 127),
//   nb int32 offsets: -128 * (sum of the block's quants), which undoes the weights' +128 when the
//   kernel multiplies the unsigned stored weights by the signed activations (x86 VNNI's u8 x s8).
// A kernel that reads the weights as signed (w ^ 0x80) ignores the offsets.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jsd {

inline constexpr int kQ8Block = 32;       // q8_0 block width
inline constexpr int kQ8Group = 16;       // output rows per interleaved group
inline constexpr int kQ8BlockBytes = 34;  // ggml's block_q8_0: f16 scale + 32 int8
inline constexpr int kQ4BlockBytes = 18;  // ggml's block_q4_0: f16 scale + 16 bytes of nibbles
inline constexpr int kQ8MaxTileRows = 16;

// Bytes of one row's activation record (below).
inline int64_t q8_activation_row_bytes(int64_t k) { return k + 8 * (k / kQ8Block); }

// Where the parts of row m's record are, for a quantize_rows to write.
struct Q8Record {
  uint8_t* quants;
  float* scales;
  int32_t* offsets;
};
inline Q8Record q8_activation_record(uint8_t* records, int64_t m, int64_t k) {
  uint8_t* row = records + m * q8_activation_row_bytes(k);
  return {row, reinterpret_cast<float*>(row + k), reinterpret_cast<int32_t*>(row + k + 4 * (k / kQ8Block))};
}

// One register tile: the 16 output rows of one weight group (quants, then f16 scales) by mt
// activation records starting at x (row_bytes apart), over all nb blocks; writes out[m * ldo + r].
using Q8TileFn = void (*)(const uint8_t* quants, const uint16_t* scales, int64_t nb, const uint8_t* x, int64_t k, int64_t row_bytes,
                          float* out, int64_t ldo);

struct Q8Kernels {
  const char* name;  // "q8-vnni" (AVX-512 VNNI), "q8-avx-vnni", "q8-avx2": what JSD_Q8_KERNEL selects and the bench reports
  // Writes the activation records (q8_activation_row_bytes(k) apart) of rows ith, ith + nth, ... of
  // x, `rows` rows of k floats x_stride bytes apart.
  void (*quantize_rows)(const float* x, int64_t rows, int64_t k, size_t x_stride, uint8_t* out, int ith, int nth);
  int tile_rows;                     // activation rows per full tile
  Q8TileFn tiles[kQ8MaxTileRows];    // tiles[mt - 1] handles mt rows, 1 <= mt <= tile_rows
  // The same tiles on q4_0 groups (q8_gemm.h), the same activation records; all null where the
  // table has none (q4_0 then stays on ggml's repacked kernels).
  Q8TileFn q4_tiles[kQ8MaxTileRows];
};

// Each returns its table where this build and this CPU have the instructions, else null.
const Q8Kernels* q8_kernels_avx512();    // "q8-vnni": AVX-512 VNNI (q8_gemm_avx512.cpp)
const Q8Kernels* q8_kernels_avx_vnni();  // "q8-avx-vnni": AVX2 + AVX-VNNI (q8_gemm_avx2.cpp)
const Q8Kernels* q8_kernels_avx2();      // "q8-avx2": AVX2, FMA, F16C (q8_gemm_avx2.cpp)
const Q8Kernels* q8_kernels_neon();      // "q8-neon-dot": AArch64 with the dot-product extension (q8_gemm_neon.cpp)

}  // namespace jsd

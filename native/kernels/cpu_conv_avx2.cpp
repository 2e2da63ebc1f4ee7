// cpu_conv.h's kernel for x86 CPUs with AVX2 and FMA: register tiles of 6 output pixels by 16 output
// channels (12 accumulators of 8 floats, in the 16 ymm registers with the 2 weight vectors and the
// broadcast), so that every broadcast input value feeds 2 FMAs and every weight load 6.
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu_conv_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/simd_f32.h"

namespace jsd {

#define JSD_CONV_TARGET __attribute__((target("avx2,fma")))

namespace conv_avx2 {

using Simd = F32x8;

constexpr int kTilePixels = 6;
constexpr int kTileVecs = 2;
constexpr int kChunkTiles = 16;

#include "kernels/cpu_conv_tile.h"
#include "kernels/cpu_conv_winograd_tile.h"

}  // namespace conv_avx2

const ConvKernels* conv_kernels_avx2() {
  static constexpr ConvKernels table{"conv-avx2", conv_avx2::kBlock, conv_avx2::kChunk, conv_avx2::run, conv_avx2::run_winograd};
  static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return cpu ? &table : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const ConvKernels* conv_kernels_avx2() { return nullptr; }
}  // namespace jsd

#endif

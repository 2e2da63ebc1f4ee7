// cpu_conv.h's kernel for x86 CPUs with AVX-512F: register tiles of 6 output pixels by 64 output
// channels (24 accumulators of 16 floats), so that every broadcast input value feeds 4 FMAs and
// every weight load 6.
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu_conv_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/simd_f32.h"

namespace jsd {

#define JSD_CONV_TARGET __attribute__((target("avx512f,fma")))

namespace conv_avx512 {

using Simd = F32x16;

constexpr int kTilePixels = 6;
constexpr int kTileVecs = 4;
constexpr int kChunkTiles = 16;

#include "kernels/cpu_conv_tile.h"
#include "kernels/cpu_conv_winograd_tile.h"

}  // namespace conv_avx512

const ConvKernels* conv_kernels_avx512() {
  static constexpr ConvKernels table{"conv-avx512", conv_avx512::kBlock, conv_avx512::kChunk, conv_avx512::run, conv_avx512::run_winograd};
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return cpu ? &table : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const ConvKernels* conv_kernels_avx512() { return nullptr; }
}  // namespace jsd

#endif

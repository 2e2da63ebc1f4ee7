// cpu_conv.h's kernel for x86 CPUs with AVX-512F: register tiles of 6 output pixels by 64 output
// channels (24 accumulators of 16 floats), so that every broadcast input value feeds 4 FMAs and
// every weight load 6.
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu_conv_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/x86_intrinsics.h"

namespace jsd {

#define JSD_CONV_TARGET __attribute__((target("avx512f,fma")))

namespace conv_avx512 {

struct Simd {
  using Vec = __m512;
  static constexpr int kLanes = 16;
  JSD_CONV_TARGET static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  JSD_CONV_TARGET static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  JSD_CONV_TARGET static Vec broadcast(float s) { return _mm512_set1_ps(s); }
  JSD_CONV_TARGET static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  JSD_CONV_TARGET static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  JSD_CONV_TARGET static Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
};

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

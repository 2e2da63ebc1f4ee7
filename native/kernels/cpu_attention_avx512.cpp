// cpu_attention_isa.h's kernel for x86 CPUs with AVX-512 (F and DQ): cpu_attention_tiles.h on
// 16-float vectors. Register tiles of 24 and 20 accumulators: per broadcast key or value, 4 query
// vectors; per query vector, 6 keys or 5 channels (40-wide heads are 8 such). Loads per FMA stay
// below one half, which this core needs to keep both FMA units busy (measured on a Sapphire
// Rapids core: 88 % of peak in a bare loop, against 82 % for 2 x 8 and 70 % for 1 x 24).
#include <cstdint>
#include <utility>

#include "kernels/cpu_attention_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/simd_f32.h"

namespace jsd {
namespace attention_avx512 {

#define JSD_ATTENTION_TARGET __attribute__((target("avx512f,avx512dq,fma")))

#include "kernels/cpu_attention_avx512_simd.h"
#include "kernels/cpu_attention_tiles.h"

#undef JSD_ATTENTION_TARGET

}  // namespace attention_avx512

const AttentionKernel* attention_kernel_avx512() {
  static const AttentionKernel kernel{"avx512", attention_avx512::kBlock, attention_avx512::scratch_floats, attention_avx512::attend_block, nullptr, nullptr};
  static const bool runs = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return runs ? &kernel : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const AttentionKernel* attention_kernel_avx512() { return nullptr; }
}  // namespace jsd

#endif

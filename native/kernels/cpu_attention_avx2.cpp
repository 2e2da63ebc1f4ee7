// cpu_attention_isa.h's kernel for x86 CPUs with AVX2 and FMA but no AVX-512 (AMD before Zen 4,
// Intel client cores): cpu_attention_tiles.h on 8-float vectors. Register tiles of 12
// accumulators in the 16 ymm registers (2 query vectors by 6 keys or 6 channels, with the query
// or weight vectors and one broadcast), blocks of 16 queries.
#include <cstdint>
#include <utility>

#include "kernels/cpu_attention_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/simd_f32.h"

namespace jsd {
namespace attention_avx2 {

#define JSD_ATTENTION_TARGET __attribute__((target("avx2,fma")))

struct Simd : F32x8 {
  using V = F;
  static constexpr int kRowVectors = 2;
  static constexpr int kScoreKeys = 6;
  static constexpr int kValueChannels = 6;

  // 2^x: the polynomial of the AVX-512 kernel on f = x - floor(x), times 2^floor(x) built in the
  // exponent bits. x is first raised to -127, whose 2^floor is the bit pattern 0: what lies
  // below the normal range becomes 0, as the AVX-512 kernel's flush to zero makes it.
  JSD_ATTENTION_TARGET static V exp2(V x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-127.0f));
    const V whole = _mm256_floor_ps(x);
    const V f = _mm256_sub_ps(x, whole);
    V p = _mm256_set1_ps(1.8825974548235536e-3f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(8.973280899226665e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.584403872489929e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.401454746723175e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.93154513835907e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.999998807907104e-1f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(whole), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  }

  JSD_ATTENTION_TARGET static __m256i first(int64_t count) {
    const int n = count > 8 ? 8 : count < 0 ? 0 : static_cast<int>(count);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // base[i * stride] for the first count lanes, zero past them.
  JSD_ATTENTION_TARGET static V gather(const float* base, int64_t stride, int64_t count) {
    const __m256i index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(stride)));
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, index, _mm256_castsi256_ps(first(count)), 4);
  }
  JSD_ATTENTION_TARGET static void store_first(float* p, V x, int64_t count) { _mm256_maskstore_ps(p, first(count), x); }
};

#include "kernels/cpu_attention_tiles.h"

#undef JSD_ATTENTION_TARGET

}  // namespace attention_avx2

const AttentionKernel* attention_kernel_avx2() {
  static const AttentionKernel kernel{"avx2", attention_avx2::kBlock, attention_avx2::scratch_floats, attention_avx2::attend_block, nullptr, nullptr};
  static const bool runs = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return runs ? &kernel : nullptr;
}

}  // namespace jsd

#else

namespace jsd {
const AttentionKernel* attention_kernel_avx2() { return nullptr; }
}  // namespace jsd

#endif

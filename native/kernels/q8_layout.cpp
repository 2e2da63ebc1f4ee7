#include "kernels/q8_layout.h"

#include <cstring>

#include "kernels/q8_gemm_isa.h"

namespace jsd {

namespace {

constexpr int kBlock = kQ8Block;
constexpr int kGroup = kQ8Group;
constexpr int kBlockBytes = kQ8BlockBytes;

// Both directions of the layout change: forward reads ggml's rows and writes the groups in order.
template <bool forward>
void reorder(const uint8_t* src, uint8_t* dst, int64_t n, int64_t k) {
  const int64_t nb = k / kBlock;
  const int64_t row_bytes = nb * kBlockBytes;
  for (int64_t g = 0; g < n / kGroup; ++g) {
    const int64_t group = g * kGroup * row_bytes;
    const int64_t scales = group + nb * kGroup * kBlock;
    int64_t quants = group;
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < kGroup; ++r) {
        const int64_t plain = group + r * row_bytes + b * kBlockBytes;
        const int64_t packed = scales + (b * kGroup + r) * 2;
        std::memcpy(dst + (forward ? packed : plain), src + (forward ? plain : packed), 2);
      }
      for (int i = 0; i < kBlock / 4; ++i) {
        for (int r = 0; r < kGroup; ++r) {
          // Four quants at a time; +128 on each byte is a flip of its top bit, and its own inverse.
          const int64_t plain = group + r * row_bytes + b * kBlockBytes + 2 + 4 * i;
          uint32_t four;
          std::memcpy(&four, src + (forward ? plain : quants), 4);
          four ^= 0x80808080u;
          std::memcpy(dst + (forward ? quants : plain), &four, 4);
          quants += 4;
        }
      }
    }
  }
}

}  // namespace

void q8_interleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<true>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

void q8_deinterleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<false>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

}  // namespace jsd

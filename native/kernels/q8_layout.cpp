#include "kernels/q8_layout.h"

#include <cstring>

#include "kernels/q8_gemm_isa.h"

namespace jsd {

namespace {

constexpr int kGroup = kQ8Group;

// The two formats: bytes of one row's block in ggml's rows (f16 scale first, then the quants),
// and the mask xor-ed into each stored quant byte (q8_0's +128 is a flip of its top bit, and its
// own inverse; q4_0's nibbles are stored as they are).
struct Format {
  int block_bytes;
  uint32_t flip;
};
constexpr Format kQ8{kQ8BlockBytes, 0x80808080u};
constexpr Format kQ4{kQ4BlockBytes, 0};

// Both directions of the layout change: forward reads ggml's rows and writes the groups in order.
// Per block and group, the quants go 4 bytes of each of the 16 rows at a time, then the scales.
template <bool forward>
void reorder(const Format f, const uint8_t* src, uint8_t* dst, int64_t n, int64_t k) {
  const int64_t nb = k / kQ8Block;
  const int quant_bytes = f.block_bytes - 2;
  const int64_t row_bytes = nb * f.block_bytes;
  for (int64_t g = 0; g < n / kGroup; ++g) {
    const int64_t group = g * kGroup * row_bytes;
    const int64_t scales = group + nb * kGroup * quant_bytes;
    int64_t quants = group;
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < kGroup; ++r) {
        const int64_t plain = group + r * row_bytes + b * f.block_bytes;
        const int64_t packed = scales + (b * kGroup + r) * 2;
        std::memcpy(dst + (forward ? packed : plain), src + (forward ? plain : packed), 2);
      }
      for (int i = 0; i < quant_bytes / 4; ++i) {
        for (int r = 0; r < kGroup; ++r) {
          const int64_t plain = group + r * row_bytes + b * f.block_bytes + 2 + 4 * i;
          uint32_t four;
          std::memcpy(&four, src + (forward ? plain : quants), 4);
          four ^= f.flip;
          std::memcpy(dst + (forward ? quants : plain), &four, 4);
          quants += 4;
        }
      }
    }
  }
}

}  // namespace

void q8_interleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<true>(kQ8, static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

void q8_deinterleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<false>(kQ8, static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

void q4_interleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<true>(kQ4, static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

void q4_deinterleave(const void* src, void* dst, int64_t n, int64_t k) {
  reorder<false>(kQ4, static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, k);
}

}  // namespace jsd

// The interleaved q8_0 and q4_0 weight layouts of q8_gemm.h (groups of 16 rows), on plain
// pointers and without ggml, so that an instruction-set kernel (q8_gemm_isa.h) can be checked on
// its own, e.g. under emulation (native/kernels/check/).
#pragma once

#include <cstdint>

namespace jsd {

// Interleaves n rows (a multiple of 16) of k/32 q8_0 blocks (ggml's block_q8_0 layout) from src
// into dst, which has the same size; q8_deinterleave undoes it.
void q8_interleave(const void* src, void* dst, int64_t n, int64_t k);
void q8_deinterleave(const void* src, void* dst, int64_t n, int64_t k);

// The same for q4_0 rows (ggml's block_q4_0: f16 scale, 16 bytes of nibbles), into q8_gemm.h's
// q4_0 groups.
void q4_interleave(const void* src, void* dst, int64_t n, int64_t k);
void q4_deinterleave(const void* src, void* dst, int64_t n, int64_t k);

}  // namespace jsd

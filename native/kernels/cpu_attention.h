// Multi-head attention for the CPU as one fused ggml custom op (x86 with AVX-512 or AVX2 + FMA):
// per head and block of queries, the scores, their softmax and the weighted sum of values are
// computed tile by tile of keys with an online softmax (cpu_attention_tiles.h), so that no score
// leaves L1. ggml's mul_mat + soft_max + mul_mat path writes the whole score matrix to memory and
// reads it back twice; at 512x512 that is 1 GB per layer, and it took about half of a UNet step.
// The default kernels are plain f32 arithmetic: the same sums in another order, and an
// exponential good to 2e-7.
#pragma once

#include "ggml.h"

namespace jsd {

// True on x86-64 CPUs with AVX-512 (F and DQ) or AVX2 and FMA, unless JSD_NO_FUSED_ATTENTION is
// set; JSD_ATTENTION_KERNEL=avx512|avx2 forces one kernel for every op, =amx-bf16 the bf16
// kernel on AMX tiles (cpu_attention_isa.h) for every op.
bool cpu_attention_available();

// The kernel the op runs ("avx512", "avx2", "amx-bf16"), "" when none: of ops that must stay f32
// (bf16 false) or may round to bf16 (true: "amx-bf16" where the CPU has AMX-BF16 and the OS
// grants the tiles, unless JSD_ATTENTION_KERNEL names a kernel).
const char* cpu_attention_kernel(bool bf16 = false);

// softmax(scale * q k^T) v for each of `heads` heads; q [C, Lq, N], k and v [C, Lk, N] (f32,
// heads side by side in C) -> [C, Lq, N]. Not causal. Only the CPU backend runs it, on up to
// `threads` threads (each has a slice of scratch for its block in the compute buffer). bf16: the
// op may run the bf16 kernel (the caller's weights are quantized, so its rounding is small beside
// theirs).
ggml_tensor* cpu_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, int heads, float scale, int threads,
                           bool bf16 = false);

}  // namespace jsd

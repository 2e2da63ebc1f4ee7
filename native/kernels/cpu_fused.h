// Fused elementwise ggml ops for the CPU backend: each reads its input once where ggml's chain of
// ops would write and read an intermediate tensor per step (kernels/cpu_activations.h's vector
// math). Only the CPU backend runs them.
#pragma once

#include "ggml.h"

namespace jsd {

// diffusers' GEGLU after its projection: proj [2F, L, N] (f32, contiguous; value first, then
// gate) -> value * gelu(gate) [F, L, N].
ggml_tensor* cpu_geglu(ggml_context* ctx, ggml_tensor* proj);

// Group norm of x [W, H, C, N] (f32, contiguous) over `groups` groups of channels, times weight
// plus bias ([C] f32), then SiLU where silu: ggml_group_norm + mul + add (+ silu) in one pass
// over each group after its statistics.
ggml_tensor* cpu_group_norm(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, int groups, float eps, bool silu);

}  // namespace jsd

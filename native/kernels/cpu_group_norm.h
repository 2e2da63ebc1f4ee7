// Group normalization of a channels-last image on the CPU, as one ggml custom op with the affine
// weight and bias applied in the same pass (ggml's group_norm reads [W, H, C, N] only, and its
// weight and bias are two more ops over the whole image).
#pragma once

#include "ggml.h"

namespace jsd {

// x [C, W, H, N] (channels-last, f32); weight and bias [C] f32 -> [C, W, H, N]: each of `groups`
// groups of C / groups consecutive channels of each image normalized over its pixels to mean 0
// and variance 1 (biased, plus eps), then scaled and shifted per channel. Only the CPU backend runs it.
// (The UNet's images stay [W, H, C, N]: their group norm is cpu_fused.h's cpu_group_norm.)
ggml_tensor* cpu_group_norm_channels_last(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, int groups, float eps);

}  // namespace jsd

// Parameters of the engine's own ggml custom ops, kept in the node's op_params after ggml's
// custom-op record (function, task count, userdata): a graph outlives the call that builds it, so
// a node's parameters must live in the node.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "ggml.h"

namespace jsd {

inline constexpr int kMaxCustomParams = 8;

// Stores up to kMaxCustomParams values in t's op_params (t made by ggml_custom_4d).
void set_custom_params(ggml_tensor* t, std::initializer_list<int32_t> values);
int32_t custom_param(const ggml_tensor* t, int i);

// A float as an int32 parameter, and back.
int32_t float_param(float v);
float param_float(int32_t bits);

}  // namespace jsd

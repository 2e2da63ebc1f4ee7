#include "kernels/custom_op_params.h"

#include <cstring>

// ggml_custom_op_params: the record the parameters go after (the header's static helpers are unused here).
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "ggml-impl.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace jsd {

namespace {
// The first int32 slot after ggml's record (24 bytes on 64-bit targets), rounded up.
constexpr int kFirst = (sizeof(ggml_custom_op_params) + 15) / 16 * 4;
static_assert(kFirst + kMaxCustomParams <= GGML_MAX_OP_PARAMS / 4, "op_params too small for the custom ops' parameters");
}  // namespace

void set_custom_params(ggml_tensor* t, std::initializer_list<int32_t> values) {
  GGML_ASSERT(t->op == GGML_OP_CUSTOM && values.size() <= kMaxCustomParams);
  int i = kFirst;
  for (int32_t v : values) t->op_params[i++] = v;
}

int32_t custom_param(const ggml_tensor* t, int i) { return t->op_params[kFirst + i]; }

int32_t float_param(float v) {
  int32_t bits;
  std::memcpy(&bits, &v, 4);
  return bits;
}

float param_float(int32_t bits) {
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

}  // namespace jsd

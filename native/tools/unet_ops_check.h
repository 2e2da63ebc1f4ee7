// Correctness checks of the UNet's fused CPU ops (kernels/cpu_fused.h, q8_records.h, q8_product's
// addends and image output) against the ggml ops they replace, on random data (for tests).
#pragma once

#include <string>
#include <vector>

namespace jsd {

struct OpCheck {
  std::string name;
  bool exact = false;       // expected to give the replaced ops' bits (the int8 paths)
  double max_abs_diff = 0;  // between the fused op's output and the replaced ops'
  double max_abs = 0;       // largest magnitude in the replaced ops' output
};

// Every check, on `threads` threads. "gelu" compares gelu_row with the exact GELU in double
// (max_abs_diff: the largest error divided by max(|x|, 1) over [-12, 12]).
std::vector<OpCheck> check_unet_ops(int threads);

}  // namespace jsd

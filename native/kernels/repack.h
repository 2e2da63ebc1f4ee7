// ggml's CPU "repack" buffer type: q4_0/q4_K weights stored there are interleaved for its
// int8 matrix kernels (q4_0_8x8 etc.), which run 2-2.5x faster than the plain q4 kernels.
#pragma once

#include "ggml-backend.h"

namespace jsd {

// nullptr when this ggml build has no repacking buffer.
ggml_backend_buffer_type_t cpu_repack_buffer_type();

}  // namespace jsd

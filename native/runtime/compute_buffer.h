// The buffer types of CPU compute buffers and of copied weights.
//
// ggml's CPU buffers come from posix_memalign. glibc serves a block from mmap only above its
// mmap threshold, which it raises (up to 32 MiB) each time such a block is freed; after that,
// buffers of a few MB land on the heap, and freeing and allocating them call after call (every
// generate() releases its buffers) fragments it: a soak of the small embedded model grew and
// shrank its RSS by 10-15 % between samples. Buffers that are anonymous mappings of their own go
// back to the system whole when freed, whatever their size.
#pragma once

#include "ggml-backend.h"

namespace jsd {

// On glibc: mapped CPU buffers; elsewhere ggml's CPU buffer type (macOS already maps them).
ggml_backend_buffer_type_t cpu_compute_buffer_type();
// The same, with transparent huge pages asked for: for weights copied into a layout of our own.
ggml_backend_buffer_type_t cpu_weight_buffer_type();

}  // namespace jsd

// JSD_PROFILE=1: computes a graph one node at a time and prints where the time goes, per
// op, to stderr. For development; slower than a normal run.
#pragma once

#include "ggml-backend.h"
#include "ggml.h"

namespace jsd {

bool profiling_enabled();
ggml_status compute_profiled(ggml_backend_t backend, ggml_cgraph* graph, const char* label);

}  // namespace jsd

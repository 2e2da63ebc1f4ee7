// ggml's CPU backend reached through its registry only. With backend plugins
// (GGML_BACKEND_DL) the CPU backend is a plugin of its own, chosen at run time among ggml's CPU
// variants, so its C functions (ggml_backend_cpu_init, ggml_backend_cpu_set_n_threads, ...)
// cannot be linked against: the registry hands out the device and, by name, the few extra
// functions we call. The same code works where the CPU backend is linked in statically (the
// sanitizer and fuzz builds).
#pragma once

#include <string>
#include <vector>

#include "ggml-backend.h"

namespace jsd {

// The CPU device; throws NativeUnavailable when no CPU backend has been loaded.
ggml_backend_dev_t cpu_device();
// A new CPU backend instance (the caller frees it); throws when none can be made.
ggml_backend_t init_cpu_backend();
bool is_cpu_backend(ggml_backend_t backend);
void set_cpu_threads(ggml_backend_t backend, int threads);
void set_cpu_abort_callback(ggml_backend_t backend, ggml_abort_callback callback, void* data);
// The instruction sets the loaded CPU variant was compiled for, lower case ("avx2", "avx512_vnni",
// "llamafile", ...): the variant's own "ggml_backend_get_features" list; empty before the CPU
// backend is loaded (backend_loader.h).
std::vector<std::string> cpu_backend_features();

}  // namespace jsd

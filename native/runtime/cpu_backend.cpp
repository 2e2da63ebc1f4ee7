#include "runtime/cpu_backend.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "runtime/error.h"

namespace jsd {

namespace {

// Looks up one of the CPU registry's named extras; null when this variant lacks it.
template <typename Fn>
Fn cpu_proc(const char* name) {
  return reinterpret_cast<Fn>(ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(cpu_device()), name));
}

}  // namespace

ggml_backend_dev_t cpu_device() {
  ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (dev == nullptr) throw Error(ErrorCode::NativeUnavailable, "ggml's CPU backend is not loaded (no libggml-cpu plugin was found beside the addon)");
  return dev;
}

ggml_backend_t init_cpu_backend() {
  ggml_backend_t backend = ggml_backend_dev_init(cpu_device(), nullptr);
  if (backend == nullptr) throw Error(ErrorCode::Internal, "cannot initialise ggml's CPU backend");
  return backend;
}

bool is_cpu_backend(ggml_backend_t backend) {
  ggml_backend_dev_t dev = backend ? ggml_backend_get_device(backend) : nullptr;
  return dev != nullptr && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

void set_cpu_threads(ggml_backend_t backend, int threads) {
  if (auto fn = cpu_proc<ggml_backend_set_n_threads_t>("ggml_backend_set_n_threads")) fn(backend, threads);
}

void set_cpu_abort_callback(ggml_backend_t backend, ggml_abort_callback callback, void* data) {
  using SetAbort = void (*)(ggml_backend_t, ggml_abort_callback, void*);
  auto fn = cpu_proc<SetAbort>("ggml_backend_set_abort_callback");
  if (fn == nullptr) throw Error(ErrorCode::Internal, "ggml's CPU backend offers no abort callback");
  fn(backend, callback, data);
}

std::vector<std::string> cpu_backend_features() {
  std::vector<std::string> out;
  if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr) return out;  // not loaded yet
  auto get = cpu_proc<ggml_backend_get_features_t>("ggml_backend_get_features");
  if (get == nullptr) return out;
  for (const ggml_backend_feature* f = get(ggml_backend_dev_backend_reg(cpu_device())); f && f->name; ++f) {
    // Flags come as "1"; a few entries carry values instead (e.g. the variant's name).
    if (std::strcmp(f->value, "1") != 0) continue;
    std::string name = f->name;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.push_back(name);
  }
  return out;
}

}  // namespace jsd

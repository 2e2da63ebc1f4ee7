#include "kernels/repack.h"

#include <cstring>

namespace jsd {

ggml_backend_buffer_type_t cpu_repack_buffer_type() {
  static ggml_backend_buffer_type_t found = []() -> ggml_backend_buffer_type_t {
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (dev == nullptr) return nullptr;
    auto get_extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
        ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts"));
    if (get_extra == nullptr) return nullptr;
    for (ggml_backend_buffer_type_t* b = get_extra(dev); b != nullptr && *b != nullptr; ++b) {
      if (std::strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") == 0) return *b;
    }
    return nullptr;
  }();
  return found;
}

}  // namespace jsd

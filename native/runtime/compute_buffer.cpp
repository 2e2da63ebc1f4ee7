#include "runtime/compute_buffer.h"

#include "ggml-backend-impl.h"

#if defined(__GLIBC__)
#include <sys/mman.h>
#endif

namespace jsd {

#if defined(__GLIBC__)
namespace {

void free_mapped(ggml_backend_buffer_t buffer) { munmap(buffer->context, buffer->size); }

ggml_backend_buffer_t alloc_mapped(ggml_backend_buffer_type_t buft, size_t size, bool huge_pages) {
  if (size == 0) size = 1;
  void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) return nullptr;  // ggml-alloc reports the failure; the engine throws OutOfMemory
  // Weights are written once and then streamed by every matrix product: 2 MiB pages make the
  // first write 512x fewer page faults and the reads fewer TLB misses. Advice only.
  if (huge_pages) madvise(data, size, MADV_HUGEPAGE);
  // The CPU buffer functions read the data pointer from the buffer's context, so a buffer over
  // this mapping behaves as ggml's own CPU buffers do; only freeing differs.
  ggml_backend_buffer_t view = ggml_backend_cpu_buffer_from_ptr(data, size);
  if (view == nullptr) {
    munmap(data, size);
    return nullptr;
  }
  ggml_backend_buffer_i iface = view->iface;
  ggml_backend_buffer_free(view);  // a view owns nothing: this frees only its struct
  iface.free_buffer = free_mapped;
  return ggml_backend_buffer_init(buft, iface, data, size);
}

ggml_backend_buffer_t alloc_compute(ggml_backend_buffer_type_t buft, size_t size) { return alloc_mapped(buft, size, false); }
ggml_backend_buffer_t alloc_weights(ggml_backend_buffer_type_t buft, size_t size) { return alloc_mapped(buft, size, true); }

const char* mapped_name(ggml_backend_buffer_type_t) { return "CPU_MAPPED"; }
size_t mapped_alignment(ggml_backend_buffer_type_t) { return ggml_backend_buft_get_alignment(ggml_backend_cpu_buffer_type()); }
bool mapped_is_host(ggml_backend_buffer_type_t) { return true; }

ggml_backend_buffer_type mapped_type(ggml_backend_buffer_t (*alloc)(ggml_backend_buffer_type_t, size_t)) {
  return {
      /* .iface = */ {
          /* .get_name       = */ mapped_name,
          /* .alloc_buffer   = */ alloc,
          /* .get_alignment  = */ mapped_alignment,
          /* .get_max_size   = */ nullptr,
          /* .get_alloc_size = */ nullptr,
          /* .is_host        = */ mapped_is_host,
      },
      /* .device  = */ ggml_backend_buft_get_device(ggml_backend_cpu_buffer_type()),
      /* .context = */ nullptr,
  };
}

}  // namespace

ggml_backend_buffer_type_t cpu_compute_buffer_type() {
  static ggml_backend_buffer_type type = mapped_type(alloc_compute);
  return &type;
}

ggml_backend_buffer_type_t cpu_weight_buffer_type() {
  static ggml_backend_buffer_type type = mapped_type(alloc_weights);
  return &type;
}
#else
ggml_backend_buffer_type_t cpu_compute_buffer_type() { return ggml_backend_cpu_buffer_type(); }
ggml_backend_buffer_type_t cpu_weight_buffer_type() { return ggml_backend_cpu_buffer_type(); }
#endif

}  // namespace jsd

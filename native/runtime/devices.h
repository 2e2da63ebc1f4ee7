// Compute devices ggml offers in this build (CPU always; CUDA, Vulkan, Metal when compiled in
// and present), and the choice of one for a model.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ggml-backend.h"

namespace jsd {

struct DeviceInfo {
  std::string backend;      // "cpu", "cuda", "vulkan", "metal", ...
  std::string name;         // ggml's device name, e.g. "CUDA0"
  std::string description;  // e.g. the GPU's model
  std::string type;         // ggml's device type: "cpu", "gpu", "igpu" or "accel" (lavapipe's Vulkan device is "cpu")
  int index = 0;            // index among the devices of this backend
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};

std::vector<DeviceInfo> list_devices();

// The named backend's device number `device`; throws InvalidArgument when no loaded backend of
// that name has it. ("auto" is resolved before this, by lib/native/backends.ts's one rule.)
ggml_backend_dev_t choose_device(const std::string& backend, int device, std::string* chosen_backend);

}  // namespace jsd

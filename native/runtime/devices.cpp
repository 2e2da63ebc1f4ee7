#include "runtime/devices.h"

#include <algorithm>
#include <cctype>

#include "runtime/error.h"

namespace jsd {

namespace {

std::string backend_of(ggml_backend_dev_t dev) {
  std::string name = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

}  // namespace

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    DeviceInfo info;
    info.backend = backend_of(dev);
    info.name = ggml_backend_dev_name(dev);
    info.description = ggml_backend_dev_description(dev);
    switch (ggml_backend_dev_type(dev)) {
      case GGML_BACKEND_DEVICE_TYPE_CPU: info.type = "cpu"; break;
      case GGML_BACKEND_DEVICE_TYPE_GPU: info.type = "gpu"; break;
      case GGML_BACKEND_DEVICE_TYPE_IGPU: info.type = "igpu"; break;
      default: info.type = "accel"; break;
    }
    info.index = static_cast<int>(std::count_if(out.begin(), out.end(), [&](const DeviceInfo& d) { return d.backend == info.backend; }));
    ggml_backend_dev_memory(dev, &info.free_bytes, &info.total_bytes);
    out.push_back(info);
  }
  return out;
}

ggml_backend_dev_t choose_device(const std::string& backend, int device, std::string* chosen_backend) {
  const size_t n = ggml_backend_dev_count();
  int seen = 0;
  std::string available;
  for (size_t i = 0; i < n; ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    const std::string name = backend_of(dev);
    if (available.find(name) == std::string::npos) available += (available.empty() ? "" : ", ") + name;
    if (name == backend && seen++ == device) {
      *chosen_backend = name;
      return dev;
    }
  }
  if (seen > 0) {
    throw Error(ErrorCode::InvalidArgument, "backend '" + backend + "' has " + std::to_string(seen) + " device(s); device " + std::to_string(device) + " does not exist");
  }
  throw Error(ErrorCode::InvalidArgument, "backend '" + backend + "' is not available in this build or on this machine (available: " + available + ")");
}

}  // namespace jsd

#include "runtime/placement.h"

#include <algorithm>
#include <cstdio>

#include "runtime/error.h"

namespace jsd {

std::string format_mib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.0f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

size_t device_peak_bytes(const std::vector<NetworkNeeds>& networks, const std::vector<bool>& on_device) {
  size_t weights = 0;
  size_t largest_compute = 0;
  size_t text_compute = 0;
  for (size_t i = 0; i < networks.size(); ++i) {
    if (!on_device[i]) continue;
    weights += networks[i].weight_bytes;
    if (networks[i].name == "text_encoder") {
      text_compute = networks[i].compute_bytes;
    } else {
      largest_compute = std::max(largest_compute, networks[i].compute_bytes);
    }
  }
  return weights + largest_compute + text_compute;
}

Placement plan_placement(const PlacementInput& input) {
  Placement plan;
  plan.device_budget = input.device_budget;
  const size_t n = input.networks.size();
  auto finish = [&](const std::vector<bool>& on_device, const std::vector<std::string>& reasons) {
    plan.networks.clear();
    plan.gpu = std::find(on_device.begin(), on_device.end(), true) != on_device.end();
    plan.device_bytes = plan.gpu ? device_peak_bytes(input.networks, on_device) : 0;
    for (size_t i = 0; i < n; ++i) {
      const NetworkNeeds& need = input.networks[i];
      plan.networks.push_back({need.name, !on_device[i], need.weight_bytes, need.compute_bytes, reasons[i]});
    }
    return plan;
  };

  std::vector<bool> on_device(n, input.gpu);
  std::vector<std::string> reasons(n, input.gpu ? "on " + input.device : "the backend is the CPU");
  if (!input.gpu) return finish(on_device, reasons);
  for (size_t i = 0; i < n; ++i) {
    if (input.networks[i].forced_cpu) {
      on_device[i] = false;
      reasons[i] = "on the CPU, as asked";
    }
  }
  // Move the cheapest-to-move networks off the device until the rest fits.
  for (const char* name : {"safety_checker", "vae", "text_encoder"}) {
    if (device_peak_bytes(input.networks, on_device) <= input.device_budget) break;
    for (size_t i = 0; i < n; ++i) {
      if (input.networks[i].name != name || !on_device[i]) continue;
      on_device[i] = false;
      reasons[i] = "on the CPU: the device's " + format_mib(input.device_budget) + " do not hold it beside the UNet";
    }
  }
  const size_t need = device_peak_bytes(input.networks, on_device);
  if (need <= input.device_budget) return finish(on_device, reasons);

  if (input.cpu_fallback) {
    std::fill(on_device.begin(), on_device.end(), false);
    std::fill(reasons.begin(), reasons.end(),
              "on the CPU: the UNet needs " + format_mib(need) + " on " + input.device + ", which offers " + format_mib(input.device_budget));
    return finish(on_device, reasons);
  }
  std::string parts;
  for (size_t i = 0; i < n; ++i) {
    if (!on_device[i]) continue;
    const NetworkNeeds& m = input.networks[i];
    parts += (parts.empty() ? "" : ", ") + m.name + " " + format_mib(m.weight_bytes) + " of weights + " + format_mib(m.compute_bytes) + " of compute buffer";
  }
  throw Error(ErrorCode::OutOfMemory, "the model does not fit on " + input.device + ": " + parts + " (" + format_mib(need) + " in all, with the other networks already on the CPU) against " +
                                          format_mib(input.device_budget) + " available; use a smaller weight type (q4_0), a smaller image size, or backend \"cpu\"");
}

}  // namespace jsd

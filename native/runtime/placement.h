// Where each network runs, decided before any weight is loaded: from each network's weight bytes
// on the device, the compute buffer it needs for the planned image size, and the memory the
// device offers. A pure function, so that the rule can be read and tested on its own.
//
// The rule: everything on the chosen GPU; where that does not fit, the safety checker, the VAE and
// then the text encoder move to the CPU (each runs once per image or prompt, the UNet once per
// step, so they cost the least there; the checker first: a 224x224 CLIP tower costs a fraction of a
// 512x512 VAE decode on the CPU, and its weights are the larger). A UNet that still does not fit is refused with OutOfMemory naming the
// sizes, or, for backend "auto", the whole model runs on the CPU. Networks the caller put on
// the CPU (textEncoderOnCpu, vaeOnCpu) stay there.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace jsd {

struct NetworkNeeds {
  std::string name;           // "text_encoder", "unet", "vae" or "safety_checker"
  size_t weight_bytes = 0;    // its weights' buffer on the device
  size_t compute_bytes = 0;   // its largest compute buffer at the planned size, on the device
  bool forced_cpu = false;    // the caller asked for the CPU
};

struct PlacementInput {
  std::vector<NetworkNeeds> networks;  // text_encoder, unet, vae[, safety_checker]
  bool gpu = false;                    // the chosen backend is not the CPU
  std::string device;                  // for messages, e.g. "Vulkan0 (llvmpipe)"
  size_t device_budget = 0;            // bytes the plan may use on the device
  bool cpu_fallback = false;           // backend "auto": a UNet that does not fit runs on the CPU
};

struct NetworkPlacement {
  std::string name;
  bool on_cpu = true;
  size_t weight_bytes = 0;
  size_t compute_bytes = 0;
  std::string reason;  // why it is where it is, in words
};

struct Placement {
  std::vector<NetworkPlacement> networks;  // in the input's order
  size_t device_bytes = 0;                 // what the plan uses on the device (0 on the CPU)
  size_t device_budget = 0;
  bool gpu = false;                        // false also when "auto" fell back to the CPU
};

// Bytes a set of networks holds on one device at its peak: all their weights, the largest of the
// UNet's, the VAE's and the safety checker's compute buffers (the engine frees the others before it
// allocates one), and the text encoder's, which stays cached beside them.
size_t device_peak_bytes(const std::vector<NetworkNeeds>& networks, const std::vector<bool>& on_device);

// Throws Error(OutOfMemory) when the UNet fits nowhere the rule allows.
Placement plan_placement(const PlacementInput& input);

std::string format_mib(size_t bytes);

}  // namespace jsd

// What this build of the engine contains and what the CPU it runs on can do.
#pragma once

#include <string>
#include <vector>

namespace jsd {

struct SystemInfo {
  std::string ggml_version;          // ggml's own version string
  std::string ggml_commit;           // the llama.cpp commit our ggml source was taken from
  std::vector<std::string> backends; // ggml backends registered in this process ("CPU", "Vulkan", ...)
  std::vector<std::string> cpu_features;       // instruction sets the running CPU reports
  std::vector<std::string> ggml_cpu_features;  // instruction sets the loaded CPU variant was built for
  int physical_cores = 1;            // the default thread count
  int logical_cores = 1;
};

SystemInfo system_info();

// Number of physical cores (hyper-threads share a core's FMA units, so more threads than
// cores rarely helps ggml); falls back to the logical count.
int physical_core_count();

}  // namespace jsd

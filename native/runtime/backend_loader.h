// Loads ggml's backends into the process. The addon links ggml-base and ggml's registry only;
// every backend is a plugin file (GGML_BACKEND_DL): the CPU backend from the addon's own folder
// (the best of ggml's CPU variants this CPU can run, when a prebuild ships several), GPU
// backends from the files the caller names (a local build, node-llama-cpp's binary packages, the
// plugin cache). A plugin's libggml-base.so dependency is met by ours, already loaded under that
// very SONAME, so one ggml-base serves every plugin.
#pragma once

#include <string>

namespace jsd {

struct PluginLoad {
  std::string path;
  bool loaded = false;
  std::string backend;  // the registry's name in lower case ("cuda", "vulkan", ...) when loaded
  std::string error;    // why not, when not loaded
};

// Registers the best CPU variant found in `dir` (files named libggml-cpu*.so / ggml-cpu*.dll),
// once per process; later calls return at once. Where the CPU backend is linked in (static
// builds) there is nothing to load. Throws NativeUnavailable when dir holds no usable variant.
void load_cpu_backend(const std::string& dir);

// Registers the backend plugin at `path` once per process (a path already loaded reports its
// backend again). Never throws for a bad plugin: the reason is in `error`.
PluginLoad load_plugin(const std::string& path);

}  // namespace jsd

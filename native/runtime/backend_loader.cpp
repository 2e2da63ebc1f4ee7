#include "runtime/backend_loader.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include "runtime/error.h"
#include "ggml-backend.h"
#include "runtime/log.h"

namespace jsd {

namespace fs = std::filesystem;

namespace {

#if defined(_WIN32)
constexpr const char* kPrefix = "ggml-cpu";
constexpr const char* kExtension = ".dll";
#else
constexpr const char* kPrefix = "libggml-cpu";
constexpr const char* kExtension = ".so";  // ggml's MODULE libraries are .so on macOS too
#endif

// ggml's CPU variants export ggml_backend_score(): 0 when this CPU lacks an instruction set the
// variant was compiled for, else higher for more capable variants. Opening a variant only to
// ask runs none of its kernels.
int variant_score(const fs::path& path) {
  using Score = int (*)();
#if defined(_WIN32)
  HMODULE handle = LoadLibraryW(path.wstring().c_str());
  if (handle == nullptr) return 0;
  auto score = reinterpret_cast<Score>(GetProcAddress(handle, "ggml_backend_score"));
  const int s = score ? score() : 1;
  FreeLibrary(handle);
#else
  void* handle = dlopen(path.string().c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return 0;
  auto score = reinterpret_cast<Score>(dlsym(handle, "ggml_backend_score"));
  // A single native build (libggml-cpu.so) exports a score too; one without is still usable.
  const int s = score ? score() : 1;
  dlclose(handle);
#endif
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::mutex& loader_mutex() {
  static std::mutex m;
  return m;
}

// Plugins registered so far, by the path they were asked for.
std::vector<PluginLoad>& loaded_plugins() {
  static std::vector<PluginLoad> loaded;
  return loaded;
}

}  // namespace

void load_cpu_backend(const std::string& dir) {
  install_ggml_logger();
  std::lock_guard<std::mutex> lock(loader_mutex());
  if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) != nullptr) return;
  fs::path best;
  int best_score = 0;
  std::error_code ec;
  // JSD_CPU_PLUGIN=<file> loads that CPU plugin instead (a benchmark switch: ggml's AVX2 build,
  // libggml-cpu-haswell.so of a JSD_CPU_VARIANTS build, on a CPU that has more). It must come from
  // the same ggml release as this addon's libggml-base.
  const char* forced = std::getenv("JSD_CPU_PLUGIN");
  if (forced != nullptr && *forced != 0) {
    best = fs::u8path(forced);
    best_score = variant_score(best);
    if (best_score == 0) throw Error(ErrorCode::NativeUnavailable, std::string("JSD_CPU_PLUGIN: cannot load ") + forced + " on this CPU");
  }
  if (best.empty()) {
    for (fs::directory_iterator it(fs::u8path(dir), fs::directory_options::skip_permission_denied, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(kPrefix, 0) != 0 || it->path().extension() != kExtension) continue;
      const int score = variant_score(it->path());
      if (score > best_score) {
        best_score = score;
        best = it->path();
      }
    }
  }
  if (best.empty()) {
    throw Error(ErrorCode::NativeUnavailable, "no ggml CPU backend this CPU can run was found in " + dir + " (expected " + kPrefix + "*" + kExtension + " beside the addon)");
  }
  LogCapture capture;
  if (ggml_backend_load(best.string().c_str()) == nullptr) {
    throw Error(ErrorCode::NativeUnavailable, "cannot load ggml's CPU backend " + best.string() + ": " + capture.last_error("unknown error"));
  }
}

PluginLoad load_plugin(const std::string& path) {
  install_ggml_logger();
  std::lock_guard<std::mutex> lock(loader_mutex());
  for (const PluginLoad& p : loaded_plugins()) {
    if (p.path == path) return p;
  }
  PluginLoad result;
  result.path = path;
  std::error_code ec;
  if (!fs::is_regular_file(fs::u8path(path), ec)) {
    result.error = "no such file";
    return result;
  }
  LogCapture capture;
  ggml_backend_reg_t reg = ggml_backend_load(path.c_str());
  if (reg == nullptr) {
    // ggml logs the loader's message (a missing library, a wrong API version) before failing.
    result.error = capture.last_error("ggml_backend_load failed");
    return result;
  }
  result.loaded = true;
  result.backend = lower(ggml_backend_reg_name(reg));
  loaded_plugins().push_back(result);
  return result;
}

}  // namespace jsd

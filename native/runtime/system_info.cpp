#include "runtime/system_info.h"

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "ggml-backend.h"
#include "runtime/cpu_backend.h"
#include "ggml.h"

#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#ifndef JSD_GGML_COMMIT
#define JSD_GGML_COMMIT "unknown"
#endif

namespace jsd {

namespace {

int logical_core_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

std::vector<std::string> running_cpu_features() {
  std::vector<std::string> out;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // __builtin_cpu_supports needs literal names, hence the macro.
#define JSD_CPU_FEATURE(name) \
  if (__builtin_cpu_supports(name)) out.emplace_back(name);
  JSD_CPU_FEATURE("sse4.2")
  JSD_CPU_FEATURE("avx")
  JSD_CPU_FEATURE("avx2")
  JSD_CPU_FEATURE("fma")
#if !defined(__clang__) || __clang_major__ >= 15  // older clang rejects "f16c" here
  JSD_CPU_FEATURE("f16c")
#endif
  JSD_CPU_FEATURE("bmi2")
  JSD_CPU_FEATURE("avx512f")
  JSD_CPU_FEATURE("avx512dq")
  JSD_CPU_FEATURE("avx512bw")
  JSD_CPU_FEATURE("avx512vl")
  JSD_CPU_FEATURE("avx512vnni")
  JSD_CPU_FEATURE("avx512vbmi")
  JSD_CPU_FEATURE("avx512bf16")
#undef JSD_CPU_FEATURE
#else
  // No portable run-time probe here; the CPU variant ggml chose (which had to pass its own
  // run-time check to be chosen) is the best we know.
  out = cpu_backend_features();
#endif
  return out;
}

}  // namespace

int physical_core_count() {
#if defined(__linux__)
  // Distinct (package, core) pairs among the CPUs this process may run on.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  std::string line;
  int package = 0;
  while (std::getline(cpuinfo, line)) {
    auto value = [&line]() { return std::stoi(line.substr(line.find(':') + 1)); };
    try {
      if (line.rfind("physical id", 0) == 0) package = value();
      if (line.rfind("core id", 0) == 0) cores.emplace(package, value());
    } catch (...) {
      // a line we cannot parse; fall back below
    }
  }
  if (!cores.empty()) {
    int n = static_cast<int>(cores.size());
    return n < logical_core_count() ? n : logical_core_count();
  }
#elif defined(__APPLE__)
  int n = 0;
  size_t size = sizeof(n);
  if (sysctlbyname("hw.perflevel0.physicalcpu", &n, &size, nullptr, 0) == 0 && n > 0) return n;
  if (sysctlbyname("hw.physicalcpu", &n, &size, nullptr, 0) == 0 && n > 0) return n;
#endif
  return logical_core_count();
}

SystemInfo system_info() {
  SystemInfo info;
  info.ggml_version = ggml_version();
  info.ggml_commit = JSD_GGML_COMMIT;
  for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
    info.backends.emplace_back(ggml_backend_reg_name(ggml_backend_reg_get(i)));
  }
  info.cpu_features = running_cpu_features();
  info.ggml_cpu_features = cpu_backend_features();
  info.physical_cores = physical_core_count();
  info.logical_cores = logical_core_count();
  return info;
}

}  // namespace jsd

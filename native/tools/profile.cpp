#include "tools/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "ggml-impl.h"  // ggml_graph_view: one-node sub-graphs

namespace jsd {

bool profiling_enabled() {
  static const bool enabled = std::getenv("JSD_PROFILE") != nullptr;
  return enabled;
}

ggml_status compute_profiled(ggml_backend_t backend, ggml_cgraph* graph, const char* label) {
  struct Total {
    double seconds = 0;
    int count = 0;
  };
  std::map<std::string, Total> totals;
  static const bool by_shape = std::getenv("JSD_PROFILE") != nullptr && std::string(std::getenv("JSD_PROFILE")) == "shapes";
  double all = 0;
  const int n = ggml_graph_n_nodes(graph);
  for (int i = 0; i < n; ++i) {
    ggml_tensor* node = ggml_graph_node(graph, i);
    ggml_cgraph view = ggml_graph_view(graph, i, i + 1);
    const auto t0 = std::chrono::steady_clock::now();
    const ggml_status status = ggml_backend_graph_compute(backend, &view);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (status != GGML_STATUS_SUCCESS) return status;
    std::string key = ggml_op_desc(node);
    if (node->op == GGML_OP_MUL_MAT) key += std::string(" ") + ggml_type_name(node->src[0]->type);
    // Custom ops (kernels/) say which they are by name.
    if (node->op == GGML_OP_CUSTOM && node->name[0] != 0) key += std::string(" ") + node->name;
    if (by_shape && node->src[0] != nullptr) {
      // JSD_PROFILE=shapes: one line per operand shape, to find which layers an op's time goes to.
      for (int s = 0; s < 2 && node->src[s] != nullptr; ++s) {
        key += s ? " x [" : " [";
        for (int d = 0; d < ggml_n_dims(node->src[s]); ++d) key += (d ? "," : "") + std::to_string(node->src[s]->ne[d]);
        key += "]";
      }
    }
    totals[key].seconds += s;
    totals[key].count += 1;
    all += s;
  }
  std::vector<std::pair<std::string, Total>> sorted(totals.begin(), totals.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  std::fprintf(stderr, "profile %s: %d nodes, %.3f s\n", label, n, all);
  for (const auto& [key, t] : sorted) {
    std::fprintf(stderr, "  %-40s %5d nodes %8.3f s %5.1f%%\n", key.c_str(), t.count, t.seconds, 100.0 * t.seconds / all);
  }
  return GGML_STATUS_SUCCESS;
}

}  // namespace jsd

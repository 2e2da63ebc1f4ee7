#include "tools/cpu_graph.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "runtime/error.h"
#include "runtime/cpu_backend.h"

namespace jsd {

CpuGraph::CpuGraph(size_t tensors, int threads) {
  ctx_ = ggml_init(ggml_init_params{ggml_tensor_overhead() * tensors + ggml_graph_overhead(), nullptr, true});
  backend_ = init_cpu_backend();
  allocr_ = backend_ ? ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend_)) : nullptr;
  if (ctx_ == nullptr || allocr_ == nullptr) {
    release();
    throw Error(ErrorCode::OutOfMemory, "cannot set up a ggml CPU graph");
  }
  set_cpu_threads(backend_, threads);
}

CpuGraph::~CpuGraph() { release(); }

void CpuGraph::release() {
  if (allocr_) ggml_gallocr_free(allocr_);
  if (backend_) ggml_backend_free(backend_);
  if (ctx_) ggml_free(ctx_);
  allocr_ = nullptr;
  backend_ = nullptr;
  ctx_ = nullptr;
}

void CpuGraph::build(std::initializer_list<ggml_tensor*> outputs) {
  graph_ = ggml_new_graph(ctx_);
  for (ggml_tensor* t : outputs) {
    ggml_set_output(t);
    ggml_build_forward_expand(graph_, t);
  }
  if (!ggml_gallocr_alloc_graph(allocr_, graph_)) throw Error(ErrorCode::OutOfMemory, "cannot allocate a compute buffer");
}

void CpuGraph::compute() {
  if (ggml_backend_graph_compute(backend_, graph_) != GGML_STATUS_SUCCESS) throw Error(ErrorCode::Internal, "ggml could not compute the graph");
}

}  // namespace jsd

namespace jsd {

void CpuGraph::write(ggml_tensor* t, const std::vector<float>& values) const {
  ggml_backend_tensor_set(t, values.data(), 0, values.size() * sizeof(float));
}

std::vector<float> CpuGraph::read(const ggml_tensor* t) const {
  std::vector<float> out(static_cast<size_t>(ggml_nelements(t)));
  ggml_backend_tensor_get(t, out.data(), 0, out.size() * sizeof(float));
  return out;
}

std::vector<float> normal_values(int64_t count, unsigned seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = normal(rng);
  return v;
}

Difference difference(const std::vector<float>& a, const std::vector<float>& b) {
  Difference d;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double e = std::fabs(static_cast<double>(a[i]) - b[i]);
    d.max_abs_diff = std::isfinite(a[i]) ? std::max(d.max_abs_diff, e) : INFINITY;
    d.max_abs = std::max(d.max_abs, static_cast<double>(std::fabs(b[i])));
  }
  return d;
}

}  // namespace jsd

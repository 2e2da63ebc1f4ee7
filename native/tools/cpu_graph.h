// Pieces of the benchmarks and kernel checks: a ggml graph on its own CPU backend (owning the
// context, the backend and the compute buffer, freed on every path), random inputs, and the
// difference of two outputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace jsd {

class CpuGraph {
 public:
  // Room for `tensors` tensor headers and one graph; computes on `threads` threads.
  CpuGraph(size_t tensors, int threads);
  ~CpuGraph();
  CpuGraph(const CpuGraph&) = delete;
  CpuGraph& operator=(const CpuGraph&) = delete;

  ggml_context* ctx() const { return ctx_; }
  // Builds the graph of these outputs and allocates its compute buffer.
  void build(std::initializer_list<ggml_tensor*> outputs);
  void compute();
  void write(ggml_tensor* t, const std::vector<float>& values) const;
  std::vector<float> read(const ggml_tensor* t) const;

 private:
  void release();

  ggml_context* ctx_ = nullptr;
  ggml_backend_t backend_ = nullptr;
  ggml_gallocr_t allocr_ = nullptr;
  ggml_cgraph* graph_ = nullptr;
};

// count normally distributed values, reproducible from the seed.
std::vector<float> normal_values(int64_t count, unsigned seed, float sigma = 1.0f);

struct Difference {
  double max_abs_diff = 0;  // over all elements; infinite when a is not finite somewhere
  double max_abs = 0;       // largest magnitude in the reference b
};
Difference difference(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace jsd

// One network of a loaded model (text encoder, UNet or VAE) as the engine holds it: its weights,
// the backend it computes on, its cached graphs with their compute buffers, and whether its pages
// of the mapped file are resident. Freeing it frees all of that, graphs first.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "model/weights.h"

namespace jsd {

// A graph built for one input shape, with its compute buffer; reused until the shape changes.
struct CachedGraph {
  std::string key;
  int threads = 1;
  ggml_context* ctx = nullptr;
  ggml_cgraph* graph = nullptr;
  ggml_gallocr_t allocr = nullptr;
  std::vector<ggml_tensor*> inputs;
  ggml_tensor* output = nullptr;
  CachedGraph() = default;
  CachedGraph(const CachedGraph&) = delete;
  CachedGraph& operator=(const CachedGraph&) = delete;
  ~CachedGraph();
};

// Builds a network's graph into g: its input tensors (g.inputs, in the order run() sets them) and output.
using GraphBuilder = std::function<void(CachedGraph& g)>;

// A graph context with room for the largest network's graph, and the graph built in it by build.
// The caller owns the result; nothing is allocated for the tensors' data.
std::unique_ptr<CachedGraph> build_graph(const std::string& key, const GraphBuilder& build);

// Bytes of the compute buffer build's graph needs on buffer type buft, measured without
// allocating it. Weight tensors not loaded yet get placeholder data pointers meanwhile, so that
// they are not counted as the graph's own tensors.
size_t measure_compute_bytes(WeightStore& weights, ggml_backend_buffer_type_t buft, const GraphBuilder& build);

struct Network {
  std::string name;
  std::unique_ptr<WeightStore> weights;
  ggml_backend_t backend = nullptr;  // one of the engine's backends (not owned)
  // The cached graph of each kind of run: one for the text encoder and the UNet, decode and encode for the VAE.
  std::vector<std::unique_ptr<CachedGraph>> graphs;
  bool resident = false;  // pages touched since the last release (release_idle_weights)

  Network(std::string name, std::unique_ptr<WeightStore> weights, size_t graph_kinds);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  size_t compute_bytes() const;
  bool graphs_built() const;
  void release_graphs();
};

}  // namespace jsd

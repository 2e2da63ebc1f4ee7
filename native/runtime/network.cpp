#include "runtime/network.h"

#include "runtime/error.h"

namespace jsd {

namespace {

constexpr size_t kMaxGraphNodes = 16384;

}  // namespace

CachedGraph::~CachedGraph() {
  if (allocr) ggml_gallocr_free(allocr);
  if (ctx) ggml_free(ctx);
}

std::unique_ptr<CachedGraph> build_graph(const std::string& key, const GraphBuilder& build) {
  auto g = std::make_unique<CachedGraph>();
  g->key = key;
  ggml_init_params params{ggml_tensor_overhead() * kMaxGraphNodes + ggml_graph_overhead_custom(kMaxGraphNodes, false), nullptr, true};
  g->ctx = ggml_init(params);
  if (g->ctx == nullptr) throw Error(ErrorCode::OutOfMemory, "cannot allocate a graph context");
  build(*g);
  g->graph = ggml_new_graph_custom(g->ctx, kMaxGraphNodes, false);
  ggml_build_forward_expand(g->graph, g->output);
  return g;
}

size_t measure_compute_bytes(WeightStore& weights, ggml_backend_buffer_type_t buft, const GraphBuilder& build) {
  WeightStore::Placeholders placeholders(weights);
  std::unique_ptr<CachedGraph> g = build_graph("measure", build);
  g->allocr = ggml_gallocr_new(buft);
  if (g->allocr == nullptr) throw Error(ErrorCode::OutOfMemory, "cannot set up a graph allocator");
  size_t size = 0;
  ggml_gallocr_reserve_n_size(g->allocr, g->graph, nullptr, nullptr, &size);
  return size;
}

Network::Network(std::string name_, std::unique_ptr<WeightStore> weights_, size_t graph_kinds)
    : name(std::move(name_)), weights(std::move(weights_)), graphs(graph_kinds) {}

Network::~Network() { release_graphs(); }

size_t Network::compute_bytes() const {
  size_t total = 0;
  for (const auto& g : graphs) {
    if (g && g->allocr) total += ggml_gallocr_get_buffer_size(g->allocr, 0);
  }
  return total;
}

bool Network::graphs_built() const {
  for (const auto& g : graphs) {
    if (g) return true;
  }
  return false;
}

void Network::release_graphs() {
  for (auto& g : graphs) g.reset();
}

}  // namespace jsd

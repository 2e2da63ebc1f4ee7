// The engine's memory report: what each network's weights and compute buffers take, where, and
// the compute buffers' peak. Kept as a snapshot under a mutex, because memory() is read from the
// JS thread while the model's own thread computes.
#include <algorithm>
#include <mutex>

#include "runtime/engine.h"
#include "runtime/network.h"
#include "model/weights.h"

namespace jsd {

size_t Engine::current_compute_bytes() const {
  size_t total = 0;
  for (const Network* n : networks()) total += n->compute_bytes();
  return total;
}

void Engine::update_memory_snapshot() {
  std::vector<ComponentMemory> now = measure_memory();
  const size_t compute = current_compute_bytes();
  std::lock_guard<std::mutex> lock(memory_mutex_);
  memory_snapshot_ = std::move(now);
  peak_compute_bytes_ = std::max(peak_compute_bytes_, compute);
}

std::vector<ComponentMemory> Engine::memory() const {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  return memory_snapshot_;
}

size_t Engine::peak_compute_bytes() const {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  return peak_compute_bytes_;
}

void Engine::reset_peak_compute_bytes() {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  peak_compute_bytes_ = 0;
  for (const ComponentMemory& m : memory_snapshot_) peak_compute_bytes_ += m.compute_bytes;
}

std::vector<ComponentMemory> Engine::measure_memory() const {
  std::vector<ComponentMemory> out;
  for (const Network* n : networks()) {
    ComponentMemory m;
    m.name = n->name;
    m.backend = backend_name_of(n->backend);
    m.weight_bytes = n->weights->bytes();
    m.packed_bytes = n->weights->packed_bytes();
    const size_t rest = m.weight_bytes - std::min(m.weight_bytes, m.packed_bytes);
    (n->weights->mapped() ? m.mapped_bytes : m.device_bytes) = rest;
    m.compute_bytes = n->compute_bytes();
    out.push_back(m);
  }
  return out;
}

}  // namespace jsd

// The tensors of one network (text encoder, UNet or VAE), copied from the model file into
// a backend buffer. Networks take their weights through require_* calls that check each
// tensor's presence, type and shape against the config before any compute.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"

namespace jsd {

class ModelFile;

// How a matrix's bytes are laid out, which decides the kernel that multiplies by it: ggml's own
// rows (ggml_mul_mat, including the rows ggml's repacking buffer reorders behind its own buffer
// type), or q8_gemm.h's interleaved q8_0 or q4_0 groups (q8_mul_mat, q4_mul_mat; CPU only).
enum class WeightLayout { Ggml, Q8Interleaved, Q4Interleaved };

struct Linear {
  ggml_tensor* weight = nullptr;  // [in, out], any type
  ggml_tensor* bias = nullptr;    // [out] f32, or null
  WeightLayout layout = WeightLayout::Ggml;
};

struct Norm {
  ggml_tensor* weight = nullptr;  // [C] f32
  ggml_tensor* bias = nullptr;    // [C] f32
};

struct Conv2d {
  ggml_tensor* weight = nullptr;  // [k, k, in, out] (f32/f16/bf16) or flattened [k*k*in, out] (quantized)
  ggml_tensor* bias = nullptr;    // [out] f32, or null
  int kernel = 1;
  int in = 0;
  int out = 0;
  WeightLayout layout = WeightLayout::Ggml;  // of the flattened [k*k*in, out] matrix
};

// What the file says about how its tensors are used and stored (the converter's plan): the
// tensors read by row lookups (embeddings: no matrix kernel may reorder them), and the q8_0
// matrices it stores interleaved already (`jsd convert --cpu-layout`). Read and checked once per
// file by read().
struct FileWeightPlan {
  std::set<std::string> row_lookups;
  std::set<std::string> interleaved;
  static FileWeightPlan read(const ModelFile& file);
};

class WeightStore {
 public:
  // Creates metadata tensors for every file tensor whose name starts with prefix, and decides once
  // where each one lives and how the CPU would read it (the placement plan): q4_0/q4_K matrices go
  // to ggml's repacking buffer (interleaved rows for its int8 kernels, 2-2.5x faster there); q8_0
  // matrices are interleaved for q8_gemm.h's kernel where the CPU has one (q8_gemm_isa.h; in place when
  // the file stores them so), and q4_0 matrices too where its table has q4 tiles (copied, instead
  // of ggml's repacking buffer); row lookups and everything else are used in place from the
  // mapped file.
  WeightStore(const ModelFile& file, const std::string& prefix, const FileWeightPlan& plan);
  ~WeightStore();
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  // Gives the tensors their data by the plan: in place in the mapped file when the backend can read
  // host memory, else copied into a backend buffer. Layer structs taken after a load on the CPU
  // carry the CPU's layouts; before a load, and after one on another backend, ggml's.
  // threads: how many threads may reorder weights into a CPU layout.
  void load(const ModelFile& file, ggml_backend_t backend, int threads = 1);
  // Bytes of weight data this network uses.
  size_t bytes() const;
  // Bytes its weights would take in buffers of type buft (a device's), alignment and padding
  // included; known before load().
  size_t buffer_bytes(ggml_backend_buffer_type_t buft) const;
  // While alive, tensors without data point at a placeholder, so that a graph built from them can
  // be measured (ggml-alloc allocates any leaf without data) before the weights are loaded.
  class Placeholders {
   public:
    explicit Placeholders(WeightStore& weights);
    ~Placeholders();
    Placeholders(const Placeholders&) = delete;
    Placeholders& operator=(const Placeholders&) = delete;

   private:
    std::vector<ggml_tensor*> set_;
  };
  bool mapped() const { return mapped_; }
  // Bytes copied into repacked or interleaved layouts (the rest is used in place from the mapped file).
  size_t packed_bytes() const;
  // Drops this network's pages of the mapped file from the process's resident memory; they stay
  // in the page cache and are mapped again on the next use. Interleaved q8_0 copies are dropped
  // too, and rebuilt from the file by make_resident. Other copied weights stay.
  void release_resident_pages();
  // Rebuilds what release_resident_pages dropped and the file cannot page back in by itself.
  void make_resident(const ModelFile& file, int threads);

  ggml_tensor* require(const std::string& name, std::initializer_list<int64_t> shape, bool f32_only);
  // The stored size of a tensor along dimension dim (ggml's order), for sizes no config gives
  // (the safety checker's concept counts); BadModel when the file lacks the tensor.
  int64_t extent(const std::string& name, int dim) const;
  // A table read by rows (ggml_get_rows or a view): the file's plan must list it as one, so that
  // no matrix kernel has reordered it.
  ggml_tensor* rows(const std::string& name, std::initializer_list<int64_t> shape, bool f32_only);
  Linear linear(const std::string& name, int64_t in, int64_t out, bool bias = true);
  Norm norm(const std::string& name, int64_t channels);
  Conv2d conv(const std::string& name, int kernel, int64_t in, int64_t out, bool bias = true);
  // Reports tensors that no require_* call asked for (a file for another model variant).
  void check_all_used() const;

 private:
  // Reads a q8_0 or q4_0 matrix (or any tensor, when both layouts are ggml's) into dst in the layout asked
  // for, reordering through scratch when the file's differs.
  void read_layout(const ModelFile& file, const ggml_tensor* t, bool interleaved, uint8_t* dst, std::vector<uint8_t>& scratch) const;
  // read_layout into each matrix's host memory, on up to `threads` threads.
  void copy_q8(const ModelFile& file, const std::vector<ggml_tensor*>& matrices, int threads, bool interleaved);
  // The layout a layer struct gets for t: its planned CPU layout once loaded on the CPU.
  WeightLayout layout_of(const ggml_tensor* t) const;
  // The copies are in the kernel's layout (and rebuilt after a release).
  bool q8_copies_interleaved() const;

  std::string prefix_;
  ggml_context* ctx_ = nullptr;         // tensors used as stored
  ggml_context* packed_ctx_ = nullptr;  // tensors for the repacking buffer
  ggml_context* q8_ctx_ = nullptr;      // q8_0 (and q4_0) matrices for the interleaved kernels (q8_gemm.h)
  ggml_backend_buffer_t buffer_ = nullptr;
  ggml_backend_buffer_t packed_buffer_ = nullptr;
  ggml_backend_buffer_t q8_buffer_ = nullptr;
  bool mapped_ = false;
  bool q8_copies_on_cpu_ = false;      // q8_ctx_'s tensors are copies in host memory
  bool q8_released_ = false;            // the interleaved copies' pages were dropped
  bool loaded_on_cpu_ = false;
  std::set<std::string> file_interleaved_;   // q8_0 matrices the file stores interleaved
  std::set<const ggml_tensor*> cpu_interleaved_;  // the plan: matrices the CPU reads interleaved
  std::set<const ggml_tensor*> row_lookups_;      // the file's plan: tables read by rows
  const uint8_t* mapped_begin_ = nullptr;  // the span of the file the mapped tensors lie in
  const uint8_t* mapped_end_ = nullptr;
  std::map<std::string, ggml_tensor*> tensors_;
  std::map<std::string, bool> used_;
};

}  // namespace jsd

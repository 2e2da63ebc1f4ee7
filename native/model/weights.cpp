#include "model/weights.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <vector>

#include "runtime/compute_buffer.h"
#include "runtime/error.h"
#include "ggml-alloc.h"
#include "runtime/cpu_backend.h"
#include "model/model_file.h"
#include "model/model_keys.h"
#include "kernels/q8_gemm.h"
#include "kernels/repack.h"

namespace jsd {

namespace {

// Matrices ggml's CPU repacking buffer accepts (its x86 and ARM kernels need rows in groups of 8).
bool repackable(const ggml_tensor* t) {
  const bool type_ok = t->type == GGML_TYPE_Q4_0 || t->type == GGML_TYPE_Q4_K || t->type == GGML_TYPE_IQ4_NL;
  return type_ok && ggml_n_dims(t) == 2 && t->ne[1] % 8 == 0;
}

}  // namespace

FileWeightPlan FileWeightPlan::read(const ModelFile& file) {
  FileWeightPlan plan;
  for (const std::string& name : file.str_array(keys::kEmbeddings)) {
    if (file.tensor(name) == nullptr) throw Error(ErrorCode::BadModel, std::string(keys::kEmbeddings) + " lists '" + name + "', which the file does not hold");
    plan.row_lookups.insert(name);
  }
  if (!file.has(keys::kQ8Interleaved)) return plan;
  for (const std::string& name : file.str_array(keys::kQ8Interleaved)) {
    const ggml_tensor* t = file.tensor(name);
    if (t == nullptr) throw Error(ErrorCode::BadModel, std::string(keys::kQ8Interleaved) + " lists '" + name + "', which the file does not hold");
    if (!q8_interleavable(t) || plan.row_lookups.count(name)) {
      throw Error(ErrorCode::BadModel, std::string(keys::kQ8Interleaved) + " lists '" + name + "', which is not a q8_0 matrix with rows in groups of 16");
    }
    plan.interleaved.insert(name);
  }
  return plan;
}

namespace {

std::string shape_string(const int64_t* ne, int n) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

}  // namespace

WeightStore::WeightStore(const ModelFile& file, const std::string& prefix, const FileWeightPlan& plan)
    : prefix_(prefix), file_interleaved_(plan.interleaved) {
  const auto names = file.tensor_names(prefix);
  if (names.empty()) throw Error(ErrorCode::BadModel, "model file holds no '" + prefix + "*' tensors");
  ggml_init_params params{ggml_tensor_overhead() * (names.size() + 1), nullptr, /*no_alloc=*/true};
  ctx_ = ggml_init(params);
  packed_ctx_ = ggml_init(params);
  q8_ctx_ = ggml_init(params);
  if (ctx_ == nullptr || packed_ctx_ == nullptr || q8_ctx_ == nullptr) throw Error(ErrorCode::OutOfMemory, "cannot allocate a ggml context");
  const bool repack = cpu_repack_buffer_type() != nullptr && std::getenv("JSD_NO_REPACK") == nullptr;
  const bool kernel = q8_gemm_available();
  const bool q4_kernel = q4_gemm_available();
  for (const auto& name : names) {
    ggml_tensor* meta = file.tensor(name);
    if (meta == nullptr) continue;
    const bool matrix = plan.row_lookups.count(name) == 0;
    // q8_ctx_ holds the q8_0 matrices that need a copy in the other layout: plain in the file
    // and interleaved for the kernel, or interleaved in the file and no kernel to read them.
    const bool in_file = file_interleaved_.count(name) != 0;
    const bool copy = in_file ? !kernel : matrix && ((kernel && q8_interleavable(meta)) || (q4_kernel && q4_interleavable(meta)));
    ggml_context* ctx = copy ? q8_ctx_ : repack && matrix && repackable(meta) ? packed_ctx_ : ctx_;
    ggml_tensor* t = ggml_dup_tensor(ctx, meta);
    ggml_set_name(t, name.c_str());
    tensors_[name.substr(prefix.size())] = t;
    // On the CPU the kernel reads a matrix interleaved wherever it runs: copied so, or in place.
    if (in_file ? kernel : copy) cpu_interleaved_.insert(t);
    if (!matrix) row_lookups_.insert(t);
  }
}

WeightStore::~WeightStore() {
  if (buffer_) ggml_backend_buffer_free(buffer_);
  if (packed_buffer_) ggml_backend_buffer_free(packed_buffer_);
  if (q8_buffer_) ggml_backend_buffer_free(q8_buffer_);
  if (ctx_) ggml_free(ctx_);
  if (packed_ctx_) ggml_free(packed_ctx_);
  if (q8_ctx_) ggml_free(q8_ctx_);
}

void WeightStore::read_layout(const ModelFile& file, const ggml_tensor* t, bool interleaved, uint8_t* dst, std::vector<uint8_t>& scratch) const {
  const size_t size = ggml_nbytes(t);
  const bool in_file = file_interleaved_.count(ggml_get_name(t)) != 0;
  if (in_file == interleaved) {
    file.read_tensor(ggml_get_name(t), dst, size);
    return;
  }
  scratch.resize(size);
  file.read_tensor(ggml_get_name(t), scratch.data(), size);
  if (t->type == GGML_TYPE_Q4_0) {
    (interleaved ? q4_interleave : q4_deinterleave)(scratch.data(), dst, t->ne[1], t->ne[0]);
  } else {
    (interleaved ? q8_interleave : q8_deinterleave)(scratch.data(), dst, t->ne[1], t->ne[0]);
  }
}

void WeightStore::copy_q8(const ModelFile& file, const std::vector<ggml_tensor*>& matrices, int threads, bool interleaved) {
  // Most of the time goes to the first writes of fresh pages and to the reordering, both of
  // which run in parallel; reads from the file are serialized by ModelFile.
  std::atomic<size_t> next{0};
  std::mutex failure_mutex;
  std::exception_ptr failure;
  auto work = [&]() {
    std::vector<uint8_t> scratch;
    try {
      for (size_t i = next++; i < matrices.size(); i = next++) {
        read_layout(file, matrices[i], interleaved, static_cast<uint8_t*>(matrices[i]->data), scratch);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = matrices.size();
    }
  };
  std::vector<std::thread> workers;
  for (int i = 1; i < threads && static_cast<size_t>(i) < matrices.size(); ++i) {
    try {
      workers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer helpers; the calling thread still does the rest
    }
  }
  work();
  for (std::thread& w : workers) w.join();
  if (failure) std::rethrow_exception(failure);
}

bool WeightStore::q8_copies_interleaved() const { return q8_copies_on_cpu_ && q8_gemm_available(); }

WeightLayout WeightStore::layout_of(const ggml_tensor* t) const {
  if (!loaded_on_cpu_ || !cpu_interleaved_.count(t)) return WeightLayout::Ggml;
  return t->type == GGML_TYPE_Q4_0 ? WeightLayout::Q4Interleaved : WeightLayout::Q8Interleaved;
}

void WeightStore::load(const ModelFile& file, ggml_backend_t backend, int threads) {
  const bool cpu = is_cpu_backend(backend);
  loaded_on_cpu_ = cpu;
  std::vector<uint8_t> staging;
  // Tensor names in the contexts are the file's full names.
  std::vector<uint8_t> scratch;
  // Copies a tensor from the file into its buffer: q8_0 matrices the file stores interleaved stay
  // so on the CPU, which has the kernel whenever they are not in q8_ctx_, and are put back into
  // ggml's layout for other backends.
  auto read_into = [&](ggml_tensor* t) {
    const size_t size = ggml_nbytes(t);
    const bool interleaved = cpu && file_interleaved_.count(ggml_get_name(t)) != 0;
    if (t->buffer != packed_buffer_ && ggml_backend_buffer_is_host(t->buffer)) {
      read_layout(file, t, interleaved, static_cast<uint8_t*>(t->data), scratch);
      return;
    }
    staging.resize(size);
    read_layout(file, t, interleaved, staging.data(), scratch);
    ggml_backend_tensor_set(t, staging.data(), 0, size);  // repacks when the buffer does
  };

  // Repacked tensors are read with pread, not through the mapping, so their file pages do not
  // count against the process's memory on top of the repacked copy.
  if (ggml_get_first_tensor(packed_ctx_) != nullptr) {
    ggml_backend_buffer_type_t buft = cpu ? cpu_repack_buffer_type() : ggml_backend_get_default_buffer_type(backend);
    packed_buffer_ = ggml_backend_alloc_ctx_tensors_from_buft(packed_ctx_, buft);
    if (packed_buffer_ == nullptr) throw Error(ErrorCode::OutOfMemory, "cannot allocate the '" + prefix_ + "' weights");
    ggml_backend_buffer_set_usage(packed_buffer_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    for (ggml_tensor* t = ggml_get_first_tensor(packed_ctx_); t != nullptr; t = ggml_get_next_tensor(packed_ctx_, t)) read_into(t);
  }
  // q8_0 matrices copied into the other layout: interleaved where the CPU runs the kernel, ggml's
  // own on other backends and CPUs without it.
  if (ggml_get_first_tensor(q8_ctx_) != nullptr) {
    q8_buffer_ = ggml_backend_alloc_ctx_tensors_from_buft(q8_ctx_, cpu ? cpu_weight_buffer_type() : ggml_backend_get_default_buffer_type(backend));
    if (q8_buffer_ == nullptr) throw Error(ErrorCode::OutOfMemory, "cannot allocate the '" + prefix_ + "' weights");
    ggml_backend_buffer_set_usage(q8_buffer_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    std::vector<ggml_tensor*> matrices;
    for (ggml_tensor* t = ggml_get_first_tensor(q8_ctx_); t != nullptr; t = ggml_get_next_tensor(q8_ctx_, t)) matrices.push_back(t);
    if (cpu) {
      q8_copies_on_cpu_ = true;
      copy_q8(file, matrices, threads, q8_copies_interleaved());
    } else {
      for (ggml_tensor* t : matrices) read_into(t);
    }
  }
  if (ggml_get_first_tensor(ctx_) == nullptr) return;

  if (cpu) {
    // Point the other tensors into the mapping: one host buffer spanning them.
    const uint8_t* begin = nullptr;
    const uint8_t* end = nullptr;
    bool all_mapped = true;
    for (ggml_tensor* t = ggml_get_first_tensor(ctx_); t != nullptr; t = ggml_get_next_tensor(ctx_, t)) {
      const uint8_t* p = file.mapped_tensor(ggml_get_name(t));
      if (p == nullptr) {
        all_mapped = false;
        break;
      }
      begin = begin == nullptr || p < begin ? p : begin;
      end = end == nullptr || p + ggml_nbytes(t) > end ? p + ggml_nbytes(t) : end;
    }
    if (all_mapped) {
      buffer_ = ggml_backend_cpu_buffer_from_ptr(const_cast<uint8_t*>(begin), static_cast<size_t>(end - begin));
      if (buffer_ == nullptr) throw Error(ErrorCode::OutOfMemory, "cannot wrap the mapped '" + prefix_ + "' weights");
      ggml_backend_buffer_set_usage(buffer_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
      for (ggml_tensor* t = ggml_get_first_tensor(ctx_); t != nullptr; t = ggml_get_next_tensor(ctx_, t)) {
        if (ggml_backend_tensor_alloc(buffer_, t, const_cast<uint8_t*>(file.mapped_tensor(ggml_get_name(t)))) != GGML_STATUS_SUCCESS) {
          throw Error(ErrorCode::Internal, std::string("cannot place tensor '") + ggml_get_name(t) + "' in the mapped file");
        }
      }
      mapped_ = true;
      mapped_begin_ = begin;
      mapped_end_ = end;
      return;
    }
  }
  buffer_ = ggml_backend_alloc_ctx_tensors(ctx_, backend);
  if (buffer_ == nullptr) throw Error(ErrorCode::OutOfMemory, "cannot allocate the '" + prefix_ + "' weights on the backend");
  ggml_backend_buffer_set_usage(buffer_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  for (ggml_tensor* t = ggml_get_first_tensor(ctx_); t != nullptr; t = ggml_get_next_tensor(ctx_, t)) {
    read_into(t);
  }
}

void WeightStore::release_resident_pages() {
#if defined(__unix__) || defined(__APPLE__)
  if (q8_copies_interleaved() && !q8_released_) {
    // A private anonymous mapping of its own (cpu_weight_buffer_type): the pages go back to the
    // system and read as zeros until make_resident writes them again.
    madvise(ggml_backend_buffer_get_base(q8_buffer_), ggml_backend_buffer_get_size(q8_buffer_), MADV_DONTNEED);
    q8_released_ = true;
  }
  if (!mapped_ || mapped_begin_ == nullptr) return;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(mapped_begin_) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(mapped_end_) + page - 1) & ~(page - 1);
  // A read-only shared mapping of the file: the pages are only unmapped, never lost.
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#endif
}

void WeightStore::make_resident(const ModelFile& file, int threads) {
  if (!q8_released_) return;
  std::vector<ggml_tensor*> matrices;
  for (ggml_tensor* t = ggml_get_first_tensor(q8_ctx_); t != nullptr; t = ggml_get_next_tensor(q8_ctx_, t)) matrices.push_back(t);
  copy_q8(file, matrices, threads, true);
  q8_released_ = false;
}

size_t WeightStore::packed_bytes() const {
  size_t total = packed_buffer_ ? ggml_backend_buffer_get_size(packed_buffer_) : 0;
  if (q8_copies_on_cpu_) total += ggml_backend_buffer_get_size(q8_buffer_);
  return total;
}

size_t WeightStore::buffer_bytes(ggml_backend_buffer_type_t buft) const {
  size_t total = 0;
  for (ggml_context* ctx : {ctx_, packed_ctx_, q8_ctx_}) {
    if (ggml_get_first_tensor(ctx) != nullptr) total += ggml_backend_alloc_ctx_tensors_from_buft_size(ctx, buft);
  }
  return total;
}

WeightStore::Placeholders::Placeholders(WeightStore& weights) {
  // Never dereferenced: measuring only computes offsets. Aligned like any ggml buffer.
  alignas(64) static uint8_t placeholder[64];
  for (auto& [name, t] : weights.tensors_) {
    if (t->data != nullptr) continue;
    t->data = placeholder;
    set_.push_back(t);
  }
}

WeightStore::Placeholders::~Placeholders() {
  for (ggml_tensor* t : set_) t->data = nullptr;
}

size_t WeightStore::bytes() const {
  size_t total = 0;
  for (const auto& [name, t] : tensors_) total += ggml_nbytes(t);
  return total;
}

ggml_tensor* WeightStore::require(const std::string& name, std::initializer_list<int64_t> shape, bool f32_only) {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(ErrorCode::BadModel, "model file lacks tensor '" + prefix_ + name + "'");
  ggml_tensor* t = it->second;
  std::vector<int64_t> want(shape);
  bool same = ggml_n_dims(t) <= static_cast<int>(want.size());
  for (int i = 0; i < GGML_MAX_DIMS && same; ++i) same = t->ne[i] == (i < static_cast<int>(want.size()) ? want[i] : 1);
  if (!same) {
    throw Error(ErrorCode::BadModel, "tensor '" + prefix_ + name + "' has shape " + shape_string(t->ne, ggml_n_dims(t)) + " but the config needs " +
                                         shape_string(want.data(), static_cast<int>(want.size())));
  }
  if (f32_only && t->type != GGML_TYPE_F32) {
    throw Error(ErrorCode::BadModel, "tensor '" + prefix_ + name + "' must be f32 but is " + ggml_type_name(t->type));
  }
  used_[name] = true;
  return t;
}

int64_t WeightStore::extent(const std::string& name, int dim) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(ErrorCode::BadModel, "model file lacks tensor '" + prefix_ + name + "'");
  return it->second->ne[dim];
}

ggml_tensor* WeightStore::rows(const std::string& name, std::initializer_list<int64_t> shape, bool f32_only) {
  ggml_tensor* t = require(name, shape, f32_only);
  if (!row_lookups_.count(t)) {
    throw Error(ErrorCode::BadModel, "tensor '" + prefix_ + name + "' is read by rows, but the file's " + keys::kEmbeddings + " does not list it");
  }
  return t;
}

Linear WeightStore::linear(const std::string& name, int64_t in, int64_t out, bool bias) {
  Linear l;
  l.weight = require(name + ".weight", {in, out}, false);
  l.layout = layout_of(l.weight);
  if (bias) l.bias = require(name + ".bias", {out}, true);
  return l;
}

Norm WeightStore::norm(const std::string& name, int64_t channels) {
  return Norm{require(name + ".weight", {channels}, true), require(name + ".bias", {channels}, true)};
}

Conv2d WeightStore::conv(const std::string& name, int kernel, int64_t in, int64_t out, bool bias) {
  Conv2d c;
  c.kernel = kernel;
  c.in = static_cast<int>(in);
  c.out = static_cast<int>(out);
  const std::string w = name + ".weight";
  auto it = tensors_.find(w);
  const ggml_tensor* t = it == tensors_.end() ? nullptr : it->second;
  // Quantized kernels are stored flattened ([k*k*in, out]): their rows must be whole
  // quantization blocks. 1x1 convolutions may be stored either way.
  const bool flattened = t != nullptr && t->ne[0] == kernel * kernel * in && t->ne[1] == out && t->ne[2] == 1 && t->ne[3] == 1;
  if (flattened) {
    c.weight = require(w, {kernel * kernel * in, out}, false);
  } else {
    c.weight = require(w, {kernel, kernel, in, out}, false);
    const ggml_type type = c.weight->type;
    if (type != GGML_TYPE_F32 && type != GGML_TYPE_F16 && type != GGML_TYPE_BF16) {
      throw Error(ErrorCode::BadModel, "convolution '" + prefix_ + w + "' is " + ggml_type_name(type) + " but not flattened");
    }
  }
  c.layout = layout_of(c.weight);
  if (bias) c.bias = require(name + ".bias", {out}, true);
  return c;
}

void WeightStore::check_all_used() const {
  for (const auto& [name, t] : tensors_) {
    if (!used_.count(name)) {
      throw Error(ErrorCode::BadModel, "model file holds tensor '" + prefix_ + name + "', which this model's config does not use");
    }
  }
}

}  // namespace jsd

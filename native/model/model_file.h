// A JSD model file (GGUF): the parsed header, typed access to its metadata and bounded reads
// of tensor data. Every read is checked against the file, so a malformed, truncated or
// foreign file ends in jsd::Error(BadModel), never in a ggml assertion.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

struct gguf_context;
struct ggml_context;
struct ggml_tensor;

namespace jsd {

class ModelFile {
 public:
  explicit ModelFile(const std::string& path);
  ~ModelFile();
  ModelFile(const ModelFile&) = delete;
  ModelFile& operator=(const ModelFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }

  bool has(const std::string& key) const;
  uint32_t u32(const std::string& key) const;
  int32_t i32(const std::string& key) const;
  float f32(const std::string& key) const;
  bool boolean(const std::string& key) const;
  std::string str(const std::string& key) const;
  std::vector<uint32_t> u32_array(const std::string& key) const;
  std::vector<float> f32_array(const std::string& key) const;
  std::vector<std::string> str_array(const std::string& key) const;
  std::string bytes(const std::string& key) const;  // an array of u8

  // The metadata-only tensor (no data) with this name, or nullptr.
  ggml_tensor* tensor(const std::string& name) const;
  std::vector<std::string> tensor_names(const std::string& prefix) const;
  // Copies a tensor's bytes from the file; size must equal the stored size.
  void read_tensor(const std::string& name, void* dst, size_t size) const;
  // Where a tensor's bytes lie in the memory-mapped file, or nullptr when the file is not
  // mapped (platforms without mmap, or JSD_NO_MMAP set).
  const uint8_t* mapped_tensor(const std::string& name) const;

 private:
  int64_t key_id(const std::string& key, int expected_type, bool array) const;

  std::string path_;
  uint64_t file_size_ = 0;
  gguf_context* gguf_ = nullptr;
  ggml_context* meta_ = nullptr;
  std::FILE* file_ = nullptr;
  void* map_ = nullptr;  // the whole file, read-only
  mutable std::mutex io_;  // seek + read on the shared FILE
};

}  // namespace jsd

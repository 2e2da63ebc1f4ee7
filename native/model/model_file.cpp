#include "model/model_file.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

#if !defined(_WIN32)
#include <sys/mman.h>
#endif

#include "model/model_keys.h"
#include "runtime/error.h"
#include "ggml.h"
#include "gguf.h"
#include "runtime/log.h"

namespace jsd {

namespace {

const char* gguf_type_label(int type) {
  return type >= 0 && type < GGUF_TYPE_COUNT ? gguf_type_name(static_cast<gguf_type>(type)) : "unknown";
}

bool seek(std::FILE* f, uint64_t offset) {
#if defined(_WIN32)
  return _fseeki64(f, static_cast<__int64>(offset), SEEK_SET) == 0;
#else
  return fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0;
#endif
}

}  // namespace

ModelFile::ModelFile(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) throw Error(ErrorCode::NotFound, "cannot open model file '" + path + "': " + std::strerror(errno));
  char magic[4] = {0, 0, 0, 0};
  const size_t got = std::fread(magic, 1, 4, file_);
  if (got < 4 || std::memcmp(magic, "GGUF", 4) != 0) {
    std::fclose(file_);
    throw Error(ErrorCode::BadModel, "'" + path + "' is not a GGUF model file (wrong magic bytes); convert a diffusers folder with `jsd convert`");
  }
  std::fseek(file_, 0, SEEK_END);
#if defined(_WIN32)
  file_size_ = static_cast<uint64_t>(_ftelli64(file_));
#else
  file_size_ = static_cast<uint64_t>(ftello(file_));
#endif

  LogCapture capture;
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/&meta_};
  gguf_ = gguf_init_from_file(path.c_str(), params);
  if (gguf_ == nullptr) {
    std::fclose(file_);
    throw Error(ErrorCode::BadModel, "'" + path + "' is not a valid GGUF file: " + capture.last_error("cannot parse its header"));
  }
  try {
    // The header parsed; now make sure every tensor's bytes lie inside the file.
    const uint64_t data_offset = gguf_get_data_offset(gguf_);
    for (int64_t i = 0; i < gguf_get_n_tensors(gguf_); ++i) {
      const uint64_t end = data_offset + gguf_get_tensor_offset(gguf_, i) + gguf_get_tensor_size(gguf_, i);
      if (end > file_size_) {
        throw Error(ErrorCode::BadModel, "'" + path + "' is truncated: tensor '" + gguf_get_tensor_name(gguf_, i) + "' ends at byte " +
                                             std::to_string(end) + " but the file has " + std::to_string(file_size_) + " bytes");
      }
    }
    if (!has(keys::kArchitecture) || str(keys::kArchitecture) != kModelArchitecture) {
      throw Error(ErrorCode::BadModel, "'" + path + "' is a GGUF file but not a JSD model (" + keys::kArchitecture + " is '" +
                                           (has(keys::kArchitecture) ? str(keys::kArchitecture) : std::string("missing")) + "')");
    }
    const uint32_t version = u32(keys::kFormatVersion);
    if (version != kModelFormatVersion) {
      throw Error(ErrorCode::BadModel, "'" + path + "' has model format version " + std::to_string(version) + "; this runtime reads version " +
                                           std::to_string(kModelFormatVersion) + " (re-convert it with this package's `jsd convert`)");
    }
  } catch (...) {
    gguf_free(gguf_);
    ggml_free(meta_);
    std::fclose(file_);
    throw;
  }
#if !defined(_WIN32)
  // Weights are used in place from the page cache: loading is instant, and the memory is
  // shared with other processes reading the same file. The size checks above guarantee every
  // tensor lies inside the mapping.
  if (std::getenv("JSD_NO_MMAP") == nullptr && file_size_ > 0) {
    void* map = mmap(nullptr, file_size_, PROT_READ, MAP_SHARED, fileno(file_), 0);
    if (map != MAP_FAILED) map_ = map;
  }
#endif
}

ModelFile::~ModelFile() {
#if !defined(_WIN32)
  if (map_) munmap(map_, file_size_);
#endif
  if (gguf_) gguf_free(gguf_);
  if (meta_) ggml_free(meta_);
  if (file_) std::fclose(file_);
}

bool ModelFile::has(const std::string& key) const { return gguf_find_key(gguf_, key.c_str()) >= 0; }

int64_t ModelFile::key_id(const std::string& key, int expected_type, bool array) const {
  const int64_t id = gguf_find_key(gguf_, key.c_str());
  if (id < 0) throw Error(ErrorCode::BadModel, "model file lacks the metadata key '" + key + "'");
  const int type = gguf_get_kv_type(gguf_, id);
  if (array) {
    if (type != GGUF_TYPE_ARRAY || gguf_get_arr_type(gguf_, id) != expected_type) {
      throw Error(ErrorCode::BadModel, "metadata key '" + key + "' should be an array of " + gguf_type_label(expected_type));
    }
  } else if (type != expected_type) {
    throw Error(ErrorCode::BadModel, "metadata key '" + key + "' should be " + gguf_type_label(expected_type) + " but is " + gguf_type_label(type));
  }
  return id;
}

uint32_t ModelFile::u32(const std::string& key) const { return gguf_get_val_u32(gguf_, key_id(key, GGUF_TYPE_UINT32, false)); }
int32_t ModelFile::i32(const std::string& key) const { return gguf_get_val_i32(gguf_, key_id(key, GGUF_TYPE_INT32, false)); }
float ModelFile::f32(const std::string& key) const { return gguf_get_val_f32(gguf_, key_id(key, GGUF_TYPE_FLOAT32, false)); }
bool ModelFile::boolean(const std::string& key) const { return gguf_get_val_bool(gguf_, key_id(key, GGUF_TYPE_BOOL, false)); }
std::string ModelFile::str(const std::string& key) const { return gguf_get_val_str(gguf_, key_id(key, GGUF_TYPE_STRING, false)); }

std::vector<uint32_t> ModelFile::u32_array(const std::string& key) const {
  const int64_t id = key_id(key, GGUF_TYPE_UINT32, true);
  const auto* data = static_cast<const uint32_t*>(gguf_get_arr_data(gguf_, id));
  return std::vector<uint32_t>(data, data + gguf_get_arr_n(gguf_, id));
}

std::vector<float> ModelFile::f32_array(const std::string& key) const {
  const int64_t id = key_id(key, GGUF_TYPE_FLOAT32, true);
  const auto* data = static_cast<const float*>(gguf_get_arr_data(gguf_, id));
  return std::vector<float>(data, data + gguf_get_arr_n(gguf_, id));
}

std::vector<std::string> ModelFile::str_array(const std::string& key) const {
  const int64_t id = key_id(key, GGUF_TYPE_STRING, true);
  std::vector<std::string> out;
  for (size_t i = 0; i < gguf_get_arr_n(gguf_, id); ++i) out.emplace_back(gguf_get_arr_str(gguf_, id, i));
  return out;
}

std::string ModelFile::bytes(const std::string& key) const {
  const int64_t id = key_id(key, GGUF_TYPE_UINT8, true);
  const auto* data = static_cast<const char*>(gguf_get_arr_data(gguf_, id));
  return std::string(data, gguf_get_arr_n(gguf_, id));
}

ggml_tensor* ModelFile::tensor(const std::string& name) const { return ggml_get_tensor(meta_, name.c_str()); }

std::vector<std::string> ModelFile::tensor_names(const std::string& prefix) const {
  std::vector<std::string> out;
  for (int64_t i = 0; i < gguf_get_n_tensors(gguf_); ++i) {
    const char* name = gguf_get_tensor_name(gguf_, i);
    if (std::strncmp(name, prefix.c_str(), prefix.size()) == 0) out.emplace_back(name);
  }
  return out;
}

const uint8_t* ModelFile::mapped_tensor(const std::string& name) const {
  if (map_ == nullptr) return nullptr;
  const int64_t id = gguf_find_tensor(gguf_, name.c_str());
  if (id < 0) return nullptr;
  return static_cast<const uint8_t*>(map_) + gguf_get_data_offset(gguf_) + gguf_get_tensor_offset(gguf_, id);
}

void ModelFile::read_tensor(const std::string& name, void* dst, size_t size) const {
  const int64_t id = gguf_find_tensor(gguf_, name.c_str());
  if (id < 0) throw Error(ErrorCode::BadModel, "model file lacks tensor '" + name + "'");
  if (gguf_get_tensor_size(gguf_, id) != size) throw Error(ErrorCode::Internal, "size mismatch reading tensor '" + name + "'");
  const uint64_t offset = gguf_get_data_offset(gguf_) + gguf_get_tensor_offset(gguf_, id);
  std::lock_guard<std::mutex> lock(io_);
  if (!seek(file_, offset) || std::fread(dst, 1, size, file_) != size) {
    throw Error(ErrorCode::BadModel, "cannot read tensor '" + name + "' from '" + path_ + "' (file truncated or changed?)");
  }
}

}  // namespace jsd

// Weight conversion for the converter: float32 rows to any ggml storage type, done by ggml's
// own routines so the bits are exactly what ggml's kernels expect.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace jsd {

struct TypeTraits {
  int ggml_type;       // enum ggml_type
  std::string name;    // ggml's name: "f32", "f16", "q8_0", "q4_K", ...
  int64_t block_size;  // elements per block (1 for f32/f16/bf16)
  size_t type_size;    // bytes per block
  bool quantized;
};

// Throws InvalidArgument for a name ggml does not know or that needs an importance matrix.
TypeTraits type_traits(const std::string& name);

// Bytes needed to store n_rows rows of row_size elements in the given type.
size_t storage_size(const TypeTraits& type, int64_t row_size, int64_t n_rows);

// Converts n_rows * row_size floats. Throws InvalidArgument when row_size is not a multiple
// of the type's block size or the input is too short.
std::vector<uint8_t> convert_rows(const float* src, size_t n_values, int64_t row_size, const TypeTraits& type);

}  // namespace jsd

#include "model/quantize.h"

#include <algorithm>

#include "runtime/error.h"
#include "ggml.h"

namespace jsd {

TypeTraits type_traits(const std::string& name) {
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const auto type = static_cast<ggml_type>(t);
    const char* type_name = ggml_type_name(type);
    if (type_name == nullptr || name != type_name || ggml_blck_size(type) == 0) continue;
    if (ggml_quantize_requires_imatrix(type)) {
      throw Error(ErrorCode::InvalidArgument, "type " + name + " needs an importance matrix, which the converter does not compute");
    }
    const bool is_float = type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
    return TypeTraits{t, name, ggml_blck_size(type), ggml_type_size(type), !is_float};
  }
  throw Error(ErrorCode::InvalidArgument, "unknown tensor type '" + name + "'");
}

size_t storage_size(const TypeTraits& type, int64_t row_size, int64_t n_rows) {
  return ggml_row_size(static_cast<ggml_type>(type.ggml_type), row_size) * static_cast<size_t>(n_rows);
}

std::vector<uint8_t> convert_rows(const float* src, size_t n_values, int64_t row_size, const TypeTraits& type) {
  if (row_size <= 0 || row_size % type.block_size != 0) {
    throw Error(ErrorCode::InvalidArgument, "row size " + std::to_string(row_size) + " is not a multiple of " + type.name +
                                                "'s block size " + std::to_string(type.block_size));
  }
  if (n_values % static_cast<size_t>(row_size) != 0) {
    throw Error(ErrorCode::InvalidArgument, std::to_string(n_values) + " values are not a whole number of rows of " + std::to_string(row_size));
  }
  const int64_t n_rows = static_cast<int64_t>(n_values / row_size);
  const auto ggml = static_cast<ggml_type>(type.ggml_type);
  std::vector<uint8_t> out(storage_size(type, row_size, n_rows));
  switch (ggml) {
    case GGML_TYPE_F32:
      std::copy_n(reinterpret_cast<const uint8_t*>(src), out.size(), out.data());
      break;
    case GGML_TYPE_F16:
      ggml_fp32_to_fp16_row(src, reinterpret_cast<ggml_fp16_t*>(out.data()), static_cast<int64_t>(n_values));
      break;
    case GGML_TYPE_BF16:
      ggml_fp32_to_bf16_row_ref(src, reinterpret_cast<ggml_bf16_t*>(out.data()), static_cast<int64_t>(n_values));
      break;
    default: {
      const size_t written = ggml_quantize_chunk(ggml, src, out.data(), 0, n_rows, row_size, nullptr);
      if (written != out.size()) throw Error(ErrorCode::Internal, "ggml_quantize_chunk wrote an unexpected size");
    }
  }
  return out;
}

}  // namespace jsd

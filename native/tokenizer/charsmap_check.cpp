#include "tokenizer/charsmap_check.h"

#include <cstdint>
#include <cstring>
#include <vector>

namespace jsd {
namespace {

// --- Just enough of the protobuf wire format to find ModelProto.{normalizer,denormalizer}_spec
// .precompiled_charsmap. Where the same message or field occurs more than once, protobuf merges
// or takes the last; checking every occurrence covers whichever one sentencepiece keeps.

constexpr uint32_t kNormalizerSpec = 3;    // ModelProto.normalizer_spec
constexpr uint32_t kDenormalizerSpec = 5;  // ModelProto.denormalizer_spec
constexpr uint32_t kPrecompiledCharsmap = 2;  // NormalizerSpec.precompiled_charsmap

struct Field {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  std::string_view bytes;  // wire type 2 only
};

class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  // Reads the next field; false on malformed input.
  bool next(Field* field) {
    uint64_t key = 0;
    if (!varint(&key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return false;
    field->number = static_cast<uint32_t>(key >> 3);
    field->wire_type = static_cast<uint32_t>(key & 7);
    uint64_t length = 0;
    switch (field->wire_type) {
      case 0:
        return varint(&length);
      case 1:
        return skip(8);
      case 5:
        return skip(4);
      case 2:
        if (!varint(&length) || length > data_.size() - pos_) return false;
        field->bytes = data_.substr(pos_, static_cast<size_t>(length));
        pos_ += static_cast<size_t>(length);
        return true;
      default:  // groups (3, 4) are not used by sentencepiece models
        return false;
    }
  }

 private:
  bool varint(uint64_t* out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return false;
      const auto byte = static_cast<uint8_t>(data_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) {
        *out = value;
        return true;
      }
    }
    return false;
  }
  bool skip(size_t n) {
    if (n > data_.size() - pos_) return false;
    pos_ += n;
    return true;
  }

  std::string_view data_;
  size_t pos_ = 0;
};

// --- The double-array trie as sentencepiece's darts-clone lays it out: 32-bit units holding
// a label (low byte, bit 31 set on value units), a has-leaf flag (bit 8) and an offset (bits
// 10-31, shifted by 8 more when bit 9 is set). A lookup of byte c from node p goes to
// p ^ offset(p) ^ c; a node with a leaf keeps its value in the unit at p ^ offset(p).

uint32_t unit_label(uint32_t unit) { return unit & ((1U << 31) | 0xFFU); }
bool unit_has_leaf(uint32_t unit) { return ((unit >> 8) & 1U) != 0; }
uint32_t unit_value(uint32_t unit) { return unit & ((1U << 31) - 1); }
uint32_t unit_offset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }

}  // namespace

std::string check_precompiled_charsmap(std::string_view blob) {
  // <trie size: uint32 little-endian><trie units><replacement strings, each NUL-terminated>
  uint32_t trie_size = 0;
  if (blob.size() <= sizeof(trie_size)) return "the normalization table is shorter than its header";
  std::memcpy(&trie_size, blob.data(), sizeof(trie_size));
  if (trie_size >= blob.size() - sizeof(trie_size)) return "the normalization trie is larger than its table";
  const size_t units_count = trie_size / sizeof(uint32_t);
  if (units_count == 0) return "the normalization trie is empty";
  std::vector<uint32_t> units(units_count);
  std::memcpy(units.data(), blob.data() + sizeof(trie_size), units_count * sizeof(uint32_t));
  const std::string_view strings = blob.substr(sizeof(trie_size) + trie_size);

  // Visit every node a lookup can reach (the root is never matched itself, only its children).
  std::vector<bool> visited(units_count, false);
  std::vector<size_t> pending{0};
  visited[0] = true;
  while (!pending.empty()) {
    const size_t node = pending.back();
    pending.pop_back();
    const uint32_t unit = units[node];
    const size_t base = node ^ unit_offset(unit);
    // Any input byte may be looked up next, so the whole 256-unit block must exist.
    if ((base | 0xFFU) >= units_count) return "a normalization trie node points outside the trie";
    if (node != 0 && unit_has_leaf(unit)) {
      const size_t value = unit_value(units[base]);
      if (value >= strings.size() || std::memchr(strings.data() + value, '\0', strings.size() - value) == nullptr) {
        return "a normalization rule points outside the replacement strings";
      }
    }
    for (uint32_t c = 0; c < 256; ++c) {
      const size_t child = base ^ c;
      if (unit_label(units[child]) != c || visited[child]) continue;
      visited[child] = true;
      pending.push_back(child);
    }
  }
  return "";
}

std::string check_sentencepiece_charsmaps(std::string_view model_proto) {
  WireReader model(model_proto);
  while (!model.done()) {
    Field field;
    if (!model.next(&field)) return "the model is not a well-formed protobuf message";
    if (field.wire_type != 2 || (field.number != kNormalizerSpec && field.number != kDenormalizerSpec)) continue;
    const char* which = field.number == kNormalizerSpec ? "normalizer" : "denormalizer";
    WireReader spec(field.bytes);
    while (!spec.done()) {
      Field inner;
      if (!spec.next(&inner)) return std::string("the ") + which + " spec is not a well-formed protobuf message";
      if (inner.number != kPrecompiledCharsmap || inner.wire_type != 2 || inner.bytes.empty()) continue;
      const std::string problem = check_precompiled_charsmap(inner.bytes);
      if (!problem.empty()) return std::string(which) + ": " + problem;
    }
  }
  return "";
}

}  // namespace jsd

// A sentencepiece model held in memory: the raw pieces, without the transformers
// T5Tokenizer rules (lower-casing, special tokens, padding) that the tokenizer adds on top.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace jsd {

struct Encoding {
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
};

class SentencePieceModel {
 public:
  // Parses a serialized ModelProto; throws jsd::Error(BadTokenizer) when it is not one.
  static std::unique_ptr<SentencePieceModel> from_bytes(const std::string& bytes);
  // Reads and parses a .model file; throws NotFound or BadTokenizer.
  static std::unique_ptr<SentencePieceModel> from_file(const std::string& path);
  ~SentencePieceModel();

  Encoding encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;  // throws InvalidArgument for ids out of range
  int vocab_size() const;
  int piece_to_id(const std::string& piece) const;  // the unk id for unknown pieces
  std::string id_to_piece(int id) const;             // throws InvalidArgument when out of range
  int unk_id() const;
  int pad_id() const;  // -1 when the model has none
  int eos_id() const;
  int bos_id() const;
  const std::string& serialized() const { return bytes_; }

 private:
  SentencePieceModel();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::string bytes_;
};

}  // namespace jsd

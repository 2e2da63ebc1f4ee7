#include "tokenizer/sentencepiece_model.h"

#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "tokenizer/charsmap_check.h"
#include "runtime/error.h"

namespace jsd {

SentencePieceModel::SentencePieceModel() : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SentencePieceModel::~SentencePieceModel() = default;

std::unique_ptr<SentencePieceModel> SentencePieceModel::from_bytes(const std::string& bytes) {
  if (bytes.empty()) throw Error(ErrorCode::BadTokenizer, "sentencepiece model is empty (0 bytes)");
  // Before sentencepiece sees the bytes: loading runs the model's self-test, which already
  // normalizes text through the tables checked here.
  const std::string problem = check_sentencepiece_charsmaps(bytes);
  if (!problem.empty()) throw Error(ErrorCode::BadTokenizer, "not a sentencepiece model: " + problem);
  std::unique_ptr<SentencePieceModel> model(new SentencePieceModel());
  const auto status = model->processor_->LoadFromSerializedProto(bytes);
  if (!status.ok()) {
    throw Error(ErrorCode::BadTokenizer, "not a sentencepiece model: " + status.ToString());
  }
  if (model->processor_->GetPieceSize() <= 0) throw Error(ErrorCode::BadTokenizer, "sentencepiece model has no pieces");
  model->bytes_ = bytes;
  return model;
}

std::unique_ptr<SentencePieceModel> SentencePieceModel::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::NotFound, "cannot open sentencepiece model '" + path + "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::NotFound, "cannot read sentencepiece model '" + path + "'");
  return from_bytes(buffer.str());
}

Encoding SentencePieceModel::encode(const std::string& text) const {
  sentencepiece::ImmutableSentencePieceText spt;
  const auto status = processor_->Encode(text, spt.mutable_proto());
  if (!status.ok()) throw Error(ErrorCode::InvalidArgument, "sentencepiece could not encode the text: " + status.ToString());
  Encoding out;
  out.ids.reserve(spt.pieces_size());
  out.pieces.reserve(spt.pieces_size());
  for (size_t i = 0; i < spt.pieces_size(); ++i) {
    const auto piece = spt.pieces(static_cast<int>(i));
    out.ids.push_back(static_cast<int32_t>(piece.id()));
    out.pieces.push_back(piece.piece());
  }
  return out;
}

std::string SentencePieceModel::decode(const std::vector<int32_t>& ids) const {
  const int n = vocab_size();
  std::vector<int> checked;
  checked.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= n) {
      throw Error(ErrorCode::InvalidArgument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(n) + ")");
    }
    checked.push_back(id);
  }
  std::string text;
  const auto status = processor_->Decode(checked, &text);
  if (!status.ok()) throw Error(ErrorCode::InvalidArgument, "sentencepiece could not decode: " + status.ToString());
  return text;
}

int SentencePieceModel::vocab_size() const { return processor_->GetPieceSize(); }
int SentencePieceModel::piece_to_id(const std::string& piece) const { return processor_->PieceToId(piece); }

std::string SentencePieceModel::id_to_piece(int id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error(ErrorCode::InvalidArgument, "token id " + std::to_string(id) + " is outside the vocabulary");
  }
  return processor_->IdToPiece(id);
}

int SentencePieceModel::unk_id() const { return processor_->unk_id(); }
int SentencePieceModel::pad_id() const { return processor_->pad_id(); }
int SentencePieceModel::eos_id() const { return processor_->eos_id(); }
int SentencePieceModel::bos_id() const { return processor_->bos_id(); }

}  // namespace jsd

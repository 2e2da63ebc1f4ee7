// libFuzzer harness for the tokenizer's native half (jsd::SentencePieceModel):
//  1. the input as a serialized sentencepiece model (from_bytes); when it parses, the model is
//     used (vocabulary queries, encode, decode) like a model file's embedded tokenizer would be;
//  2. the input as UTF-8-or-not text, encoded with the fixture's valid model, and the ids
//     decoded back;
//  3. the input as token ids: raw int32 values (mostly out of range: must be InvalidArgument)
//     and values folded into [-1, vocab] (mostly valid) for decode.
// jsd::Error is the expected outcome; anything else is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "sanitizer_options.h"
#include "tokenizer/sentencepiece_model.h"

#ifndef JSD_FUZZ_SPIECE
#error "JSD_FUZZ_SPIECE (the fixture's spiece.model) must be defined"
#endif

namespace {

std::unique_ptr<jsd::SentencePieceModel> g_model;
constexpr size_t kTextMax = 16384;

template <typename F>
void expect_jsd_error(F&& f) {
  try {
    f();
  } catch (const jsd::Error&) {
  }
}

void use_model(const jsd::SentencePieceModel& m, const std::string& text) {
  const int n = m.vocab_size();
  (void)m.unk_id();
  (void)m.pad_id();
  (void)m.eos_id();
  (void)m.bos_id();
  for (int id : {-1, 0, 1, n / 2, n - 1, n}) {
    expect_jsd_error([&] { (void)m.piece_to_id(m.id_to_piece(id)); });
  }
  expect_jsd_error([&] {
    const jsd::Encoding e = m.encode(text);
    if (e.ids.size() != e.pieces.size()) std::abort();
    expect_jsd_error([&] { (void)m.decode(e.ids); });
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = std::getenv("JSD_FUZZ_SPIECE_MODEL");
  try {
    g_model = jsd::SentencePieceModel::from_file(path != nullptr ? path : JSD_FUZZ_SPIECE);
  } catch (const jsd::Error& e) {
    std::fprintf(stderr, "fuzz_tokenizer: cannot load the fixed model: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);

  // 1. bytes as a model
  expect_jsd_error([&] {
    auto model = jsd::SentencePieceModel::from_bytes(bytes);
    if (model->serialized() != bytes) std::abort();
    use_model(*model, "東京の夜景、油絵 Tokyo at night 123");
  });

  // 2. bytes as text for the fixed model. Prompt-sized: the first kTextMax bytes (encoding a
  // 378 kB seed model as text under ASan takes ~0.5 s and over 1 GB of RSS, which would starve
  // the fuzzer; long prompts belong to the TS bad-input suite).
  const std::string text = bytes.substr(0, kTextMax);
  use_model(*g_model, text);

  // 3. bytes as ids (the same prefix)
  data = reinterpret_cast<const uint8_t*>(text.data());
  size = text.size();
  const int n = g_model->vocab_size();
  std::vector<int32_t> raw(size / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  expect_jsd_error([&] { (void)g_model->decode(raw); });
  std::vector<int32_t> folded;
  folded.reserve(size / 2);
  for (size_t i = 0; i + 1 < size; i += 2) {
    const uint32_t v = static_cast<uint32_t>(data[i]) | (static_cast<uint32_t>(data[i + 1]) << 8);
    folded.push_back(static_cast<int32_t>(v % static_cast<uint32_t>(n + 2)) - 1);
  }
  expect_jsd_error([&] { (void)g_model->decode(folded); });
  return 0;
}

// Safety check of a sentencepiece model's normalization tables before sentencepiece uses them.
//
// sentencepiece trusts the `precompiled_charsmap` blobs of a model (the NFKC table of the
// normalizer, and of the denormalizer): it walks their double-array trie and reads the
// replacement strings without bounds checks, so a hostile model file could make it read outside
// the blob (found by fuzz_tokenizer). The model files we load come from users, so every trie
// node a lookup can reach, and every replacement string a leaf points to, is checked here first.
#pragma once

#include <string>
#include <string_view>

namespace jsd {

// Returns "" when every charsmap in the serialized ModelProto is safe to use (or absent), else
// a description of the first problem found.
std::string check_sentencepiece_charsmaps(std::string_view model_proto);

// The check of one precompiled_charsmap blob (exposed for tests): "" or the problem.
std::string check_precompiled_charsmap(std::string_view blob);

}  // namespace jsd

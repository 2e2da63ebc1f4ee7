// Writes the seed corpora of the fuzzing harnesses (test/fuzz-corpus/<harness>/):
//   make_fuzz_seeds <model.gguf> <corpus-root>
// <model.gguf> is a converted model (models/tiny-jsd-shapes.gguf): its metadata is kept and its
// networks are shrunk (every dimension that is a multiple of 16 divided by 16, the configs to
// match), giving a complete, loadable model of ~200 kB with zero weights. From it come a few
// smaller valid files and some malformed ones. The tokenizer seeds are the fixture's
// sentencepiece model, a truncated copy and some texts. The tool checks that the valid model
// loads (jsd::Engine) before writing the corpus.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "model/model_keys.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "ggml.h"
#include "gguf.h"
#include "runtime/log.h"

namespace fs = std::filesystem;
namespace keys = jsd::keys;

namespace {

std::vector<char> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_all(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

int64_t shrink(int64_t n) { return n % 16 == 0 ? n / 16 : n; }

void shrink_u32(gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  if (id >= 0) gguf_set_val_u32(g, key, static_cast<uint32_t>(shrink(gguf_get_val_u32(g, id))));
}

void set_u32_array(gguf_context* g, const char* key, std::vector<uint32_t> v) {
  gguf_set_arr_data(g, key, GGUF_TYPE_UINT32, v.data(), v.size());
}

void shrink_u32_array(gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  if (id < 0) return;
  const auto* d = static_cast<const uint32_t*>(gguf_get_arr_data(g, id));
  std::vector<uint32_t> v(d, d + gguf_get_arr_n(g, id));
  for (auto& x : v) x = static_cast<uint32_t>(shrink(x));
  set_u32_array(g, key, v);
}

// A model with src's metadata (configs shrunk) and the tensors whose names start with one of
// prefixes, shrunk, with zero data. prefixes empty: no tensors.
bool write_small(const gguf_context* src, const ggml_context* src_meta, const fs::path& out, const std::vector<std::string>& prefixes) {
  gguf_context* g = gguf_init_empty();
  gguf_set_kv(g, src);
  const uint8_t spiece_stub[16] = {'n', 'o', 't', ' ', 'a', ' ', 'm', 'o', 'd', 'e', 'l', 0, 1, 2, 3, 4};
  gguf_set_arr_data(g, keys::tokenizer::sentencepiece, GGUF_TYPE_UINT8, spiece_stub, sizeof spiece_stub);
  gguf_remove_key(g, keys::kDataSha256);
  shrink_u32(g, keys::text_encoder::hidden_size);
  shrink_u32(g, keys::text_encoder::intermediate_size);
  shrink_u32(g, keys::unet::cross_attention_dim);
  gguf_set_val_u32(g, keys::unet::norm_num_groups, 2);
  gguf_set_val_u32(g, keys::vae::norm_num_groups, 2);
  shrink_u32_array(g, keys::unet::block_out_channels);
  shrink_u32_array(g, keys::vae::block_out_channels);
  const int64_t heads = gguf_find_key(g, keys::unet::attention_head_dim);
  if (heads >= 0) set_u32_array(g, keys::unet::attention_head_dim, std::vector<uint32_t>(gguf_get_arr_n(g, heads), 2));

  size_t bytes = ggml_tensor_overhead() * (gguf_get_n_tensors(src) + 1);
  std::vector<ggml_tensor*> picked;
  for (ggml_tensor* t = ggml_get_first_tensor(src_meta); t != nullptr; t = ggml_get_next_tensor(src_meta, t)) {
    const std::string name = ggml_get_name(t);
    bool take = false;
    for (const auto& p : prefixes) take = take || name.rfind(p, 0) == 0;
    if (!take) continue;
    picked.push_back(t);
    int64_t n = 1;
    for (int i = 0; i < GGML_MAX_DIMS; ++i) n *= shrink(t->ne[i]);
    bytes += static_cast<size_t>(n) * ggml_type_size(t->type) / ggml_blck_size(t->type) + 64;
  }
  ggml_init_params params{bytes, nullptr, false};
  ggml_context* ctx = ggml_init(params);
  for (ggml_tensor* t : picked) {
    const int64_t ne[4] = {shrink(t->ne[0]), shrink(t->ne[1]), shrink(t->ne[2]), shrink(t->ne[3])};
    ggml_tensor* s = ggml_new_tensor(ctx, t->type, ggml_n_dims(t), ne);
    ggml_set_name(s, ggml_get_name(t));
    std::memset(s->data, 0, ggml_nbytes(s));
    gguf_add_tensor(g, s);
  }
  const bool ok = gguf_write_to_file(g, out.string().c_str(), false);
  ggml_free(ctx);
  gguf_free(g);
  return ok;
}

// A file with only the given metadata.
void write_meta(const fs::path& out, const char* arch, uint32_t version, bool with_version) {
  gguf_context* g = gguf_init_empty();
  if (arch) gguf_set_val_str(g, keys::kArchitecture, arch);
  if (with_version) gguf_set_val_u32(g, keys::kFormatVersion, version);
  gguf_write_to_file(g, out.string().c_str(), false);
  gguf_free(g);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_fuzz_seeds <model.gguf> <corpus-root>\n");
    return 2;
  }
  jsd::install_ggml_logger();
  const fs::path root = argv[2];
  const fs::path mf = root / "fuzz_model_file";
  const fs::path tk = root / "fuzz_tokenizer";
  fs::create_directories(mf);
  fs::create_directories(tk);

  ggml_context* meta = nullptr;
  gguf_init_params params{true, &meta};
  gguf_context* src = gguf_init_from_file(argv[1], params);
  if (src == nullptr) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  // Valid files.
  const fs::path full = mf / "valid-small-full.gguf";
  write_small(src, meta, full, {"te.", "unet.", "vae."});
  write_small(src, meta, mf / "valid-text-encoder-only.gguf", {"te."});
  write_small(src, meta, mf / "valid-vae-only.gguf", {"vae."});
  write_small(src, meta, mf / "valid-metadata-only.gguf", {});
  write_meta(mf / "valid-header-minimal.gguf", jsd::kModelArchitecture, jsd::kModelFormatVersion, true);
  try {
    jsd::EngineOptions options;
    options.threads = 1;
    jsd::Engine engine(full.string(), options);
    std::fprintf(stderr, "make_fuzz_seeds: %s loads (%zu metadata strings)\n", full.string().c_str(), engine.metadata().size());
  } catch (const jsd::Error& e) {
    std::fprintf(stderr, "make_fuzz_seeds: the shrunk model does not load: %s\n", e.what());
    return 1;
  }
  // Malformed files.
  write_meta(mf / "bad-version.gguf", jsd::kModelArchitecture, jsd::kModelFormatVersion + 1, true);
  write_meta(mf / "bad-arch.gguf", "llama", jsd::kModelFormatVersion, true);
  write_meta(mf / "bad-no-version.gguf", jsd::kModelArchitecture, 0, false);
  const auto bytes = read_all(full);
  write_all(mf / "bad-truncated-header.gguf", std::vector<char>(bytes.begin(), bytes.begin() + std::min<size_t>(bytes.size(), 3000)));
  const auto te = read_all(mf / "valid-text-encoder-only.gguf");
  write_all(mf / "bad-truncated-data.gguf", std::vector<char>(te.begin(), te.end() - std::min<size_t>(te.size(), 1000)));
  auto magic = std::vector<char>(bytes.begin(), bytes.begin() + std::min<size_t>(bytes.size(), 512));
  std::memcpy(magic.data(), "GGUX", 4);
  write_all(mf / "bad-magic.gguf", magic);
  const auto real = read_all(argv[1]);
  write_all(mf / "bad-real-first-8k.gguf", std::vector<char>(real.begin(), real.begin() + std::min<size_t>(real.size(), 8192)));
  gguf_free(src);
  ggml_free(meta);

  // Tokenizer seeds.
  const auto spiece = read_all(JSD_FUZZ_SPIECE);
  write_all(tk / "model-fixture.model", spiece);
  write_all(tk / "model-truncated.model", std::vector<char>(spiece.begin(), spiece.begin() + std::min<size_t>(spiece.size(), 4096)));
  const char* texts[] = {
      "東京の夜景、油絵",
      "a photo of a cat, 猫の写真, ｶﾀｶﾅ ＡＢＣ １２３",
      "😀👍🏽 emoji and 中文 and 한국어 and русский",
      "line\nbreak\ttab  spaces\r\n",
      "\xff\xfe invalid utf-8 \xc3\x28 \xed\xa0\x80 lone surrogate",
  };
  int i = 0;
  for (const char* t : texts) {
    std::ofstream(tk / ("text-" + std::to_string(i++) + ".txt"), std::ios::binary) << t;
  }
  write_all(tk / "text-nul.txt", std::vector<char>{'a', '\0', 'b', '\0', '\xe3', '\x81', '\x82'});
  std::vector<char> ids;
  for (int32_t id : {0, 1, 2, 3, 10, 100, 227, -1, 1 << 30}) {
    const char* p = reinterpret_cast<const char*>(&id);
    ids.insert(ids.end(), p, p + 4);
  }
  write_all(tk / "ids-mixed.bin", ids);
  std::fprintf(stderr, "make_fuzz_seeds: wrote %s and %s\n", mf.string().c_str(), tk.string().c_str());
  return 0;
}

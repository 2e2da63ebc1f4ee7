// libFuzzer harness: the input bytes are a model file. They are written to a temporary file
// and loaded the way loadModel() does: jsd::ModelFile (GGUF header, bounds checks, mmap), the
// config readers, metadata and tensor reads, one jsd::WeightStore per network (constructed and
// loaded on the CPU backend) and finally a whole jsd::Engine. jsd::Error is the expected
// outcome for a bad file; a crash, an abort, an ASan/UBSan report, a leak or any other
// exception escaping is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

#include "model/config.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "sanitizer_options.h"
#include "ggml-backend.h"
#include "runtime/cpu_backend.h"
#include "ggml.h"
#include "runtime/log.h"
#include "model/model_file.h"
#include "model/model_keys.h"
#include "model/weights.h"

namespace {

std::string g_path;
ggml_backend_t g_backend = nullptr;

// JSD_FUZZ_VERBOSE=1 prints each jsd::Error (for looking at one input, not for fuzzing).
const bool g_verbose = std::getenv("JSD_FUZZ_VERBOSE") != nullptr;

template <typename F>
void expect_jsd_error(F&& f) {
  try {
    f();
  } catch (const jsd::Error& e) {
    if (g_verbose) std::fprintf(stderr, "jsd::Error(%s): %s\n", jsd::error_code_name(e.code()), e.what());
  }
}

void remove_temp() {
  if (!g_path.empty()) std::remove(g_path.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  jsd::install_ggml_logger();  // ggml's parse errors stay quiet unless JSD_DEBUG is set
  const char* dir = std::getenv("JSD_FUZZ_TMPDIR");
  if (dir == nullptr) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  g_path = std::string(dir) + "/jsd-fuzz-model-" + std::to_string(getpid()) + ".gguf";
  std::atexit(remove_temp);
  g_backend = jsd::init_cpu_backend();
  if (g_backend == nullptr) std::abort();
  jsd::set_cpu_threads(g_backend, 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::FILE* f = std::fopen(g_path.c_str(), "wb");
    if (f == nullptr) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
  }
  bool opened = false;
  try {
    jsd::ModelFile file(g_path);
    opened = true;
    expect_jsd_error([&] { jsd::read_text_encoder_config(file); });
    expect_jsd_error([&] { jsd::read_unet_config(file); });
    expect_jsd_error([&] { jsd::read_vae_config(file); });
    expect_jsd_error([&] { jsd::read_tokenizer_config(file); });
    expect_jsd_error([&] { (void)file.bytes(jsd::keys::tokenizer::sentencepiece); });
    for (const char* key : {jsd::keys::kModelIndex, jsd::keys::text_encoder::config, jsd::keys::kSource, jsd::keys::kName, jsd::keys::kDataSha256}) {
      expect_jsd_error([&] {
        if (file.has(key)) (void)file.str(key);
      });
    }
    expect_jsd_error([&] { (void)file.str_array(jsd::keys::unet::down_block_types); });
    expect_jsd_error([&] { (void)file.u32_array(jsd::keys::unet::block_out_channels); });
    expect_jsd_error([&] { (void)file.i32(jsd::keys::tokenizer::pad_id); });
    expect_jsd_error([&] { (void)file.boolean(jsd::keys::unet::flip_sin_to_cos); });
    // Every tensor's bytes, read and through the mapping (ASan checks the bounds).
    std::vector<uint8_t> buffer;
    for (const auto& name : file.tensor_names("")) {
      ggml_tensor* t = file.tensor(name);
      if (t == nullptr) continue;
      const size_t n = ggml_nbytes(t);
      buffer.resize(n);
      expect_jsd_error([&] { file.read_tensor(name, buffer.data(), n); });
      if (const uint8_t* p = file.mapped_tensor(name)) {
        volatile uint8_t sink = 0;
        if (n > 0) sink = sink ^ p[0] ^ p[n - 1];
        (void)sink;
      }
    }
    for (const char* prefix : {"te.", "unet.", "vae."}) {
      expect_jsd_error([&] {
        jsd::WeightStore weights(file, prefix, jsd::FileWeightPlan::read(file));
        weights.load(file, g_backend);
        (void)weights.bytes();
        (void)weights.packed_bytes();
        expect_jsd_error([&] { weights.check_all_used(); });
      });
    }
  } catch (const jsd::Error& e) {
    if (g_verbose) std::fprintf(stderr, "jsd::Error(%s): %s\n", jsd::error_code_name(e.code()), e.what());
  }
  if (opened) {
    // The whole load path: configs cross-checked, every network's require_* calls, weights placed.
    expect_jsd_error([&] {
      jsd::EngineOptions options;
      options.threads = 1;
      jsd::Engine engine(g_path, options);
      (void)engine.memory();
      (void)engine.metadata();
    });
  }
  // Removed after each input: libFuzzer ends with _Exit, which skips atexit handlers.
  std::remove(g_path.c_str());
  return 0;
}

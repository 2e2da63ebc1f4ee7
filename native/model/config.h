// Network configurations read from the model file. Every size the graphs use comes from
// here, so the tiny fixture model and the full 860M-parameter UNet run through one code path.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace jsd {

class ModelFile;

struct TextEncoderConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int max_position_embeddings = 0;
  float layer_norm_eps = 1e-5f;
  bool quick_gelu = true;  // "quick_gelu" (CLIP) or exact "gelu"
};

struct UNetConfig {
  int in_channels = 4;
  int out_channels = 4;
  int layers_per_block = 2;
  int cross_attention_dim = 768;
  int norm_num_groups = 32;
  int sample_size = 64;
  int freq_shift = 0;
  float norm_eps = 1e-5f;
  bool flip_sin_to_cos = true;
  std::vector<int> block_out_channels;
  std::vector<int> attention_heads;  // per level; SD v1's "attention_head_dim" is a head count
  std::vector<bool> down_has_attention;
  std::vector<bool> up_has_attention;
  int time_embed_dim() const { return block_out_channels.at(0) * 4; }
};

struct VaeConfig {
  int in_channels = 3;
  int out_channels = 3;
  int latent_channels = 4;
  int layers_per_block = 2;
  int norm_num_groups = 32;
  float scaling_factor = 0.18215f;
  std::vector<int> block_out_channels;
};

struct TokenizerConfig {
  int pad_id = 0;
  int eos_id = 1;
  int unk_id = 2;
  bool do_lower_case = true;
  int model_max_length = 77;
};

// The safety checker's CLIP vision tower (transformers' CLIPVisionConfig) and its projection.
// Its activation is always quick_gelu, as in every CLIP vision checkpoint.
struct SafetyCheckerConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int image_size = 224;
  int patch_size = 14;
  int num_channels = 3;
  int projection_dim = 0;
  float layer_norm_eps = 1e-5f;
  int patches_per_side() const { return image_size / patch_size; }
  // The class token and one position per patch.
  int num_positions() const { return patches_per_side() * patches_per_side() + 1; }
};

// CLIPFeatureExtractor's settings, which the TypeScript side applies to make pixel_values.
struct FeatureExtractorConfig {
  int size = 224;       // the shorter side after resizing
  int crop_size = 224;  // the centre crop's side: the tower's image_size
  bool do_resize = true;
  bool do_center_crop = true;
  bool do_normalize = true;
  int resample = 3;  // PIL's filter number (3: bicubic)
  std::array<float, 3> image_mean{};
  std::array<float, 3> image_std{};
};

// The optional fourth component: a file has both sections or neither.
struct SafetyCheckerConfigs {
  SafetyCheckerConfig checker;
  FeatureExtractorConfig feature_extractor;
};

TextEncoderConfig read_text_encoder_config(const ModelFile& file);
UNetConfig read_unet_config(const ModelFile& file);
VaeConfig read_vae_config(const ModelFile& file);
TokenizerConfig read_tokenizer_config(const ModelFile& file);
// nullopt when the file has no safety checker; BadModel when it has part of one.
std::optional<SafetyCheckerConfigs> read_safety_checker_configs(const ModelFile& file);

}  // namespace jsd

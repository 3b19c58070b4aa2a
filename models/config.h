// ModelConfig: everything a Forward needs to know about an architecture's
// hyperparameters, read from GGUF metadata (or a HF config.json) and checked
// once, so Forward code never second-guesses it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "models/gguf.h"
#include "runtime/status.h"

namespace atrium {

// Stored in catalogs and checkpoints: append-only.
enum class Arch : int { kLlama = 0, kGemma3 = 1, kQwen2 = 2 };

enum class Activation : int { kSilu = 0, kGeluTanh = 1 };

struct ModelConfig {
  std::string architecture;  // as the file names it: "llama", "gemma3", "qwen2"
  Arch arch = Arch::kLlama;
  int64_t n_vocab = 0;
  int64_t dim = 0;  // embedding length
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;    // key length per head
  int64_t head_dim_v = 0;  // value length per head
  int64_t ffn_dim = 0;
  int64_t context_length = 0;
  float rms_eps = 1e-5f;

  kernels::RopeLayout rope_layout = kernels::RopeLayout::kNormal;
  int64_t rope_dim = 0;  // dims rotated per head
  float rope_base = 10000.0f;
  float rope_scale = 1.0f;  // GGML freq_scale: 1 / linear scaling factor
  // Sliding-window layers (Gemma 3) use their own rope base.
  float rope_base_swa = 10000.0f;
  float rope_scale_swa = 1.0f;

  int64_t sliding_window = 0;       // 0 = none
  std::vector<bool> layer_is_swa;  // [n_layers]

  Activation activation = Activation::kSilu;
  float attn_scale = 0.0f;       // multiplies q.k (1/sqrt(head_dim) by default)
  float attn_softcap = 0.0f;     // 0 = none
  float final_softcap = 0.0f;    // 0 = none
  float embed_scale = 1.0f;      // Gemma: sqrt(dim)
  bool has_qk_norm = false;      // Gemma 3: RMSNorm of q and k per head
  bool has_post_norms = false;   // Gemma 3: norms after attention and FFN
  bool has_qkv_bias = false;     // Qwen2

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t k_dim() const { return n_kv_heads * head_dim; }
  int64_t v_dim() const { return n_kv_heads * head_dim_v; }
};

// Reads and validates the hyperparameters of a GGUF file; errors name the key.
StatusOr<ModelConfig> ConfigFromGguf(const gguf::GgufFile& file);

// Checks a config for internal consistency (positive sizes, heads dividing).
Status ValidateConfig(const ModelConfig& config);

}  // namespace atrium

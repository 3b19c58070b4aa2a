// A Hugging Face config.json for llama-family checkpoints (LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM), parsed into a plain struct with
// errors that name the field and say what was expected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace atrium {

struct HfConfig {
  std::string architecture;  // "LlamaForCausalLM", ...
  std::string model_type;    // "llama", "mistral", "qwen2" (may be empty)
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // default: num_attention_heads
  int64_t head_dim = 0;             // default: hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 2048;
  int64_t vocab_size = 0;
  bool tie_word_embeddings = false;
  // Set only when the checkpoint uses sliding-window attention (Mistral's
  // sliding_window, Qwen2's when use_sliding_window is true).
  std::optional<int64_t> sliding_window;
  // q/k/v projections have biases: always for Qwen2, `attention_bias` else.
  bool attention_bias = false;
  std::string hidden_act = "silu";
  // rope_scaling.rope_type (or .type), "" when absent; the model decides
  // which it supports.
  std::string rope_scaling_type;
  double rope_scaling_factor = 1.0;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be one id or a list
  std::string torch_dtype;             // "bfloat16", ... or ""
};

// `name` prefixes messages ("config.json: field 'hidden_size' ...").
StatusOr<HfConfig> ParseHfConfig(std::string_view json_text, std::string_view name = "config.json");
// Reads and parses a file (messages use its path).
StatusOr<HfConfig> LoadHfConfig(const std::string& path);

}  // namespace atrium

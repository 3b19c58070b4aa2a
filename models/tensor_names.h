// One table of weight names per file format: a role to its GGUF name
// ("blk.%d.attn_q.weight") and its HF name ("model.layers.%d.self_attn.q_proj.weight").
// The same visitor serves loading, LoRA targeting and the optimizer.
#pragma once

#include <string>
#include <string_view>

#include "models/config.h"

namespace atrium {

// Append-only: stored in adapter files.
enum class WeightRole : int {
  kTokenEmbd = 0,
  kOutputNorm = 1,
  kOutput = 2,
  kAttnNorm = 3,
  kAttnQ = 4,
  kAttnK = 5,
  kAttnV = 6,
  kAttnOutput = 7,
  kAttnQNorm = 8,
  kAttnKNorm = 9,
  kAttnPostNorm = 10,
  kFfnNorm = 11,
  kFfnGate = 12,
  kFfnUp = 13,
  kFfnDown = 14,
  kFfnPostNorm = 15,
  kAttnQBias = 16,
  kAttnKBias = 17,
  kAttnVBias = 18,
};
constexpr int kNumWeightRoles = 19;

enum class Need { kAbsent, kOptional, kRequired };

// HF names are the llama family's (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM). Gemma 3 is loaded from GGUF only: its HF checkpoints
// call ffn_norm "pre_feedforward_layernorm", which this table does not map.
struct WeightName {
  WeightRole role;
  const char* gguf;  // printf format with the layer for per-layer roles
  const char* hf;
  bool per_layer;
};

const WeightName& NameOf(WeightRole role);
std::string GgufName(WeightRole role, int layer);
std::string HfName(WeightRole role, int layer);
// Whether an architecture must, may or never has this weight.
Need NeedOf(const ModelConfig& config, WeightRole role);

}  // namespace atrium

// The weights of a decoder-only transformer, as views into the model file
// (no copy). Shapes are row-major [n_out, n_in]; unused fields stay undefined.
#pragma once

#include <functional>
#include <vector>

#include "models/tensor_names.h"
#include "runtime/tensor.h"

namespace atrium {

struct LayerWeights {
  Tensor attn_norm;       // [dim]
  Tensor attn_q;          // [n_heads * head_dim, dim]
  Tensor attn_k;          // [n_kv_heads * head_dim, dim]
  Tensor attn_v;          // [n_kv_heads * head_dim_v, dim]
  Tensor attn_output;     // [dim, n_heads * head_dim_v]
  Tensor attn_q_norm;     // [head_dim] (Gemma 3)
  Tensor attn_k_norm;     // [head_dim] (Gemma 3)
  Tensor attn_post_norm;  // [dim] (Gemma 3)
  Tensor attn_q_bias;     // [n_heads * head_dim] (Qwen2)
  Tensor attn_k_bias;     // [n_kv_heads * head_dim] (Qwen2)
  Tensor attn_v_bias;     // [n_kv_heads * head_dim_v] (Qwen2)
  Tensor ffn_norm;        // [dim]
  Tensor ffn_gate;        // [ffn_dim, dim]
  Tensor ffn_up;          // [ffn_dim, dim]
  Tensor ffn_down;        // [dim, ffn_dim]
  Tensor ffn_post_norm;   // [dim] (Gemma 3)
};

struct Weights {
  Tensor token_embd;   // [n_vocab, dim]
  Tensor output_norm;  // [dim]
  Tensor output;       // [n_vocab, dim]; shares token_embd's data when tied
  std::vector<LayerWeights> layers;
};

// The slot of a role (layer ignored for global roles).
Tensor& WeightSlot(Weights& w, WeightRole role, int layer);
// The shape a role must have under a config.
std::vector<int64_t> ExpectedShape(const ModelConfig& c, WeightRole role);

// Calls fn(role, layer, tensor) for every role the architecture uses
// (required or optional), global roles with layer -1 first, then per layer.
void ForEachWeight(const ModelConfig& c, Weights& w,
                   const std::function<void(WeightRole role, int layer, Tensor& t)>& fn);

}  // namespace atrium

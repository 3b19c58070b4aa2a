#include "models/weights.h"

namespace atrium {

Tensor& WeightSlot(Weights& w, WeightRole role, int layer) {
  switch (role) {
    case WeightRole::kTokenEmbd: return w.token_embd;
    case WeightRole::kOutputNorm: return w.output_norm;
    case WeightRole::kOutput: return w.output;
    default: break;
  }
  LayerWeights& l = w.layers.at(layer);
  switch (role) {
    case WeightRole::kAttnNorm: return l.attn_norm;
    case WeightRole::kAttnQ: return l.attn_q;
    case WeightRole::kAttnK: return l.attn_k;
    case WeightRole::kAttnV: return l.attn_v;
    case WeightRole::kAttnOutput: return l.attn_output;
    case WeightRole::kAttnQNorm: return l.attn_q_norm;
    case WeightRole::kAttnKNorm: return l.attn_k_norm;
    case WeightRole::kAttnPostNorm: return l.attn_post_norm;
    case WeightRole::kFfnNorm: return l.ffn_norm;
    case WeightRole::kFfnGate: return l.ffn_gate;
    case WeightRole::kFfnUp: return l.ffn_up;
    case WeightRole::kFfnDown: return l.ffn_down;
    case WeightRole::kFfnPostNorm: return l.ffn_post_norm;
    case WeightRole::kAttnQBias: return l.attn_q_bias;
    case WeightRole::kAttnKBias: return l.attn_k_bias;
    case WeightRole::kAttnVBias: return l.attn_v_bias;
    default: break;
  }
  ATRIUM_CHECK(false, "no slot for role %d", static_cast<int>(role));
  __builtin_unreachable();
}

std::vector<int64_t> ExpectedShape(const ModelConfig& c, WeightRole role) {
  switch (role) {
    case WeightRole::kTokenEmbd:
    case WeightRole::kOutput: return {c.n_vocab, c.dim};
    case WeightRole::kOutputNorm:
    case WeightRole::kAttnNorm:
    case WeightRole::kAttnPostNorm:
    case WeightRole::kFfnNorm:
    case WeightRole::kFfnPostNorm: return {c.dim};
    case WeightRole::kAttnQ: return {c.q_dim(), c.dim};
    case WeightRole::kAttnK: return {c.k_dim(), c.dim};
    case WeightRole::kAttnV: return {c.v_dim(), c.dim};
    case WeightRole::kAttnOutput: return {c.dim, c.n_heads * c.head_dim_v};
    case WeightRole::kAttnQNorm:
    case WeightRole::kAttnKNorm: return {c.head_dim};
    case WeightRole::kAttnQBias: return {c.q_dim()};
    case WeightRole::kAttnKBias: return {c.k_dim()};
    case WeightRole::kAttnVBias: return {c.v_dim()};
    case WeightRole::kFfnGate:
    case WeightRole::kFfnUp: return {c.ffn_dim, c.dim};
    case WeightRole::kFfnDown: return {c.dim, c.ffn_dim};
  }
  return {};
}

void ForEachWeight(const ModelConfig& c, Weights& w,
                   const std::function<void(WeightRole, int, Tensor&)>& fn) {
  w.layers.resize(c.n_layers);
  for (int r = 0; r < kNumWeightRoles; ++r) {
    const WeightRole role = static_cast<WeightRole>(r);
    if (NameOf(role).per_layer || NeedOf(c, role) == Need::kAbsent) continue;
    fn(role, -1, WeightSlot(w, role, -1));
  }
  for (int layer = 0; layer < c.n_layers; ++layer) {
    for (int r = 0; r < kNumWeightRoles; ++r) {
      const WeightRole role = static_cast<WeightRole>(r);
      if (!NameOf(role).per_layer || NeedOf(c, role) == Need::kAbsent) continue;
      fn(role, layer, WeightSlot(w, role, layer));
    }
  }
}

}  // namespace atrium

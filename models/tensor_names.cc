#include "models/tensor_names.h"

#include <array>

#include "runtime/status.h"

namespace atrium {
namespace {

constexpr std::array<WeightName, kNumWeightRoles> kNames = {{
    {WeightRole::kTokenEmbd, "token_embd.weight", "model.embed_tokens.weight", false},
    {WeightRole::kOutputNorm, "output_norm.weight", "model.norm.weight", false},
    {WeightRole::kOutput, "output.weight", "lm_head.weight", false},
    {WeightRole::kAttnNorm, "blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", true},
    {WeightRole::kAttnQ, "blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", true},
    {WeightRole::kAttnK, "blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", true},
    {WeightRole::kAttnV, "blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", true},
    {WeightRole::kAttnOutput, "blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", true},
    {WeightRole::kAttnQNorm, "blk.%d.attn_q_norm.weight", "model.layers.%d.self_attn.q_norm.weight", true},
    {WeightRole::kAttnKNorm, "blk.%d.attn_k_norm.weight", "model.layers.%d.self_attn.k_norm.weight", true},
    {WeightRole::kAttnPostNorm, "blk.%d.post_attention_norm.weight",
     "model.layers.%d.post_attention_layernorm.weight", true},
    {WeightRole::kFfnNorm, "blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", true},
    {WeightRole::kFfnGate, "blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", true},
    {WeightRole::kFfnUp, "blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", true},
    {WeightRole::kFfnDown, "blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", true},
    {WeightRole::kFfnPostNorm, "blk.%d.post_ffw_norm.weight", "model.layers.%d.post_feedforward_layernorm.weight",
     true},
    {WeightRole::kAttnQBias, "blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", true},
    {WeightRole::kAttnKBias, "blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", true},
    {WeightRole::kAttnVBias, "blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", true},
}};

std::string Format(const char* fmt, bool per_layer, int layer) {
  return per_layer ? StrFormat(fmt, layer) : std::string(fmt);
}

}  // namespace

const WeightName& NameOf(WeightRole role) {
  const WeightName& n = kNames[static_cast<int>(role)];
  ATRIUM_CHECK(n.role == role, "weight name table out of order");
  return n;
}

std::string GgufName(WeightRole role, int layer) {
  const WeightName& n = NameOf(role);
  return Format(n.gguf, n.per_layer, layer);
}

std::string HfName(WeightRole role, int layer) {
  const WeightName& n = NameOf(role);
  return Format(n.hf, n.per_layer, layer);
}

Need NeedOf(const ModelConfig& c, WeightRole role) {
  switch (role) {
    case WeightRole::kTokenEmbd:
    case WeightRole::kOutputNorm:
    case WeightRole::kAttnNorm:
    case WeightRole::kAttnQ:
    case WeightRole::kAttnK:
    case WeightRole::kAttnV:
    case WeightRole::kAttnOutput:
    case WeightRole::kFfnNorm:
    case WeightRole::kFfnGate:
    case WeightRole::kFfnUp:
    case WeightRole::kFfnDown: return Need::kRequired;
    case WeightRole::kOutput: return Need::kOptional;  // tied to token_embd when absent
    case WeightRole::kAttnQNorm:
    case WeightRole::kAttnKNorm: return c.has_qk_norm ? Need::kRequired : Need::kAbsent;
    case WeightRole::kAttnPostNorm:
    case WeightRole::kFfnPostNorm: return c.has_post_norms ? Need::kRequired : Need::kAbsent;
    case WeightRole::kAttnQBias:
    case WeightRole::kAttnKBias:
    case WeightRole::kAttnVBias: return c.has_qkv_bias ? Need::kRequired : Need::kAbsent;
  }
  return Need::kAbsent;
}

}  // namespace atrium

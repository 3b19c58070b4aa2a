// The llama family (Llama, Mistral, SmolLM2; Qwen2 adds q/k/v biases and
// NeoX rope): pre-norm blocks of grouped-query attention and a SiLU-gated FFN.
#include "models/model.h"

namespace atrium {
namespace {

void AddBias(ops::Context& ctx, Tensor& x, const Tensor& bias) {
  for (int64_t r = 0; r < x.rows(); ++r) {
    Tensor row = Tensor::Wrap(DType::kF32, {x.cols()}, x.mutable_data<float>() + r * x.cols());
    ops::Add(ctx, row, row, bias);
  }
}

}  // namespace

void LlamaForward(const ForwardArgs& args) {
  const ModelConfig& c = args.c;
  const Weights& w = args.w;
  ops::Context& ctx = args.ctx;
  const int64_t n = args.n_tokens;
  const int32_t* pos = args.a.pos.data();
  // Views of [n, dim], [n, q_dim], [n, k_dim], [n, v_dim], [n, n_heads * head_dim_v], [n, ffn_dim] rows.
  auto [x, h, q, k, v, attn, o, gate, up] = args.a.First(n);

  ops::Embed(ctx, x, w.token_embd, args.a.tokens.data(), n);

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const ops::AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, c.attn_softcap,
                                    c.layer_is_swa[l] ? c.sliding_window : 0};

    ops::RmsNorm(ctx, h, x, &lw.attn_norm, c.rms_eps);
    ops::MatMulShared(ctx, h, {{&q, &lw.attn_q}, {&k, &lw.attn_k}, {&v, &lw.attn_v}});
    if (c.has_qkv_bias) {
      AddBias(ctx, q, lw.attn_q_bias);
      AddBias(ctx, k, lw.attn_k_bias);
      AddBias(ctx, v, lw.attn_v_bias);
    }
    ops::Rope(ctx, q, c.n_heads, c.head_dim, pos, c.rope_dim, c.rope_base, c.rope_scale, c.rope_layout);
    ops::Rope(ctx, k, c.n_kv_heads, c.head_dim, pos, c.rope_dim, c.rope_base, c.rope_scale, c.rope_layout);
    CacheAndAttend(args, l, k, v, q, attn, shape);
    ops::MatMul(ctx, o, attn, lw.attn_output);
    ops::Add(ctx, x, x, o);

    ops::RmsNorm(ctx, h, x, &lw.ffn_norm, c.rms_eps);
    ops::MatMulShared(ctx, h, {{&gate, &lw.ffn_gate}, {&up, &lw.ffn_up}});
    ops::SiluMul(ctx, gate, gate, up);
    ops::MatMul(ctx, o, gate, lw.ffn_down);
    ops::Add(ctx, x, x, o);
  }

  OutputHead(args, x, h);
}

}  // namespace atrium

// The llama family (Llama, Mistral, SmolLM2; Qwen2 adds q/k/v biases and
// NeoX rope): pre-norm blocks of grouped-query attention and a SiLU-gated FFN.
#include "models/model.h"

namespace atrium {

void LlamaForward(const ForwardArgs& args) {
  const ModelConfig& c = args.c;
  const Weights& w = args.w;
  ops::Context& ctx = args.ctx;
  const int64_t n = args.n_tokens;
  // Views of [n, dim], [n, q_dim], [n, k_dim], [n, v_dim], [n, n_heads * head_dim_v], [n, ffn_dim] rows.
  auto [x, h, q, k, v, attn, o, gate, up] = args.a.First(n);

  ops::Embed(ctx, x, w.token_embd, args.a.tokens.data(), n);

  QkvPrep prep;
  prep.rope_base = c.rope_base;
  prep.rope_scale = c.rope_scale;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const ops::AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, c.attn_softcap,
                                    c.layer_is_swa[l] ? c.sliding_window : 0};
    if (c.has_qkv_bias) {
      prep.q_bias = &lw.attn_q_bias;
      prep.k_bias = &lw.attn_k_bias;
      prep.v_bias = &lw.attn_v_bias;
    }

    // x += the previous layer's FFN output (o), and its norm, as the q/k/v
    // matmul quantizes each row.
    ops::MatMulShared(ctx, h, {{&q, &lw.attn_q}, {&k, &lw.attn_k}, {&v, &lw.attn_v}},
                      AddAndNorm(ctx, x, l > 0 ? &o : nullptr, nullptr, h, lw.attn_norm, c.rms_eps));
    CacheAndAttend(args, l, q, k, v, attn, shape, prep);
    ops::MatMul(ctx, o, attn, lw.attn_output);

    ops::MatMulShared(ctx, h, {{&gate, &lw.ffn_gate}, {&up, &lw.ffn_up}},
                      AddAndNorm(ctx, x, &o, nullptr, h, lw.ffn_norm, c.rms_eps));
    // gate = SiLU(gate) * up, as the down matmul quantizes each row.
    ops::MatMulShared(ctx, gate, {{&o, &lw.ffn_down}}, GatedAct(ctx, gate, up, ops::SiluMulRegion));
  }
  ops::Add(ctx, x, x, o);

  OutputHead(args, x, h);
}

}  // namespace atrium

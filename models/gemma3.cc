// Gemma 3: embeddings scaled by sqrt(dim), RMSNorm of q and k per head,
// queries scaled by 1/sqrt(head_dim), norms after attention and after the
// GELU-gated FFN, sliding-window layers with their own rope base, optional
// final logit soft-capping; the output matrix is the embedding table.
#include "models/model.h"

namespace atrium {

void Gemma3Forward(const ForwardArgs& args) {
  const ModelConfig& c = args.c;
  const Weights& w = args.w;
  ops::Context& ctx = args.ctx;
  const int64_t n = args.n_tokens;
  const int32_t* pos = args.a.pos.data();
  // Views of [n, dim], [n, q_dim], [n, k_dim], [n, v_dim], [n, n_heads * head_dim_v], [n, ffn_dim] rows.
  auto [x, h, q, k, v, attn, o, gate, up] = args.a.First(n);

  ops::Embed(ctx, x, w.token_embd, args.a.tokens.data(), n);
  ops::Scale(ctx, x, c.embed_scale);

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const bool swa = c.layer_is_swa[l];
    const float rope_base = swa ? c.rope_base_swa : c.rope_base;
    const float rope_scale = swa ? c.rope_scale_swa : c.rope_scale;

    ops::RmsNorm(ctx, h, x, &lw.attn_norm, c.rms_eps);
    ops::MatMulShared(ctx, h, {{&q, &lw.attn_q}, {&k, &lw.attn_k}, {&v, &lw.attn_v}});
    // Per-head norms: viewed as [n * heads, head_dim] rows.
    ops::RmsNorm(ctx, q, q, &lw.attn_q_norm, c.rms_eps);
    ops::RmsNorm(ctx, k, k, &lw.attn_k_norm, c.rms_eps);
    ops::Rope(ctx, q, c.n_heads, c.head_dim, pos, c.rope_dim, rope_base, rope_scale, c.rope_layout);
    ops::Rope(ctx, k, c.n_kv_heads, c.head_dim, pos, c.rope_dim, rope_base, rope_scale, c.rope_layout);
    ops::Scale(ctx, q, c.attn_scale);
    const ops::AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f, c.attn_softcap,
                                    swa ? c.sliding_window : 0};
    CacheAndAttend(args, l, k, v, q, attn, shape);
    ops::MatMul(ctx, o, attn, lw.attn_output);
    ops::RmsNorm(ctx, o, o, &lw.attn_post_norm, c.rms_eps);
    ops::Add(ctx, x, x, o);

    ops::RmsNorm(ctx, h, x, &lw.ffn_norm, c.rms_eps);
    ops::MatMulShared(ctx, h, {{&gate, &lw.ffn_gate}, {&up, &lw.ffn_up}});
    ops::GeluTanhMul(ctx, gate, gate, up);
    ops::MatMul(ctx, o, gate, lw.ffn_down);
    ops::RmsNorm(ctx, o, o, &lw.ffn_post_norm, c.rms_eps);
    ops::Add(ctx, x, x, o);
  }

  OutputHead(args, x, h);
}

}  // namespace atrium

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
  // Views of [n, dim], [n, q_dim], [n, k_dim], [n, v_dim], [n, n_heads * head_dim_v], [n, ffn_dim] rows.
  auto [x, h, q, k, v, attn, o, gate, up] = args.a.First(n);

  ops::Embed(ctx, x, w.token_embd, args.a.tokens.data(), n);
  ops::Scale(ctx, x, c.embed_scale);

  const LayerWeights* prev = nullptr;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const bool swa = c.layer_is_swa[l];
    QkvPrep prep;
    prep.q_norm = &lw.attn_q_norm;  // per head: the norms are head_dim long
    prep.k_norm = &lw.attn_k_norm;
    prep.rope_base = swa ? c.rope_base_swa : c.rope_base;
    prep.rope_scale = swa ? c.rope_scale_swa : c.rope_scale;
    prep.q_scale = c.attn_scale;

    // x += the previous layer's post-normed FFN output, then this block's norm.
    ops::MatMulShared(ctx, h, {{&q, &lw.attn_q}, {&k, &lw.attn_k}, {&v, &lw.attn_v}},
                      AddAndNorm(ctx, x, prev ? &o : nullptr, prev ? &prev->ffn_post_norm : nullptr, h,
                                 lw.attn_norm, c.rms_eps));
    const ops::AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f, c.attn_softcap,
                                    swa ? c.sliding_window : 0};
    CacheAndAttend(args, l, q, k, v, attn, shape, prep);
    ops::MatMul(ctx, o, attn, lw.attn_output);

    ops::MatMulShared(ctx, h, {{&gate, &lw.ffn_gate}, {&up, &lw.ffn_up}},
                      AddAndNorm(ctx, x, &o, &lw.attn_post_norm, h, lw.ffn_norm, c.rms_eps));
    // gate = GELU(gate) * up, as the down matmul quantizes each row.
    ops::MatMulShared(ctx, gate, {{&o, &lw.ffn_down}}, GatedAct(ctx, gate, up, ops::GeluTanhMulRegion));
    prev = &lw;
  }
  ops::RmsNorm(ctx, o, o, &prev->ffn_post_norm, c.rms_eps);
  ops::Add(ctx, x, x, o);

  OutputHead(args, x, h);
}

}  // namespace atrium

// Model loading and Forward on tiny random models: the architectures'
// wiring against an independent double-precision reference written here,
// KV-cache consistency (one token at a time == whole prompt == chunks), and
// clear errors for files that do not fit the architecture.
#include "models/model.h"

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "models/gguf.h"
#include "tests/models/tiny_model.h"

namespace atrium {
namespace {

using testing::TinySpec;

std::unique_ptr<Model> LoadTiny(const TinySpec& spec, std::vector<uint8_t>* image) {
  *image = testing::TinyModelWriter(spec).Serialize();
  auto file = gguf::GgufFile::FromBuffer("tiny.gguf", image->data(), image->size());
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  auto model = Model::FromGguf(std::shared_ptr<const gguf::GgufFile>(std::move(*file)));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return std::move(*model);
}

Status LoadStatus(const gguf::GgufWriter& w) {
  const std::vector<uint8_t> image = w.Serialize();
  auto file = gguf::GgufFile::FromBuffer("bad.gguf", image.data(), image.size());
  if (!file.ok()) return file.status();
  return Model::FromGguf(std::shared_ptr<const gguf::GgufFile>(std::move(*file))).status();
}

// ---- An independent reference: plain loops in double over the f32 weights.
struct Reference {
  const gguf::GgufFile& f;
  const ModelConfig& c;
  using Vec = std::vector<double>;

  Vec Get(const std::string& name) const {
    const gguf::TensorInfo* t = f.FindTensor(name);
    EXPECT_NE(t, nullptr) << name;
    const float* p = reinterpret_cast<const float*>(t->data);
    return Vec(p, p + t->n_elements);
  }
  // y[n_out] = W[n_out][n_in] x
  static Vec MatVec(const Vec& w, const Vec& x) {
    const size_t n_in = x.size(), n_out = w.size() / n_in;
    Vec y(n_out, 0.0);
    for (size_t r = 0; r < n_out; ++r)
      for (size_t i = 0; i < n_in; ++i) y[r] += w[r * n_in + i] * x[i];
    return y;
  }
  Vec Norm(const Vec& x, const Vec& w, size_t offset = 0, size_t len = 0) const {
    len = len ? len : x.size();
    Vec y = x;
    double ss = 0;
    for (size_t i = 0; i < len; ++i) ss += x[offset + i] * x[offset + i];
    const double s = 1.0 / std::sqrt(ss / len + c.rms_eps);
    for (size_t i = 0; i < len; ++i) y[offset + i] = x[offset + i] * s * w[i];
    return y;
  }
  void Rope(Vec& x, int64_t n_heads, int pos, double base) const {
    const int64_t hd = c.head_dim, rot = c.rope_dim;
    for (int64_t h = 0; h < n_heads; ++h) {
      for (int64_t i = 0; i < rot / 2; ++i) {
        const double theta = pos * std::pow(base, -2.0 * i / rot);
        const bool neox = c.rope_layout == kernels::RopeLayout::kNeox;
        const int64_t a = h * hd + (neox ? i : 2 * i), b = h * hd + (neox ? i + rot / 2 : 2 * i + 1);
        const double x0 = x[a], x1 = x[b];
        x[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
        x[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
      }
    }
  }
  // Logits of every position.
  std::vector<Vec> Forward(const std::vector<int32_t>& tokens) const {
    const bool gemma = c.arch == Arch::kGemma3;
    const size_t n = tokens.size();
    const Vec emb = Get("token_embd.weight");
    std::vector<Vec> x(n);
    for (size_t t = 0; t < n; ++t) {
      x[t] = Vec(emb.begin() + tokens[t] * c.dim, emb.begin() + (tokens[t] + 1) * c.dim);
      for (double& v : x[t]) v *= c.embed_scale;
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      const bool swa = c.layer_is_swa[l];
      const double base = swa ? c.rope_base_swa : c.rope_base;
      std::vector<Vec> q(n), k(n), v(n);
      for (size_t t = 0; t < n; ++t) {
        const Vec h = Norm(x[t], Get(b + "attn_norm.weight"));
        q[t] = MatVec(Get(b + "attn_q.weight"), h);
        k[t] = MatVec(Get(b + "attn_k.weight"), h);
        v[t] = MatVec(Get(b + "attn_v.weight"), h);
        if (c.has_qkv_bias) {
          const Vec qb = Get(b + "attn_q.bias"), kb = Get(b + "attn_k.bias"), vb = Get(b + "attn_v.bias");
          for (size_t i = 0; i < qb.size(); ++i) q[t][i] += qb[i];
          for (size_t i = 0; i < kb.size(); ++i) k[t][i] += kb[i];
          for (size_t i = 0; i < vb.size(); ++i) v[t][i] += vb[i];
        }
        if (gemma) {
          for (int64_t hh = 0; hh < c.n_heads; ++hh) q[t] = Norm(q[t], Get(b + "attn_q_norm.weight"), hh * c.head_dim, c.head_dim);
          for (int64_t hh = 0; hh < c.n_kv_heads; ++hh) k[t] = Norm(k[t], Get(b + "attn_k_norm.weight"), hh * c.head_dim, c.head_dim);
        }
        Rope(q[t], c.n_heads, static_cast<int>(t), base);
        Rope(k[t], c.n_kv_heads, static_cast<int>(t), base);
      }
      const int64_t window = swa ? c.sliding_window : 0;
      for (size_t t = 0; t < n; ++t) {
        Vec attn(c.n_heads * c.head_dim, 0.0);
        for (int64_t h = 0; h < c.n_heads; ++h) {
          const int64_t kvh = h / (c.n_heads / c.n_kv_heads);
          std::vector<double> s;
          std::vector<size_t> keys;
          for (size_t j = 0; j <= t; ++j) {
            if (window > 0 && static_cast<int64_t>(t - j) >= window) continue;
            double dot = 0;
            for (int64_t d = 0; d < c.head_dim; ++d) dot += q[t][h * c.head_dim + d] * k[j][kvh * c.head_dim + d];
            s.push_back(dot * c.attn_scale);
            keys.push_back(j);
          }
          double mx = -1e300, sum = 0;
          for (double e : s) mx = std::max(mx, e);
          for (double& e : s) sum += (e = std::exp(e - mx));
          for (size_t i = 0; i < keys.size(); ++i)
            for (int64_t d = 0; d < c.head_dim; ++d) attn[h * c.head_dim + d] += s[i] / sum * v[keys[i]][kvh * c.head_dim + d];
        }
        Vec o = MatVec(Get(b + "attn_output.weight"), attn);
        if (gemma) o = Norm(o, Get(b + "post_attention_norm.weight"));
        for (int64_t i = 0; i < c.dim; ++i) x[t][i] += o[i];
        const Vec h = Norm(x[t], Get(b + "ffn_norm.weight"));
        Vec g = MatVec(Get(b + "ffn_gate.weight"), h);
        const Vec u = MatVec(Get(b + "ffn_up.weight"), h);
        for (size_t i = 0; i < g.size(); ++i) {
          const double a = g[i];
          const double act = gemma ? 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)))
                                   : a / (1 + std::exp(-a));
          g[i] = act * u[i];
        }
        Vec d = MatVec(Get(b + "ffn_down.weight"), g);
        if (gemma) d = Norm(d, Get(b + "post_ffw_norm.weight"));
        for (int64_t i = 0; i < c.dim; ++i) x[t][i] += d[i];
      }
    }
    std::vector<Vec> logits(n);
    const Vec out = f.FindTensor("output.weight") ? Get("output.weight") : emb;
    for (size_t t = 0; t < n; ++t) logits[t] = MatVec(out, Norm(x[t], Get("output_norm.weight")));
    return logits;
  }
};

std::vector<int32_t> Tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

void ExpectMatchesReference(const TinySpec& spec, int n_tokens) {
  std::vector<uint8_t> image;
  std::unique_ptr<Model> m = LoadTiny(spec, &image);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> tokens = Tokens(n_tokens, spec.n_vocab, 7);
  ops::Context ctx(2);
  auto kv = m->NewKvCache(n_tokens);
  Tensor logits = Tensor::Empty(DType::kF32, {n_tokens, spec.n_vocab});
  ASSERT_TRUE(m->Forward(ctx, tokens.data(), n_tokens, *kv, logits, true).ok());
  const Reference ref{m->file(), m->config()};
  const std::vector<std::vector<double>> want = ref.Forward(tokens);
  double max_diff = 0;
  for (int t = 0; t < n_tokens; ++t)
    for (int i = 0; i < spec.n_vocab; ++i)
      max_diff = std::max(max_diff, std::fabs(logits.data<float>()[t * spec.n_vocab + i] - want[t][i]));
  EXPECT_LT(max_diff, 2e-3) << spec.arch;
}

TEST(ModelTest, LlamaMatchesIndependentReference) { ExpectMatchesReference(TinySpec{}, 12); }

TEST(ModelTest, LlamaUntiedOutputMatchesReference) {
  TinySpec s;
  s.tied = false;
  ExpectMatchesReference(s, 5);
}

TEST(ModelTest, Qwen2BiasesAndNeoxRopeMatchReference) {
  TinySpec s;
  s.arch = "qwen2";
  ExpectMatchesReference(s, 9);
}

TEST(ModelTest, Gemma3MatchesIndependentReference) {
  TinySpec s;
  s.arch = "gemma3";
  s.n_kv_heads = 1;
  ExpectMatchesReference(s, 12);
}

TEST(ModelTest, Gemma3SlidingWindowMatchesReference) {
  TinySpec s;
  s.arch = "gemma3";
  s.sliding_window = 3;
  s.swa_pattern = 2;  // layer 0 slides, layer 1 is global
  ExpectMatchesReference(s, 12);
}

// One token at a time, the whole prompt, and chunks give the same logits.
void ExpectIncrementalEqualsBatch(const TinySpec& spec) {
  std::vector<uint8_t> image;
  std::unique_ptr<Model> m = LoadTiny(spec, &image);
  ASSERT_NE(m, nullptr);
  const int n = 10;
  const std::vector<int32_t> tokens = Tokens(n, spec.n_vocab, 3);
  ops::Context ctx(2);
  auto kv_all = m->NewKvCache(n);
  Tensor all = Tensor::Empty(DType::kF32, {n, spec.n_vocab});
  ASSERT_TRUE(m->Forward(ctx, tokens.data(), n, *kv_all, all, true).ok());
  auto kv_one = m->NewKvCache(n);
  Tensor one = Tensor::Empty(DType::kF32, {1, spec.n_vocab});
  for (int t = 0; t < n; ++t) {
    ASSERT_TRUE(m->Forward(ctx, &tokens[t], 1, *kv_one, one, false).ok());
    for (int i = 0; i < spec.n_vocab; ++i)
      ASSERT_NEAR(one.data<float>()[i], all.data<float>()[t * spec.n_vocab + i], 1e-3) << "token " << t;
  }
  auto kv_chunks = m->NewKvCache(n);
  ASSERT_TRUE(m->Forward(ctx, tokens.data(), 6, *kv_chunks, one, false).ok());
  ASSERT_TRUE(m->Forward(ctx, tokens.data() + 6, 4, *kv_chunks, one, false).ok());
  for (int i = 0; i < spec.n_vocab; ++i) ASSERT_NEAR(one.data<float>()[i], all.data<float>()[(n - 1) * spec.n_vocab + i], 1e-3);
}

TEST(ModelTest, LlamaIncrementalEqualsBatchQuantized) {
  TinySpec s;
  s.dim = 256;
  s.ffn_dim = 512;
  s.head_dim = 64;
  s.matrix_type = DType::kQ4_K;
  ExpectIncrementalEqualsBatch(s);
  s.matrix_type = DType::kQ8_0;
  ExpectIncrementalEqualsBatch(s);
}

TEST(ModelTest, Gemma3IncrementalEqualsBatch) {
  TinySpec s;
  s.arch = "gemma3";
  s.sliding_window = 4;
  ExpectIncrementalEqualsBatch(s);
}

// A ragged batch on a paged pool: sequences at different positions, some
// scoring every token, some decoding one, give the logits each gets alone on
// its own contiguous cache.
void ExpectRaggedBatchEqualsAlone(const TinySpec& spec) {
  std::vector<uint8_t> image;
  std::unique_ptr<Model> m = LoadTiny(spec, &image);
  ASSERT_NE(m, nullptr);
  ops::Context ctx(2);
  struct Case {
    int history, n_new;
    bool all_logits;
  };
  const std::vector<Case> cases = {{0, 5, true}, {3, 1, false}, {7, 1, true}, {12, 3, false}, {9, 9, true}};
  StatusOr<std::unique_ptr<KvPool>> pool = m->NewKvPool(4, 64 * KvPool::BytesPerBlock(spec.n_layers, m->config().k_dim(), m->config().v_dim(), 4));
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  std::vector<std::vector<int32_t>> tokens;
  std::vector<BlockTable> tables(cases.size());
  std::vector<Tensor> alone;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    tokens.push_back(Tokens(c.history + c.n_new, spec.n_vocab, 100 + static_cast<uint32_t>(i)));
    // Alone, on a contiguous cache.
    auto kv = m->NewKvCache(c.history + c.n_new);
    Tensor scratch = Tensor::Empty(DType::kF32, {1, spec.n_vocab});
    if (c.history > 0) {
      ASSERT_TRUE(m->Forward(ctx, tokens[i].data(), c.history, *kv, scratch, false).ok());
    }
    alone.push_back(Tensor::Empty(DType::kF32, {c.all_logits ? c.n_new : 1, spec.n_vocab}));
    ASSERT_TRUE(m->Forward(ctx, tokens[i].data() + c.history, c.n_new, *kv, alone.back(), c.all_logits).ok());
    // The history into the pool, one sequence at a time.
    ASSERT_TRUE((*pool)->Reserve(tables[i], c.history + c.n_new).ok());
    if (c.history > 0) {
      const ForwardSeq seq{tokens[i].data(), c.history, &tables[i], false};
      ASSERT_TRUE(m->Forward(ctx, std::span<const ForwardSeq>(&seq, 1), **pool, scratch).ok());
    }
  }
  std::vector<ForwardSeq> batch;
  for (size_t i = 0; i < cases.size(); ++i) {
    batch.push_back(ForwardSeq{tokens[i].data() + cases[i].history, cases[i].n_new, &tables[i], cases[i].all_logits});
  }
  Tensor logits = Tensor::Empty(DType::kF32, {Model::LogitRows(batch), spec.n_vocab});
  ASSERT_TRUE(m->Forward(ctx, batch, **pool, logits).ok());
  // Float weights: only summation order differs. Quantized weights quantize
  // their activations too, and a last-bit difference in an activation can
  // move it across a rounding edge (one quantum, 1/127 of its block's
  // maximum): 1% of the logit range allows that, while a wrong position or
  // cache row moves logits by whole units.
  int64_t row = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(tables[i].n_tokens, cases[i].history + cases[i].n_new);
    for (int64_t r = 0; r < alone[i].rows(); ++r, ++row) {
      const float* want = alone[i].data<float>() + r * spec.n_vocab;
      const auto [lo, hi] = std::minmax_element(want, want + spec.n_vocab);
      const double tol = spec.matrix_type == DType::kF32 ? 1e-3 : 0.01 * (*hi - *lo);
      for (int v = 0; v < spec.n_vocab; ++v) {
        ASSERT_NEAR(logits.data<float>()[row * spec.n_vocab + v], want[v], tol) << "sequence " << i << " row " << r;
      }
    }
  }
  for (BlockTable& t : tables) (*pool)->Release(t);
  EXPECT_EQ((*pool)->free_blocks(), (*pool)->total_blocks());
}

TEST(ModelTest, LlamaRaggedBatchOnPagedCacheEqualsAlone) {
  TinySpec s;
  s.dim = 256;
  s.ffn_dim = 512;
  s.head_dim = 64;
  ExpectRaggedBatchEqualsAlone(s);
  s.matrix_type = DType::kQ8_0;
  ExpectRaggedBatchEqualsAlone(s);
  s.matrix_type = DType::kQ4_K;
  ExpectRaggedBatchEqualsAlone(s);
}

TEST(ModelTest, Gemma3RaggedBatchOnPagedCacheEqualsAlone) {
  TinySpec s;
  s.arch = "gemma3";
  s.sliding_window = 4;
  s.swa_pattern = 2;
  ExpectRaggedBatchEqualsAlone(s);
}

TEST(ModelTest, BatchWithoutReservedBlocksIsAnError) {
  std::vector<uint8_t> image;
  std::unique_ptr<Model> m = LoadTiny(TinySpec{}, &image);
  ops::Context ctx(1);
  StatusOr<std::unique_ptr<KvPool>> pool = m->NewKvPool(4, 1 << 20);
  ASSERT_TRUE(pool.ok());
  BlockTable table;
  ASSERT_TRUE((*pool)->Reserve(table, 4).ok());
  const int32_t five[] = {1, 2, 3, 4, 5};
  const ForwardSeq seq{five, 5, &table, false};
  Tensor logits = Tensor::Empty(DType::kF32, {1, 96});
  const Status s = m->Forward(ctx, std::span<const ForwardSeq>(&seq, 1), **pool, logits);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(table.n_tokens, 0);
  (*pool)->Release(table);
}

TEST(ModelTest, ConfigComesFromMetadata) {
  TinySpec s;
  s.arch = "gemma3";
  s.sliding_window = 4;
  s.swa_pattern = 2;
  std::vector<uint8_t> image;
  std::unique_ptr<Model> m = LoadTiny(s, &image);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.arch, Arch::kGemma3);
  EXPECT_EQ(c.n_vocab, s.n_vocab);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_FLOAT_EQ(c.embed_scale, 8.0f);
  EXPECT_EQ(c.layer_is_swa, (std::vector<bool>{true, false}));
  EXPECT_EQ(c.rope_layout, kernels::RopeLayout::kNeox);
  EXPECT_EQ(m->weights().output.raw(), m->weights().token_embd.raw());  // tied
}

TEST(ModelTest, MissingTensorIsNamed) {
  const Status s = LoadStatus(testing::TinyModelWriter(TinySpec{}, {"blk.1.ffn_up.weight"}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("blk.1.ffn_up.weight"), std::string::npos) << s.message();
}

TEST(ModelTest, WrongShapeIsNamed) {
  TinySpec s;
  gguf::GgufWriter w = testing::TinyModelWriter(s);
  w.SetUint32("llama.feed_forward_length", 128);  // tensors were written with 96
  const Status st = LoadStatus(w);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("shape"), std::string::npos) << st.message();
}

TEST(ModelTest, UnknownArchitectureIsUnimplemented) {
  gguf::GgufWriter w = testing::TinyModelWriter(TinySpec{});
  w.SetString("general.architecture", "mamba");
  const Status s = LoadStatus(w);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("mamba"), std::string::npos);
}

TEST(ModelTest, MissingMetadataIsNamed) {
  gguf::GgufWriter w = testing::TinyModelWriter(TinySpec{});
  w.SetString("llama.block_count", "two");
  const Status s = LoadStatus(w);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("block_count"), std::string::npos) << s.message();
}

TEST(ModelTest, BadTokensAndFullContextAreErrors) {
  std::vector<uint8_t> image;
  std::unique_ptr<Model> m = LoadTiny(TinySpec{}, &image);
  ops::Context ctx(1);
  auto kv = m->NewKvCache(4);
  Tensor logits = Tensor::Empty(DType::kF32, {1, 96});
  const int32_t bad[] = {5, 96};
  EXPECT_EQ(m->Forward(ctx, bad, 2, *kv, logits, false).code(), StatusCode::kInvalidArgument);
  const int32_t neg = -1;
  EXPECT_EQ(m->Forward(ctx, &neg, 1, *kv, logits, false).code(), StatusCode::kInvalidArgument);
  const int32_t five[] = {1, 2, 3, 4, 5};
  EXPECT_EQ(m->Forward(ctx, five, 5, *kv, logits, false).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(kv->size(), 0);
  EXPECT_TRUE(m->Forward(ctx, five, 4, *kv, logits, false).ok());
}

}  // namespace
}  // namespace atrium

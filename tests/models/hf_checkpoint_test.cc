// A HF checkpoint (config.json + safetensors) runs the same model as the GGUF
// that llama.cpp's converter would make of it: the converter permutes q and k
// rows for interleaved RoPE, the HF loader keeps them and uses NeoX RoPE.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "models/gguf_writer.h"
#include "models/model.h"
#include "models/safetensors_writer.h"

namespace atrium {
namespace {

namespace fs = std::filesystem;

struct Shape {
  int dim = 64, n_layers = 2, n_heads = 4, n_kv_heads = 2, head_dim = 16, ffn = 96, vocab = 80;
};

// convert_hf_to_gguf.py's permute(): rows (head, half, j) -> (head, j, half).
std::vector<float> PermuteForGguf(const std::vector<float>& w, int n_heads, int head_dim, int n_in) {
  std::vector<float> out(w.size());
  for (int h = 0; h < n_heads; ++h)
    for (int half = 0; half < 2; ++half)
      for (int j = 0; j < head_dim / 2; ++j) {
        const int from = h * head_dim + half * (head_dim / 2) + j;
        const int to = h * head_dim + j * 2 + half;
        std::copy(w.begin() + from * n_in, w.begin() + (from + 1) * n_in, out.begin() + to * n_in);
      }
  return out;
}

class HfModelTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/hf_checkpoint_test_" + std::to_string(static_cast<int>(GetParam()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_P(HfModelTest, SameLogitsAsConvertedGguf) {
  const DType type = GetParam();
  const Shape s;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  auto rand = [&](size_t n, float scale, float offset = 0) {
    std::vector<float> v(n);
    for (float& x : v) x = offset + scale * nd(rng);
    return v;
  };
  safetensors::SafetensorsWriter st;
  gguf::GgufWriter gg;
  gg.SetString("general.architecture", "llama");
  gg.SetUint32("llama.embedding_length", s.dim);
  gg.SetUint32("llama.block_count", s.n_layers);
  gg.SetUint32("llama.feed_forward_length", s.ffn);
  gg.SetUint32("llama.attention.head_count", s.n_heads);
  gg.SetUint32("llama.attention.head_count_kv", s.n_kv_heads);
  gg.SetUint32("llama.context_length", 64);
  gg.SetFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gg.SetFloat32("llama.rope.freq_base", 10000.0f);
  // Both files get the same values; GGUF dims are the reverse of HF shapes.
  auto add = [&](const std::string& hf, const std::string& gguf, std::vector<int64_t> hf_shape, float scale,
                 float offset = 0, int permute_heads = 0) {
    size_t n = 1;
    for (int64_t d : hf_shape) n *= d;
    const std::vector<float> v = rand(n, scale, offset);
    const std::vector<int64_t> dims(hf_shape.rbegin(), hf_shape.rend());
    const DType t = hf_shape.size() == 1 ? DType::kF32 : type;
    st.AddF32(hf, t, dims, v);
    gg.AddTensorF32(gguf, t, dims, permute_heads ? PermuteForGguf(v, permute_heads, s.head_dim, s.dim) : v);
  };
  const float ws = 1.0f / std::sqrt(float(s.dim));
  add("model.embed_tokens.weight", "token_embd.weight", {s.vocab, s.dim}, 1.0f);
  add("model.norm.weight", "output_norm.weight", {s.dim}, 0.1f, 1.0f);
  add("lm_head.weight", "output.weight", {s.vocab, s.dim}, ws);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
    add(h + "input_layernorm.weight", g + "attn_norm.weight", {s.dim}, 0.1f, 1.0f);
    add(h + "self_attn.q_proj.weight", g + "attn_q.weight", {s.n_heads * s.head_dim, s.dim}, ws, 0, s.n_heads);
    add(h + "self_attn.k_proj.weight", g + "attn_k.weight", {s.n_kv_heads * s.head_dim, s.dim}, ws, 0, s.n_kv_heads);
    add(h + "self_attn.v_proj.weight", g + "attn_v.weight", {s.n_kv_heads * s.head_dim, s.dim}, ws);
    add(h + "self_attn.o_proj.weight", g + "attn_output.weight", {s.dim, s.n_heads * s.head_dim}, ws);
    add(h + "post_attention_layernorm.weight", g + "ffn_norm.weight", {s.dim}, 0.1f, 1.0f);
    add(h + "mlp.gate_proj.weight", g + "ffn_gate.weight", {s.ffn, s.dim}, ws);
    add(h + "mlp.up_proj.weight", g + "ffn_up.weight", {s.ffn, s.dim}, ws);
    add(h + "mlp.down_proj.weight", g + "ffn_down.weight", {s.dim, s.ffn}, 1.0f / std::sqrt(float(s.ffn)));
  }
  ASSERT_TRUE(st.WriteFile(dir_ + "/model.safetensors").ok());
  std::ofstream(dir_ + "/config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 64,
    "vocab_size": 80, "tie_word_embeddings": false, "hidden_act": "silu", "torch_dtype": "float32"})";
  const std::string gguf_path = dir_ + "/converted.gguf";
  ASSERT_TRUE(gg.WriteFile(gguf_path).ok());

  auto hf = Model::Load(dir_);
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  auto gm = Model::Load(gguf_path);
  ASSERT_TRUE(gm.ok()) << gm.status().ToString();
  EXPECT_EQ((*hf)->config().rope_layout, kernels::RopeLayout::kNeox);
  EXPECT_EQ((*gm)->config().rope_layout, kernels::RopeLayout::kNormal);
  EXPECT_FALSE((*hf)->has_gguf());

  const std::vector<int32_t> tokens = {3, 17, 42, 5, 79, 0, 11, 23};
  ops::Context ctx(2);
  auto logits = [&](Model& m) {
    auto kv = m.NewKvCache(16);
    Tensor out = Tensor::Empty(DType::kF32, {8, s.vocab});
    EXPECT_TRUE(m.Forward(ctx, tokens.data(), 8, *kv, out, true).ok());
    return std::vector<float>(out.data<float>(), out.data<float>() + out.numel());
  };
  const std::vector<float> a = logits(**hf), b = logits(**gm);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
}

INSTANTIATE_TEST_SUITE_P(Types, HfModelTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16));

TEST(HfModelErrorsTest, MissingFilesAndTensorsAreNamed) {
  const std::string dir = ::testing::TempDir() + "/hf_model_errors";
  fs::create_directories(dir);
  EXPECT_EQ(Model::Load(dir).status().code(), StatusCode::kNotFound);  // no config.json
  std::ofstream(dir + "/config.json") << R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 80,
    "rms_norm_eps": 1e-5})";
  Status s = Model::Load(dir).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("model.safetensors"), std::string::npos) << s.message();
  safetensors::SafetensorsWriter st;
  st.AddF32("model.embed_tokens.weight", DType::kF32, {64, 80}, std::vector<float>(64 * 80, 0.5f));
  ASSERT_TRUE(st.WriteFile(dir + "/model.safetensors").ok());
  s = Model::Load(dir).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model.norm.weight"), std::string::npos) << s.message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace atrium

// Reads the real model files (label `model`). Expected figures are from the
// Python `gguf` package's reader on the same files.
#include <gtest/gtest.h>

#include "models/gguf.h"
#include "tests/test_util.h"

namespace atrium::gguf {
namespace {

TEST(GgufModelTest, SmolLm2) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.tensors().size(), 272u);
  EXPECT_EQ(g.keys().size(), 33u);
  EXPECT_EQ(g.GetString("general.architecture").value(), "llama");
  EXPECT_EQ(g.GetInt("llama.block_count").value(), 30);
  EXPECT_EQ(g.GetInt("llama.attention.head_count_kv").value(), 3);
  EXPECT_NEAR(g.GetFloat("llama.rope.freq_base").value(), 100000.0, 1e-3);
  EXPECT_FALSE(g.GetBool("tokenizer.ggml.add_bos_token").value());
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.tokens").value().size(), 49152u);
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.merges").value().size(), 48900u);
  EXPECT_EQ(g.GetIntArray("tokenizer.ggml.token_type").value().size(), 49152u);
  EXPECT_EQ(g.GetString("llama.block_count").status().code(), StatusCode::kInvalidArgument);
  const TensorInfo* t = g.FindTensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, DType::kQ8_0);
  EXPECT_EQ(t->dims, (std::vector<int64_t>{576, 49152}));
  EXPECT_EQ(t->data - g.base(), 1785664);
  EXPECT_EQ(t->n_bytes, 30081024u);
  const TensorInfo* norm = g.FindTensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->data - g.base(), 98360128);
  EXPECT_EQ(norm->n_bytes, 2304u);
  EXPECT_NE(g.FindTensor("blk.29.ffn_down.weight"), nullptr);
}

TEST(GgufModelTest, Gemma3) {
  ATRIUM_REQUIRE_MODEL(path, kGemma3File);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_EQ(g.tensors().size(), 236u);
  EXPECT_EQ(g.GetString("general.architecture").value(), "gemma3");
  EXPECT_EQ(g.GetInt("gemma3.block_count").value(), 18);
  EXPECT_EQ(g.GetInt("gemma3.attention.sliding_window").value(), 512);
  EXPECT_TRUE(g.GetBool("tokenizer.ggml.add_bos_token").value());
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.tokens").value().size(), 262144u);
  EXPECT_EQ(g.GetFloatArray("tokenizer.ggml.scores").value().size(), 262144u);
  const TensorInfo* t = g.FindTensor("blk.17.post_ffw_norm.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, DType::kF32);
  EXPECT_EQ(t->data - g.base(), 253110464);
  EXPECT_EQ(g.tensors().front().name, "output_norm.weight");
}

}  // namespace
}  // namespace atrium::gguf

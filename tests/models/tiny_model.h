// Tiny random models written with the project's GGUF writer, for tests that
// need a real file but not a real model. Values are deterministic per seed.
#pragma once

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "models/gguf_writer.h"

namespace atrium::testing {

struct TinySpec {
  std::string arch = "llama";  // "llama", "qwen2" or "gemma3"
  int dim = 64;
  int n_layers = 2;
  int n_heads = 4;
  int n_kv_heads = 2;
  int head_dim = 16;
  int ffn_dim = 96;
  int n_vocab = 96;
  int context = 64;
  int sliding_window = 0;      // gemma3: 0 = none
  int swa_pattern = 2;         // gemma3: every n-th layer global
  DType matrix_type = DType::kF32;
  bool tied = true;            // no output.weight
  uint32_t seed = 1;
};

inline std::vector<float> RandomValues(std::mt19937& rng, size_t n, float scale, float offset = 0) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = offset + scale * d(rng);
  return v;
}

// The GGUF writer holding a tiny model; callers may add or change keys
// before writing (e.g. to corrupt it on purpose).
inline gguf::GgufWriter TinyModelWriter(const TinySpec& s, const std::vector<std::string>& skip = {}) {
  gguf::GgufWriter w;
  std::mt19937 rng(s.seed);
  const std::string p = s.arch + ".";
  w.SetString("general.architecture", s.arch);
  w.SetString("general.name", "tiny-" + s.arch);
  w.SetUint32(p + "embedding_length", s.dim);
  w.SetUint32(p + "block_count", s.n_layers);
  w.SetUint32(p + "feed_forward_length", s.ffn_dim);
  w.SetUint32(p + "attention.head_count", s.n_heads);
  w.SetUint32(p + "attention.head_count_kv", s.n_kv_heads);
  w.SetUint32(p + "attention.key_length", s.head_dim);
  w.SetUint32(p + "attention.value_length", s.head_dim);
  w.SetUint32(p + "context_length", s.context);
  w.SetFloat32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.SetFloat32(p + "rope.freq_base", 10000.0f);
  if (s.arch == "gemma3" && s.sliding_window > 0) {
    w.SetUint32(p + "attention.sliding_window", s.sliding_window);
    w.SetUint32(p + "attention.sliding_window_pattern", s.swa_pattern);
  }
  auto skipped = [&](const std::string& name) {
    for (const std::string& n : skip) if (n == name) return true;
    return false;
  };
  auto add = [&](const std::string& name, std::vector<int64_t> dims, DType type, float scale, float offset = 0) {
    size_t n = 1;
    for (int64_t d : dims) n *= static_cast<size_t>(d);
    std::vector<float> v = RandomValues(rng, n, scale, offset);
    if (!skipped(name)) w.AddTensorF32(name, type, dims, v);
  };
  const float ws = 1.0f / std::sqrt(static_cast<float>(s.dim));
  add("token_embd.weight", {s.dim, s.n_vocab}, s.matrix_type, 1.0f);
  add("output_norm.weight", {s.dim}, DType::kF32, 0.1f, 1.0f);
  if (!s.tied) add("output.weight", {s.dim, s.n_vocab}, s.matrix_type, ws);
  const bool gemma = s.arch == "gemma3";
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {s.dim}, DType::kF32, 0.1f, 1.0f);
    add(b + "attn_q.weight", {s.dim, s.n_heads * s.head_dim}, s.matrix_type, ws);
    add(b + "attn_k.weight", {s.dim, s.n_kv_heads * s.head_dim}, s.matrix_type, ws);
    add(b + "attn_v.weight", {s.dim, s.n_kv_heads * s.head_dim}, s.matrix_type, ws);
    add(b + "attn_output.weight", {s.n_heads * s.head_dim, s.dim}, s.matrix_type, ws);
    add(b + "ffn_norm.weight", {s.dim}, DType::kF32, 0.1f, 1.0f);
    add(b + "ffn_gate.weight", {s.dim, s.ffn_dim}, s.matrix_type, ws);
    add(b + "ffn_up.weight", {s.dim, s.ffn_dim}, s.matrix_type, ws);
    add(b + "ffn_down.weight", {s.ffn_dim, s.dim}, s.matrix_type, 1.0f / std::sqrt(static_cast<float>(s.ffn_dim)));
    if (s.arch == "qwen2") {
      add(b + "attn_q.bias", {s.n_heads * s.head_dim}, DType::kF32, 0.5f);
      add(b + "attn_k.bias", {s.n_kv_heads * s.head_dim}, DType::kF32, 0.5f);
      add(b + "attn_v.bias", {s.n_kv_heads * s.head_dim}, DType::kF32, 0.5f);
    }
    if (gemma) {
      add(b + "attn_q_norm.weight", {s.head_dim}, DType::kF32, 0.1f, 1.0f);
      add(b + "attn_k_norm.weight", {s.head_dim}, DType::kF32, 0.1f, 1.0f);
      add(b + "post_attention_norm.weight", {s.dim}, DType::kF32, 0.1f, 1.0f);
      add(b + "post_ffw_norm.weight", {s.dim}, DType::kF32, 0.1f, 1.0f);
    }
  }
  return w;
}

}  // namespace atrium::testing

#include "models/config.h"

#include <cmath>

namespace atrium {
namespace {

// Reads "<arch>.<suffix>" as a positive integer.
StatusOr<int64_t> PositiveInt(const gguf::GgufFile& f, const std::string& key) {
  ASSIGN_OR_RETURN(int64_t v, f.GetInt(key));
  if (v <= 0 || v > (int64_t{1} << 31)) {
    return InvalidArgument(StrFormat("%s: metadata '%s' must be a positive integer, got %lld",
                                     f.name().c_str(), key.c_str(), static_cast<long long>(v)));
  }
  return v;
}

StatusOr<int64_t> PositiveIntOr(const gguf::GgufFile& f, const std::string& key, int64_t fallback) {
  if (!f.Has(key)) return fallback;
  return PositiveInt(f, key);
}

StatusOr<float> FloatOr(const gguf::GgufFile& f, const std::string& key, double fallback) {
  ASSIGN_OR_RETURN(double v, f.GetFloatOr(key, fallback));
  if (!std::isfinite(v)) {
    return InvalidArgument(StrFormat("%s: metadata '%s' is not a finite number", f.name().c_str(), key.c_str()));
  }
  return static_cast<float>(v);
}

}  // namespace

Status ValidateConfig(const ModelConfig& c) {
  auto fail = [&](const char* what) {
    return InvalidArgument(StrFormat("model config (%s): %s", c.architecture.c_str(), what));
  };
  if (c.n_vocab <= 0 || c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.head_dim <= 0 || c.head_dim_v <= 0 || c.ffn_dim <= 0) {
    return fail("sizes must be positive");
  }
  if (c.head_dim_v != c.head_dim) return fail("key and value head sizes differ, which this build does not support");
  if (c.n_heads % c.n_kv_heads != 0) return fail("head_count must be a multiple of head_count_kv");
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    return fail("rope dimension must be even and at most the head size");
  }
  if (!(c.rms_eps > 0) || !(c.rope_base > 0) || !(c.rope_scale > 0)) {
    return fail("rms epsilon, rope base and rope scale must be positive");
  }
  if (static_cast<int64_t>(c.layer_is_swa.size()) != c.n_layers) return fail("sliding-window layer pattern size");
  if (c.sliding_window < 0) return fail("sliding window must be >= 0");
  return OkStatus();
}

StatusOr<ModelConfig> ConfigFromGguf(const gguf::GgufFile& f) {
  ModelConfig c;
  ASSIGN_OR_RETURN(c.architecture, f.GetString("general.architecture"));
  const std::string& a = c.architecture;
  if (a == "llama" || a == "mistral") {
    c.arch = Arch::kLlama;
  } else if (a == "qwen2") {
    c.arch = Arch::kQwen2;
  } else if (a == "gemma3") {
    c.arch = Arch::kGemma3;
  } else {
    return Unimplemented(StrFormat("%s: architecture '%s' is not supported (supported: llama, mistral, qwen2, gemma3)",
                                   f.name().c_str(), a.c_str()));
  }
  const std::string p = a + ".";
  ASSIGN_OR_RETURN(c.dim, PositiveInt(f, p + "embedding_length"));
  ASSIGN_OR_RETURN(c.n_layers, PositiveInt(f, p + "block_count"));
  ASSIGN_OR_RETURN(c.ffn_dim, PositiveInt(f, p + "feed_forward_length"));
  ASSIGN_OR_RETURN(c.n_heads, PositiveInt(f, p + "attention.head_count"));
  ASSIGN_OR_RETURN(c.n_kv_heads, PositiveIntOr(f, p + "attention.head_count_kv", c.n_heads));
  if (c.dim % c.n_heads != 0 && !f.Has(p + "attention.key_length")) {
    return InvalidArgument(StrFormat("%s: embedding_length %lld is not a multiple of head_count %lld and no key_length is given",
                                     f.name().c_str(), static_cast<long long>(c.dim), static_cast<long long>(c.n_heads)));
  }
  ASSIGN_OR_RETURN(c.head_dim, PositiveIntOr(f, p + "attention.key_length", c.dim / c.n_heads));
  ASSIGN_OR_RETURN(c.head_dim_v, PositiveIntOr(f, p + "attention.value_length", c.head_dim));
  ASSIGN_OR_RETURN(c.context_length, PositiveIntOr(f, p + "context_length", 2048));
  ASSIGN_OR_RETURN(c.rms_eps, FloatOr(f, p + "attention.layer_norm_rms_epsilon", 1e-5));
  ASSIGN_OR_RETURN(c.rope_base, FloatOr(f, p + "rope.freq_base", 10000.0));
  ASSIGN_OR_RETURN(c.rope_dim, PositiveIntOr(f, p + "rope.dimension_count", c.head_dim));
  ASSIGN_OR_RETURN(std::string scaling, f.GetStringOr(p + "rope.scaling.type", "none"));
  if (scaling == "linear") {
    ASSIGN_OR_RETURN(float factor, FloatOr(f, p + "rope.scaling.factor", 1.0));
    if (!(factor > 0)) return InvalidArgument(StrFormat("%s: rope.scaling.factor must be > 0", f.name().c_str()));
    c.rope_scale = 1.0f / factor;
  } else if (scaling != "none") {
    return Unimplemented(StrFormat("%s: rope scaling '%s' is not supported (supported: none, linear)",
                                   f.name().c_str(), scaling.c_str()));
  }
  c.layer_is_swa.assign(c.n_layers, false);
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  ASSIGN_OR_RETURN(c.attn_softcap, FloatOr(f, p + "attn_logit_softcapping", 0.0));
  ASSIGN_OR_RETURN(c.final_softcap, FloatOr(f, p + "final_logit_softcapping", 0.0));

  if (const gguf::TensorInfo* embd = f.FindTensor("token_embd.weight"); embd != nullptr && embd->dims.size() == 2) {
    c.n_vocab = embd->dims[1];
  } else {
    return InvalidArgument(StrFormat("%s: tensor 'token_embd.weight' is missing or not 2-D", f.name().c_str()));
  }

  switch (c.arch) {
    case Arch::kLlama:
      c.rope_layout = kernels::RopeLayout::kNormal;
      c.activation = Activation::kSilu;
      break;
    case Arch::kQwen2:
      c.rope_layout = kernels::RopeLayout::kNeox;
      c.activation = Activation::kSilu;
      c.has_qkv_bias = true;
      break;
    case Arch::kGemma3: {
      c.rope_layout = kernels::RopeLayout::kNeox;
      c.activation = Activation::kGeluTanh;
      c.has_qk_norm = true;
      c.has_post_norms = true;
      c.embed_scale = std::sqrt(static_cast<float>(c.dim));
      // Gemma 3 scales queries by 1/sqrt(head_dim), except the 27B model,
      // which uses 1/sqrt(dim / n_heads) (gemma_pytorch config).
      if (c.n_layers == 62) c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.dim / c.n_heads));
      ASSIGN_OR_RETURN(int64_t window, f.GetIntOr(p + "attention.sliding_window", 0));
      if (window < 0) return InvalidArgument(StrFormat("%s: attention.sliding_window must be >= 0", f.name().c_str()));
      c.sliding_window = window;
      if (window > 0) {
        ASSIGN_OR_RETURN(c.rope_base_swa, FloatOr(f, p + "rope.freq_base_swa", 10000.0));
        const std::string pattern_key = p + "attention.sliding_window_pattern";
        const gguf::Value* pattern = f.Find(pattern_key);
        if (pattern != nullptr && pattern->type == gguf::ValueType::kArray) {
          ASSIGN_OR_RETURN(std::vector<int64_t> flags, f.GetIntArray(pattern_key));
          if (static_cast<int64_t>(flags.size()) != c.n_layers) {
            return InvalidArgument(StrFormat("%s: '%s' has %zu entries for %lld layers", f.name().c_str(),
                                             pattern_key.c_str(), flags.size(), static_cast<long long>(c.n_layers)));
          }
          for (int64_t l = 0; l < c.n_layers; ++l) c.layer_is_swa[l] = flags[l] != 0;
        } else {
          // Every n-th layer is global, the others slide (llama.cpp's default of 6).
          ASSIGN_OR_RETURN(int64_t n, PositiveIntOr(f, pattern_key, 6));
          for (int64_t l = 0; l < c.n_layers; ++l) c.layer_is_swa[l] = l % n < n - 1;
        }
      }
      break;
    }
  }
  RETURN_IF_ERROR(ValidateConfig(c).WithContext(f.name()));
  return c;
}

}  // namespace atrium

// A loaded model: config, weights (views into the memory-mapped file) and
// the architecture's Forward. Loading validates every tensor against the
// config before anything runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "models/config.h"
#include "models/gguf.h"
#include "models/weights.h"
#include "runtime/kv_cache.h"
#include "runtime/ops.h"

namespace atrium {

struct LoadOptions {
  // Called while the weights are paged in: (bytes done, bytes total).
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Touch every page of the weights now, so the first token does not pay
  // for page faults (and the progress callback means something).
  bool prefetch = true;
};

// Reusable activation buffers of a Forward, grown to the largest batch seen.
struct Activations {
  int64_t capacity = 0;
  Tensor x;       // [n, dim] residual stream
  Tensor h;       // [n, dim] normed input of a block
  Tensor q;       // [n, q_dim]
  Tensor k;       // [n, k_dim] (Qwen2 bias staging)
  Tensor attn;    // [n, n_heads * head_dim_v]
  Tensor o;       // [n, dim]
  Tensor gate;    // [n, ffn_dim]
  Tensor up;      // [n, ffn_dim]
  Tensor logits;  // [n, n_vocab] scratch when the caller wants one row
  std::vector<int32_t> pos;
  void Ensure(const ModelConfig& c, int64_t n_tokens);

  // Views of the first n rows of each buffer, with pos = pos0, pos0 + 1, ...
  struct Rows {
    Tensor x, h, q, attn, o, gate, up;
    const int32_t* pos;
  };
  Rows First(int64_t n, int64_t pos0);
};

class Model {
 public:
  // Opens a GGUF file (mmap), validates it and binds the weights; a
  // directory is read as a HF checkpoint (LoadHf).
  static StatusOr<std::unique_ptr<Model>> Load(const std::string& path, const LoadOptions& options = {});
  // A HF llama-family checkpoint directory: config.json plus
  // model.safetensors or the shards named by model.safetensors.index.json
  // (F32 / F16 / BF16). Matrices are used in place from the maps; norms are
  // converted to f32. (models/hf_model.cc)
  static StatusOr<std::unique_ptr<Model>> LoadHf(const std::string& dir, const LoadOptions& options = {});
  static StatusOr<std::unique_ptr<Model>> FromGguf(std::shared_ptr<const gguf::GgufFile> file,
                                                   const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  Weights& mutable_weights() { return weights_; }
  // The GGUF file the model came from (metadata, tokenizer, chat template);
  // only for models loaded from GGUF (has_gguf()).
  bool has_gguf() const { return file_ != nullptr; }
  const gguf::GgufFile& file() const {
    ATRIUM_CHECK(file_ != nullptr, "model was not loaded from a GGUF file");
    return *file_;
  }
  // Bytes of weights read per token (every matrix once): the decode floor's numerator.
  uint64_t weight_bytes() const { return weight_bytes_; }

  std::unique_ptr<KvCache> NewKvCache(int64_t capacity) const;

  // Runs n_tokens tokens of one sequence at positions kv.size() .. and
  // appends their keys and values to kv. logits receives [n_tokens, n_vocab]
  // when all_logits, else [1, n_vocab] for the last token. Errors: a token id
  // outside the vocabulary, or more tokens than the cache has room for.
  Status Forward(ops::Context& ctx, const int32_t* tokens, int64_t n_tokens, KvCache& kv,
                 Tensor& logits, bool all_logits);

 private:
  Model() = default;
  Status Bind(const LoadOptions& options);
  // After binding: an absent output matrix is the embedding table (tied), and
  // weight_bytes_ is set from the bytes of the bound tensors.
  void TieAndCount(uint64_t bytes_read);

  ModelConfig config_;
  Weights weights_;
  std::shared_ptr<const gguf::GgufFile> file_;
  std::vector<std::shared_ptr<const void>> keepalive_;  // safetensors shards
  uint64_t weight_bytes_ = 0;
  std::mutex mu_;  // one Forward at a time (they share acts_)
  Activations acts_;
};

// The architectures' Forward functions (models/llama.cc, models/gemma3.cc):
// straight-line layer loops over the ops facade.
struct ForwardArgs {
  const ModelConfig& c;
  const Weights& w;
  ops::Context& ctx;
  Activations& a;
  const int32_t* tokens;
  int64_t n_tokens;
  KvCache& kv;
  Tensor& logits;
  bool all_logits;
};
void LlamaForward(const ForwardArgs& args);
// The shared tail: final norm of the rows whose logits are wanted, the
// output matrix, optional soft-capping. h is scratch of x's shape.
void OutputHead(const ForwardArgs& args, const Tensor& x, Tensor& h);
void Gemma3Forward(const ForwardArgs& args);

}  // namespace atrium

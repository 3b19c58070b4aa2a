// A loaded model: config, weights (views into the memory-mapped file) and
// the architecture's Forward. Loading validates every tensor against the
// config before anything runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "models/config.h"
#include "models/gguf.h"
#include "models/weights.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_pool.h"
#include "runtime/ops.h"

namespace atrium {

struct LoadOptions {
  // Called while the weights are paged in: (bytes done, bytes total).
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Touch every page of the weights now, so the first token does not pay
  // for page faults (and the progress callback means something).
  bool prefetch = true;
  // Repack the matrices this CPU's kernels have a faster layout for (same
  // results, same size; the file's pages of those matrices are released).
  // The packed copy is private memory: processes that should share one
  // copy of the weights through the page cache pass false.
  bool pack = true;
  // With pack: keep the packed matrices in a file under this directory and
  // map it read-only (models/packed_cache.h), so processes loading the same
  // model share one copy through the page cache; the first load writes it.
  // Empty: packed into private memory.
  std::string packed_cache_dir;
};

// One sequence's share of a batched Forward.
struct ForwardSeq {
  const int32_t* tokens = nullptr;  // [n_tokens] its new tokens
  int64_t n_tokens = 0;
  // Positions 0..table->n_tokens-1 are in the cache; the table must already
  // hold blocks for n_tokens more (KvPool::Reserve). Forward writes their
  // keys and values and advances table->n_tokens.
  BlockTable* table = nullptr;
  bool all_logits = false;  // logits of every new token (scoring text), else of the last only
};

// Reusable activation buffers of a Forward, grown to the largest batch seen.
struct Activations {
  int64_t capacity = 0;
  Tensor x;       // [n, dim] residual stream
  Tensor h;       // [n, dim] normed input of a block
  Tensor q;       // [n, q_dim]
  Tensor k;       // [n, k_dim] new keys, before they go into the cache
  Tensor v;       // [n, v_dim] new values
  Tensor attn;    // [n, n_heads * head_dim_v]
  Tensor o;       // [n, dim]
  Tensor gate;    // [n, ffn_dim]
  Tensor up;      // [n, ffn_dim]
  // Per row of the batch (sequences end to end): token, position, cache row.
  std::vector<int32_t> tokens, pos;
  std::vector<int64_t> slots;
  std::vector<ops::AttentionSeq> seqs;  // per sequence: its rows and keys
  std::vector<int64_t> logit_rows;      // rows whose logits are wanted, in order
  void Ensure(const ModelConfig& c, int64_t n_tokens);

  // Views of the first n rows of each buffer.
  struct Rows {
    Tensor x, h, q, k, v, attn, o, gate, up;
  };
  Rows First(int64_t n);
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
  // The packed-weight file the matrices are mapped from ("" when packed in
  // private memory or not packed).
  const std::string& packed_cache_path() const { return packed_cache_path_; }
  // Bytes of weights read per token (every matrix once): the decode floor's numerator.
  uint64_t weight_bytes() const { return weight_bytes_; }

  // A cache for one sequence of up to `capacity` tokens.
  std::unique_ptr<KvCache> NewKvCache(int64_t capacity) const;
  // A paged cache for many sequences within budget_bytes, of f32 or f16.
  StatusOr<std::unique_ptr<KvPool>> NewKvPool(int32_t block_tokens, int64_t budget_bytes,
                                              DType dtype = DType::kF32) const;

  // Runs a ragged batch: each sequence's new tokens at its own positions, in
  // one pass, so every weight is read once for the whole batch. logits
  // receives LogitRows(seqs) rows of n_vocab, in sequence order. Errors
  // (nothing is written): a token id outside the vocabulary, a table without
  // blocks for its new tokens, a pool of another model's shape.
  Status Forward(ops::Context& ctx, std::span<const ForwardSeq> seqs, KvPool& kv, Tensor& logits);
  static int64_t LogitRows(std::span<const ForwardSeq> seqs);

  // One sequence: n_tokens tokens at positions kv.size() .. appended to kv.
  // logits receives [n_tokens, n_vocab] when all_logits, else [1, n_vocab]
  // for the last token. RESOURCE_EXHAUSTED when the tokens do not fit.
  Status Forward(ops::Context& ctx, const int32_t* tokens, int64_t n_tokens, KvCache& kv,
                 Tensor& logits, bool all_logits);

 private:
  Model() = default;
  Status Bind(const LoadOptions& options);
  // After binding: an absent output matrix is the embedding table (tied), and
  // weight_bytes_ is set from the bytes of the bound tensors.
  void TieAndCount(uint64_t bytes_read);
  // Packs the matrices that have a packed form (into options'
  // packed_cache_dir when set); returns their bytes.
  uint64_t PackMatrices(uint64_t total, const LoadOptions& options);

  ModelConfig config_;
  Weights weights_;
  std::shared_ptr<const gguf::GgufFile> file_;
  std::vector<std::shared_ptr<const void>> keepalive_;  // safetensors shards
  uint64_t weight_bytes_ = 0;
  std::unordered_set<const void*> packed_data_;  // file data of the packed matrices
  std::string packed_cache_path_;                 // the mapped packed-weight file, if any
  std::mutex mu_;  // one Forward at a time (they share acts_)
  Activations acts_;
};

// The architectures' Forward functions (models/llama.cc, models/gemma3.cc):
// straight-line layer loops over the ops facade, on a batch whose rows are
// the sequences' new tokens end to end (Activations holds the per-row
// token, position and cache row, and each sequence's attention span).
struct ForwardArgs {
  const ModelConfig& c;
  const Weights& w;
  ops::Context& ctx;
  Activations& a;
  int64_t n_tokens;  // rows of the batch
  KvPool& kv;
  Tensor& logits;
};
void LlamaForward(const ForwardArgs& args);
// What a layer does to its new q, k and v (fresh from their matmuls) before
// attention reads them, in this order: biases added (Qwen2), per-head
// RMSNorm (Gemma 3), rope, queries scaled (Gemma 3).
struct QkvPrep {
  const Tensor* q_bias = nullptr;
  const Tensor* k_bias = nullptr;
  const Tensor* v_bias = nullptr;
  const Tensor* q_norm = nullptr;
  const Tensor* k_norm = nullptr;
  float rope_base = 10000.0f;
  float rope_scale = 1.0f;
  float q_scale = 1.0f;
};
// Makes q, k and v ready (prep), writes the batch's new keys and values into
// the cache rows of layer l, and attends every sequence over its keys; the
// first two per sequence and KV head, inside attention's parallel pass.
void CacheAndAttend(const ForwardArgs& args, int64_t l, Tensor& q, Tensor& k, Tensor& v, Tensor& out,
                    const ops::AttentionShape& shape, const QkvPrep& prep);
// The prologue of a block's first matmul (ops::RowPrologue), on rows
// [begin, end): when add is given, x += add, add first normalized in place
// by add_norm when that is given too (Gemma 3's post-norms); then out =
// RmsNorm(x) * norm.
ops::RowPrologue AddAndNorm(ops::Context& ctx, Tensor& x, Tensor* add, const Tensor* add_norm, Tensor& out,
                            const Tensor& norm, float eps);
// The prologue of a block's down projection (ops::RowPrologue), on rows
// [begin, end): gate = act(gate) * up, act one of ops' gated *MulRegion.
using GatedActRegion = void (*)(ops::Context&, Tensor&, const Tensor&, const Tensor&, const ops::Region&);
ops::RowPrologue GatedAct(ops::Context& ctx, Tensor& gate, const Tensor& up, GatedActRegion act);
// The shared tail: final norm of the rows whose logits are wanted, the
// output matrix, optional soft-capping. h is scratch of x's shape.
void OutputHead(const ForwardArgs& args, const Tensor& x, Tensor& h);
void Gemma3Forward(const ForwardArgs& args);

}  // namespace atrium

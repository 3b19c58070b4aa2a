#include "models/model.h"

#include <algorithm>
#include <filesystem>

namespace atrium {
namespace {

// The dtypes Forward can use for each kind of weight.
bool IsMatrixType(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ4_0: case DType::kQ4_1:
    case DType::kQ5_0: case DType::kQ5_1: case DType::kQ8_0: case DType::kQ4_K: case DType::kQ5_K:
    case DType::kQ6_K: return true;
    default: return false;
  }
}

std::string ShapeText(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

void Activations::Ensure(const ModelConfig& c, int64_t n) {
  if (n <= capacity) return;
  capacity = n;
  x = Tensor::Empty(DType::kF32, {n, c.dim});
  h = Tensor::Empty(DType::kF32, {n, c.dim});
  q = Tensor::Empty(DType::kF32, {n, c.q_dim()});
  k = Tensor::Empty(DType::kF32, {n, std::max(c.k_dim(), c.v_dim())});
  attn = Tensor::Empty(DType::kF32, {n, c.n_heads * c.head_dim_v});
  o = Tensor::Empty(DType::kF32, {n, c.dim});
  gate = Tensor::Empty(DType::kF32, {n, c.ffn_dim});
  up = Tensor::Empty(DType::kF32, {n, c.ffn_dim});
  pos.resize(n);
}

Activations::Rows Activations::First(int64_t n, int64_t pos0) {
  for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(pos0 + i);
  return Rows{x.Rows(0, n), h.Rows(0, n), q.Rows(0, n), attn.Rows(0, n), o.Rows(0, n),
              gate.Rows(0, n), up.Rows(0, n), pos.data()};
}

void OutputHead(const ForwardArgs& args, const Tensor& x, Tensor& h) {
  // Only the rows whose logits are wanted go through the output matrix.
  const int64_t n = x.rows();
  Tensor last = args.all_logits ? x : x.Rows(n - 1, n);
  Tensor normed = args.all_logits ? h : h.Rows(0, 1);
  ops::RmsNorm(args.ctx, normed, last, &args.w.output_norm, args.c.rms_eps);
  ops::MatMul(args.ctx, args.logits, normed, args.w.output);
  if (args.c.final_softcap > 0) ops::SoftCap(args.ctx, args.logits, args.c.final_softcap);
}

StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return LoadHf(path, options);
  ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::Open(path));
  return FromGguf(std::shared_ptr<const gguf::GgufFile>(std::move(file)), options);
}

StatusOr<std::unique_ptr<Model>> Model::FromGguf(std::shared_ptr<const gguf::GgufFile> file,
                                                 const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file);
  ASSIGN_OR_RETURN(m->config_, ConfigFromGguf(*m->file_));
  RETURN_IF_ERROR(m->Bind(options));
  return m;
}

Status Model::Bind(const LoadOptions& options) {
  const gguf::GgufFile& f = *file_;
  // Views keep the file (and its map) alive through this shared pointer.
  std::shared_ptr<const void> keepalive = file_;
  Status status;
  std::vector<const gguf::TensorInfo*> used;
  ForEachWeight(config_, weights_, [&](WeightRole role, int layer, Tensor& slot) {
    if (!status.ok()) return;
    const std::string name = GgufName(role, layer);
    const gguf::TensorInfo* t = f.FindTensor(name);
    if (t == nullptr) {
      if (NeedOf(config_, role) == Need::kRequired) {
        status = InvalidArgument(StrFormat("%s: required tensor '%s' is missing (architecture %s)",
                                           f.name().c_str(), name.c_str(), config_.architecture.c_str()));
      }
      return;
    }
    std::vector<int64_t> shape(t->dims.rbegin(), t->dims.rend());
    const std::vector<int64_t> expected = ExpectedShape(config_, role);
    if (shape != expected) {
      status = InvalidArgument(StrFormat("%s: tensor '%s' has shape %s, expected %s from the metadata",
                                         f.name().c_str(), name.c_str(), ShapeText(shape).c_str(),
                                         ShapeText(expected).c_str()));
      return;
    }
    const bool is_vector = expected.size() == 1;
    if (is_vector ? t->type != DType::kF32 : !IsMatrixType(t->type)) {
      status = Unimplemented(StrFormat("%s: tensor '%s' has type %s, which is not supported for a %s",
                                       f.name().c_str(), name.c_str(), std::string(DTypeName(t->type)).c_str(),
                                       is_vector ? "norm or bias vector (needs f32)" : "weight matrix"));
      return;
    }
    slot = Tensor::View(t->type, shape, t->data, keepalive);
    used.push_back(t);
  });
  RETURN_IF_ERROR(status);
  uint64_t total = 0;
  for (const gguf::TensorInfo* t : used) total += t->n_bytes;
  TieAndCount(total);
  if (options.prefetch) {
    // Touch one byte per page, in file order, reporting progress per tensor
    // (the progress bar limits how often it redraws).
    uint64_t done = 0;
    volatile uint8_t sink = 0;
    for (const gguf::TensorInfo* t : used) {
      for (uint64_t off = 0; off < t->n_bytes; off += 4096) sink ^= t->data[off];
      done += t->n_bytes;
      if (options.progress) options.progress(done, total);
    }
    (void)sink;
  }
  return OkStatus();
}

void Model::TieAndCount(uint64_t bytes_read) {
  const bool tied = !weights_.output.defined();
  if (tied) weights_.output = weights_.token_embd;
  // A decode step reads every matrix once; the embedding table is read in
  // full only when it doubles as the output matrix (else one row).
  weight_bytes_ = bytes_read - (tied ? 0 : static_cast<uint64_t>(weights_.token_embd.nbytes()));
}

std::unique_ptr<KvCache> Model::NewKvCache(int64_t capacity) const {
  return std::make_unique<KvCache>(config_.n_layers, capacity, config_.k_dim(), config_.v_dim());
}

Status Model::Forward(ops::Context& ctx, const int32_t* tokens, int64_t n_tokens, KvCache& kv,
                      Tensor& logits, bool all_logits) {
  if (n_tokens <= 0) return InvalidArgument("forward: no tokens");
  for (int64_t i = 0; i < n_tokens; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.n_vocab) {
      return InvalidArgument(StrFormat("forward: token #%lld has id %d, outside the vocabulary [0, %lld)",
                                       static_cast<long long>(i), tokens[i],
                                       static_cast<long long>(config_.n_vocab)));
    }
  }
  if (kv.size() + n_tokens > kv.capacity()) {
    return ResourceExhausted(StrFormat("forward: %lld tokens at position %lld exceed the context of %lld",
                                       static_cast<long long>(n_tokens), static_cast<long long>(kv.size()),
                                       static_cast<long long>(kv.capacity())));
  }
  const int64_t out_rows = all_logits ? n_tokens : 1;
  ATRIUM_CHECK(logits.dtype() == DType::kF32 && logits.rows() == out_rows && logits.cols() == config_.n_vocab,
               "logits buffer %s", logits.ShapeString().c_str());
  std::lock_guard<std::mutex> lock(mu_);
  acts_.Ensure(config_, n_tokens);
  const ForwardArgs args{config_, weights_, ctx, acts_, tokens, n_tokens, kv, logits, all_logits};
  switch (config_.arch) {
    case Arch::kLlama:
    case Arch::kQwen2: LlamaForward(args); break;
    case Arch::kGemma3: Gemma3Forward(args); break;
  }
  kv.set_size(kv.size() + n_tokens);
  return OkStatus();
}

}  // namespace atrium

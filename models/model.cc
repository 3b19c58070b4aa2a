#include "models/model.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <new>

#include "models/packed_cache.h"

namespace atrium {
namespace {

// The packed layout (kernels/cpu/tiles_avx512.h, Packed<U>): a cache file
// written for another layout never matches. Bump it when the layout changes.
constexpr char kPackedFormat[] = "avx512-tiles16-v1";

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
  k = Tensor::Empty(DType::kF32, {n, c.k_dim()});
  v = Tensor::Empty(DType::kF32, {n, c.v_dim()});
  attn = Tensor::Empty(DType::kF32, {n, c.n_heads * c.head_dim_v});
  o = Tensor::Empty(DType::kF32, {n, c.dim});
  gate = Tensor::Empty(DType::kF32, {n, c.ffn_dim});
  up = Tensor::Empty(DType::kF32, {n, c.ffn_dim});
}

Activations::Rows Activations::First(int64_t n) {
  return Rows{x.Rows(0, n),    h.Rows(0, n), q.Rows(0, n),    k.Rows(0, n), v.Rows(0, n),
              attn.Rows(0, n), o.Rows(0, n), gate.Rows(0, n), up.Rows(0, n)};
}

void CacheAndAttend(const ForwardArgs& args, int64_t l, Tensor& q, Tensor& k, Tensor& v, Tensor& out,
                    const ops::AttentionShape& shape, const QkvPrep& prep) {
  const ModelConfig& c = args.c;
  ops::Context& ctx = args.ctx;
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const int32_t* pos = args.a.pos.data();
  const int64_t* slots = args.a.slots.data();
  const DType kv_type = args.kv.dtype();
  auto prologue = [&](const ops::AttentionSeq& s, int64_t g0, int64_t g1) {
    const ops::Region qr{s.row0, s.n_tokens, g0 * group * c.head_dim, (g1 - g0) * group * c.head_dim};
    const ops::Region kr{s.row0, s.n_tokens, g0 * c.head_dim, (g1 - g0) * c.head_dim};
    const ops::Region vr{s.row0, s.n_tokens, g0 * c.head_dim_v, (g1 - g0) * c.head_dim_v};
    if (prep.q_bias != nullptr) ops::AddBiasRegion(ctx, q, *prep.q_bias, qr);
    if (prep.k_bias != nullptr) ops::AddBiasRegion(ctx, k, *prep.k_bias, kr);
    if (prep.v_bias != nullptr) ops::AddBiasRegion(ctx, v, *prep.v_bias, vr);
    if (prep.q_norm != nullptr) ops::RmsNormRegion(ctx, q, q, *prep.q_norm, c.rms_eps, qr);
    if (prep.k_norm != nullptr) ops::RmsNormRegion(ctx, k, k, *prep.k_norm, c.rms_eps, kr);
    ops::RopeRegion(ctx, q, c.head_dim, pos, c.rope_dim, prep.rope_base, prep.rope_scale, c.rope_layout, qr);
    ops::RopeRegion(ctx, k, c.head_dim, pos, c.rope_dim, prep.rope_base, prep.rope_scale, c.rope_layout, kr);
    if (prep.q_scale != 1.0f) ops::ScaleRegion(ctx, q, prep.q_scale, qr);
    ops::ScatterRegion(ctx, args.kv.k_data(l), kv_type, args.kv.k_dim(), k, slots, kr, kernels::KvSide::kKeys);
    ops::ScatterRegion(ctx, args.kv.v_data(l), kv_type, args.kv.v_dim(), v, slots, vr, kernels::KvSide::kValues);
  };
  const ops::KvRows rows{args.kv.k_data(l), args.kv.v_data(l), args.kv.k_dim(), args.kv.block_tokens(), kv_type};
  ops::Attention(ctx, out, q, rows, args.a.seqs.data(), static_cast<int64_t>(args.a.seqs.size()), shape, prologue);
}

ops::RowPrologue AddAndNorm(ops::Context& ctx, Tensor& x, Tensor* add, const Tensor* add_norm, Tensor& out,
                            const Tensor& norm, float eps) {
  return [&ctx, &x, add, add_norm, &out, &norm, eps](int64_t begin, int64_t end) {
    const ops::Region r = ops::Region::Rows(x, begin, end);
    if (add != nullptr && add_norm != nullptr) ops::RmsNormRegion(ctx, *add, *add, *add_norm, eps, r);
    if (add != nullptr) ops::AddRegion(ctx, x, *add, r);
    ops::RmsNormRegion(ctx, out, x, norm, eps, r);
  };
}

ops::RowPrologue GatedAct(ops::Context& ctx, Tensor& gate, const Tensor& up, GatedActRegion act) {
  return [&ctx, &gate, &up, act](int64_t begin, int64_t end) {
    act(ctx, gate, gate, up, ops::Region::Rows(gate, begin, end));
  };
}

void OutputHead(const ForwardArgs& args, const Tensor& x, Tensor& h) {
  // Only the rows whose logits are wanted go through the output matrix.
  const std::vector<int64_t>& rows = args.a.logit_rows;
  const int64_t n = static_cast<int64_t>(rows.size());
  Tensor normed = h.Rows(0, n);
  ops::GatherRows(args.ctx, normed, x, rows.data());
  ops::RmsNorm(args.ctx, normed, normed, &args.w.output_norm, args.c.rms_eps);
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
  uint64_t done = options.pack ? PackMatrices(total, options) : 0;
  if (options.prefetch) {
    // Touch one byte per page of what was not packed, in file order,
    // reporting progress per tensor (the progress bar limits how often it
    // redraws).
    uint8_t sum = 0;
    for (const gguf::TensorInfo* t : used) {
      if (packed_data_.count(t->data) != 0) continue;
      for (uint64_t off = 0; off < t->n_bytes; off += 4096) sum ^= t->data[off];
      done += t->n_bytes;
      if (options.progress) options.progress(done, total);
    }
    // One volatile store keeps the reads from being optimized away.
    volatile uint8_t sink = sum;
    (void)sink;
  }
  return OkStatus();
}

uint64_t Model::PackMatrices(uint64_t total, const LoadOptions& options) {
  const kernels::CpuKernels& k = kernels::Cpu();
  // The matrices with a packed form and where each goes in one buffer (page
  // aligned). The embedding table is read a row at a time through its own
  // tensor, which keeps the file's layout; tied, the output matrix is
  // another tensor over the same bytes and gets the packed copy.
  struct Job {
    Tensor* t;
    int64_t offset;
  };
  std::vector<Job> jobs;
  int64_t payload = 0;
  ForEachWeight(config_, weights_, [&](WeightRole role, int, Tensor& t) {
    if (role == WeightRole::kTokenEmbd || !t.defined() || t.ndim() != 2) return;
    const int64_t bytes = k.packed_bytes(t.dtype(), t.dim(0), t.dim(1));
    if (bytes <= 0) return;
    jobs.push_back({&t, payload});
    payload += (bytes + 4095) / 4096 * 4096;
  });
  if (jobs.empty()) return 0;
  ThreadPool pool;  // one per core, for the duration of the load
  uint64_t done = 0;
  auto pack_all = [&](uint8_t* base) {
    for (const Job& job : jobs) {
      const Tensor& t = *job.t;
      uint8_t* dst = base + job.offset;
      // Tiles of 16 rows pack independently: split them over the cores (the
      // gathers and the page faults of the new buffer are most of load
      // time). A slice at a time, whose file pages are then given back (they
      // are not read again, except rows an embedding lookup faults back
      // in): resident memory stays about the file's size.
      const int64_t rows = t.dim(0), tiles = (rows + 15) / 16, tile_bytes = k.packed_bytes(t.dtype(), 16, t.dim(1));
      constexpr int64_t kSliceTiles = 256;
      for (int64_t s0 = 0; s0 < tiles; s0 += kSliceTiles) {
        const int64_t s1 = std::min(tiles, s0 + kSliceTiles);
        pool.ParallelFor(s1 - s0, 1, [&](int64_t b, int64_t e, int) {
          k.pack_rows(dst + (s0 + b) * tile_bytes, t.row((s0 + b) * 16), t.dtype(),
                      std::min(rows, (s0 + e) * 16) - (s0 + b) * 16, t.dim(1));
        });
        const uintptr_t from = reinterpret_cast<uintptr_t>(t.row(s0 * 16));
        const uintptr_t to =
            reinterpret_cast<uintptr_t>(t.raw()) + static_cast<uintptr_t>(std::min(rows, s1 * 16) * t.row_bytes());
        const uintptr_t begin = (from + 4095) / 4096 * 4096, end = to / 4096 * 4096;
        if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
      }
      done += static_cast<uint64_t>(t.nbytes());
      if (options.progress) options.progress(done, total);
    }
  };
  std::shared_ptr<const uint8_t> storage;
  if (!options.packed_cache_dir.empty() && file_ != nullptr) {
    const std::string key = PackedCacheKey(file_->name(), kPackedFormat);
    const std::string name = std::filesystem::path(file_->name()).filename().string() +
                             StrFormat(".%016llx.packed", static_cast<unsigned long long>(std::hash<std::string>{}(key)));
    StatusOr<PackedCacheMap> mapped = MapOrBuildPackedCache(options.packed_cache_dir, name, key, payload, pack_all);
    if (mapped.ok()) {
      storage = mapped->payload;
      packed_cache_path_ = mapped->path;
      if (!mapped->built) {
        for (const Job& job : jobs) done += static_cast<uint64_t>(job.t->nbytes());
        if (options.progress) options.progress(done, total);
      }
    } else {
      // Slower to share, not wrong: the weights are packed privately.
      std::fprintf(stderr, "atrium: %s; packing %s in private memory\n", mapped.status().message().c_str(),
                   file_->name().c_str());
      done = 0;
    }
  }
  if (storage == nullptr) {
    // On 2 MiB pages where the kernel allows (transparent huge pages in
    // "madvise" mode, the common default): a decode step walks all of it,
    // and with 4 KiB pages every 64 lines cost a TLB miss, a two-level page
    // walk in a VM. SmolLM2 on 2 threads: +20% decode for one stream, +10%
    // for 16 (bench-serve, alternating runs).
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = (static_cast<size_t>(payload) + kHuge - 1) / kHuge * kHuge;
    auto* buf = static_cast<uint8_t*>(::operator new(bytes, std::align_val_t{kHuge}));
    ::madvise(buf, bytes, MADV_HUGEPAGE);  // advice: without it, 4 KiB pages
    storage = std::shared_ptr<const uint8_t>(buf, [](const uint8_t* p) {
      ::operator delete(const_cast<uint8_t*>(p), std::align_val_t{kHuge});
    });
    pack_all(buf);
  }
  for (const Job& job : jobs) {
    job.t->set_packed(std::shared_ptr<const void>(storage, storage.get() + job.offset));
    packed_data_.insert(job.t->raw());
  }
  return done;
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

StatusOr<std::unique_ptr<KvPool>> Model::NewKvPool(int32_t block_tokens, int64_t budget_bytes, DType dtype) const {
  // Attention reads a kv head's slice of a row: a quantized cache's blocks must not straddle heads.
  const int64_t block = Info(dtype).block_size;
  if (config_.head_dim % block != 0 || config_.head_dim_v % block != 0) {
    return InvalidArgument(StrFormat("a %s KV cache needs heads in blocks of %lld; this model's heads are %lld "
                                     "(keys) and %lld (values) long: use --kv-type f16",
                                     std::string(DTypeName(dtype)).c_str(), static_cast<long long>(block),
                                     static_cast<long long>(config_.head_dim),
                                     static_cast<long long>(config_.head_dim_v)));
  }
  return KvPool::Create(config_.n_layers, config_.k_dim(), config_.v_dim(), block_tokens, budget_bytes, dtype);
}

int64_t Model::LogitRows(std::span<const ForwardSeq> seqs) {
  int64_t n = 0;
  for (const ForwardSeq& s : seqs) n += s.all_logits ? s.n_tokens : 1;
  return n;
}

Status Model::Forward(ops::Context& ctx, std::span<const ForwardSeq> seqs, KvPool& kv, Tensor& logits) {
  if (seqs.empty()) return InvalidArgument("forward: no sequences");
  if (kv.n_layers() != config_.n_layers || kv.k_dim() != config_.k_dim() || kv.v_dim() != config_.v_dim()) {
    return InvalidArgument(StrFormat("forward: the KV pool has %lld layers of %lld/%lld floats, the model needs %lld of %lld/%lld",
                                     static_cast<long long>(kv.n_layers()), static_cast<long long>(kv.k_dim()),
                                     static_cast<long long>(kv.v_dim()), static_cast<long long>(config_.n_layers),
                                     static_cast<long long>(config_.k_dim()), static_cast<long long>(config_.v_dim())));
  }
  int64_t n = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const ForwardSeq& s = seqs[i];
    if (s.n_tokens <= 0 || s.table == nullptr) {
      return InvalidArgument(StrFormat("forward: sequence #%zu has no tokens or no block table", i));
    }
    for (int64_t t = 0; t < s.n_tokens; ++t) {
      if (s.tokens[t] < 0 || s.tokens[t] >= config_.n_vocab) {
        return InvalidArgument(StrFormat("forward: sequence #%zu, token #%lld has id %d, outside the vocabulary [0, %lld)",
                                         i, static_cast<long long>(t), s.tokens[t],
                                         static_cast<long long>(config_.n_vocab)));
      }
    }
    const int64_t end = s.table->n_tokens + s.n_tokens;
    if (KvPool::BlocksFor(end, kv.block_tokens()) > static_cast<int64_t>(s.table->blocks.size())) {
      return FailedPrecondition(StrFormat("forward: sequence #%zu reaches position %lld, its table holds %zu blocks of %d "
                                          "(KvPool::Reserve them first)",
                                          i, static_cast<long long>(end), s.table->blocks.size(), kv.block_tokens()));
    }
    for (int32_t b : s.table->blocks) {
      if (b < 0 || b >= kv.total_blocks()) {
        return InvalidArgument(StrFormat("forward: sequence #%zu's table names block %d of %d", i, b, kv.total_blocks()));
      }
    }
    n += s.n_tokens;
  }
  ATRIUM_CHECK(logits.dtype() == DType::kF32 && logits.rows() == LogitRows(seqs) && logits.cols() == config_.n_vocab,
               "logits buffer %s", logits.ShapeString().c_str());
  std::lock_guard<std::mutex> lock(mu_);
  Activations& a = acts_;
  a.Ensure(config_, n);
  a.tokens.clear();
  a.pos.clear();
  a.slots.clear();
  a.seqs.clear();
  a.logit_rows.clear();
  for (const ForwardSeq& s : seqs) {
    const int64_t row0 = static_cast<int64_t>(a.tokens.size()), pos0 = s.table->n_tokens;
    for (int64_t t = 0; t < s.n_tokens; ++t) {
      a.tokens.push_back(s.tokens[t]);
      a.pos.push_back(static_cast<int32_t>(pos0 + t));
      a.slots.push_back(kv.Slot(*s.table, pos0 + t));
      if (s.all_logits || t + 1 == s.n_tokens) a.logit_rows.push_back(row0 + t);
    }
    a.seqs.push_back(ops::AttentionSeq{row0, s.n_tokens, pos0, pos0 + s.n_tokens, s.table->blocks.data()});
  }
  const ForwardArgs args{config_, weights_, ctx, a, n, kv, logits};
  switch (config_.arch) {
    case Arch::kLlama:
    case Arch::kQwen2: LlamaForward(args); break;
    case Arch::kGemma3: Gemma3Forward(args); break;
  }
  for (const ForwardSeq& s : seqs) s.table->n_tokens += s.n_tokens;
  return OkStatus();
}

Status Model::Forward(ops::Context& ctx, const int32_t* tokens, int64_t n_tokens, KvCache& kv, Tensor& logits,
                      bool all_logits) {
  if (n_tokens <= 0) return InvalidArgument("forward: no tokens");
  if (kv.size() + n_tokens > kv.capacity()) {
    return ResourceExhausted(StrFormat("forward: %lld tokens at position %lld exceed the context of %lld",
                                       static_cast<long long>(n_tokens), static_cast<long long>(kv.size()),
                                       static_cast<long long>(kv.capacity())));
  }
  const ForwardSeq seq{tokens, n_tokens, &kv.table(), all_logits};
  return Forward(ctx, std::span<const ForwardSeq>(&seq, 1), kv.pool(), logits);
}

}  // namespace atrium

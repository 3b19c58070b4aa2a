#include "runtime/ops.h"

#include "kernels/kv_q8.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

namespace atrium::ops {
namespace {

// Below this many floats an elementwise op runs on the calling thread: the
// hand-off to the pool (about 1 us) costs more than the work. 16K: a batch
// of 16 tokens' rows of SmolLM2's 576-wide residual splits; one token's
// never does.
constexpr int64_t kParallelElementwise = 1 << 14;

// MatMulShared's claimed path takes this many weights at most (q, k, v);
// more run as chunks of rows end to end.
constexpr size_t kMaxClaimedTargets = 4;

// The device switch. The CPU path is always compiled; CUDA kernels plug in
// here when kernels/cuda/ lands.
const kernels::CpuKernels& CpuOrDie(const Context& ctx) {
  switch (ctx.device()) {
    case Device::kCpu: return kernels::Cpu();
    case Device::kCuda: break;
  }
  ATRIUM_CHECK(false, "device %d has no kernels in this build", static_cast<int>(ctx.device()));
  __builtin_unreachable();
}

void CheckF32(const Tensor& t, const char* what) {
  ATRIUM_CHECK(t.defined() && t.dtype() == DType::kF32 && t.contiguous(), "%s must be contiguous f32, is %s",
               what, t.ShapeString().c_str());
}

// Runs fn over [0, n) elements, split across threads when it is worth it.
template <typename Fn>
void Elementwise(Context& ctx, int64_t n, Fn&& fn) {
  if (n < kParallelElementwise || ctx.n_threads() == 1) {
    fn(0, n);
    return;
  }
  ctx.pool().ParallelFor(n, 64, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

// Runs fn over whole rows [0, rows), split across threads when there is
// enough work in all and at least two rows a thread.
template <typename Fn>
void ByRows(Context& ctx, int64_t rows, int64_t row_len, Fn&& fn) {
  if (rows < 2 * ctx.n_threads() || rows * row_len < kParallelElementwise) {
    fn(0, rows);
    return;
  }
  ctx.pool().ParallelFor(rows, 1, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

}  // namespace

Context::Context(int n_threads, Device device)
    : device_(device), pool_(std::make_unique<ThreadPool>(n_threads)) {
  thread_scratch_.resize(pool_->size());
}

uint8_t* Context::Scratch(size_t bytes) {
  if (scratch_.size() < bytes) scratch_.resize(bytes);
  return scratch_.data();
}

float* Context::ThreadScratch(int thread, size_t n_floats) {
  std::vector<float>& s = thread_scratch_[thread];
  if (s.size() < n_floats) s.resize(n_floats);
  return s.data();
}

void MatMul(Context& ctx, Tensor& out, const Tensor& x, const Tensor& w) { MatMulShared(ctx, x, {{&out, &w}}); }

void MatMulShared(Context& ctx, const Tensor& x, std::initializer_list<MatMulTarget> targets,
                  const RowPrologue& prologue) {
  CheckF32(x, "matmul x");
  const int64_t n_tokens = x.rows(), n_in = x.cols();
  ATRIUM_CHECK(targets.size() > 0, "matmul without a weight");
  const DType partner = kernels::DotPartner(targets.begin()->w->dtype());
  int64_t total_rows = 0;
  for (const MatMulTarget& t : targets) {
    CheckF32(*t.out, "matmul out");
    ATRIUM_CHECK(t.w->ndim() == 2 && t.w->contiguous(), "matmul weight must be 2-D, is %s", t.w->ShapeString().c_str());
    ATRIUM_CHECK(t.w->dim(1) == n_in && t.out->rows() == n_tokens && t.out->cols() == t.w->dim(0),
                 "matmul shapes: out %s = x %s . w %s^T", t.out->ShapeString().c_str(), x.ShapeString().c_str(),
                 t.w->ShapeString().c_str());
    total_rows += t.w->dim(0);
  }
  // Weights that want their input in different forms run one by one.
  bool mixed = false;
  for (const MatMulTarget& t : targets) mixed = mixed || kernels::DotPartner(t.w->dtype()) != partner;
  if (mixed || (prologue && partner == DType::kF32)) {
    // No quantizing pass to run the prologue in: a pass of its own.
    if (prologue) ByRows(ctx, n_tokens, n_in, prologue);
    if (!mixed) return MatMulShared(ctx, x, targets);
    for (const MatMulTarget& one : targets) MatMulShared(ctx, x, {one});
    return;
  }
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  const void* xq = x.raw();
  int64_t xq_stride = x.row_bytes();
  if (partner != DType::kF32) {
    xq_stride = RowBytes(partner, n_in);
    uint8_t* buf = ctx.Scratch(static_cast<size_t>(xq_stride * n_tokens));
    const float* xf = x.data<float>();
    auto quantize = [&](int64_t b, int64_t e) {
      if (prologue) prologue(b, e);
      for (int64_t t = b; t < e; ++t) k.quantize_row(partner, buf + t * xq_stride, xf + t * n_in, n_in);
    };
    if (n_tokens >= 4 * ctx.n_threads()) {
      ctx.pool().ParallelFor(n_tokens, 1, [&](int64_t b, int64_t e, int) { quantize(b, e); });
    } else {
      quantize(0, n_tokens);
    }
    xq = buf;
  }
  // Several tokens over packed weights: every thread takes 16-row tiles of
  // each target in turn as it comes free (WorkClaims), preparing the
  // activations once for all targets; a thread done with one target goes
  // on to the next without waiting.
  bool all_packed = true;
  for (const MatMulTarget& t : targets) all_packed = all_packed && t.w->packed() != nullptr;
  if (n_tokens > 1 && all_packed && targets.size() <= kMaxClaimedTargets) {
    // On the stack: a step makes a hundred of these calls.
    std::array<std::optional<WorkClaims>, kMaxClaimedTargets> claims;
    size_t i = 0;
    for (const MatMulTarget& t : targets) claims[i++].emplace((t.w->dim(0) + 15) / 16, ctx.n_threads());
    ctx.pool().Run([&](int) {
      size_t c = 0;
      for (const MatMulTarget& t : targets) {
        // After the first target, the same activations: prepared once.
        k.matmul_packed_claimed(t.out->mutable_data<float>(), t.w->dim(0), t.w->packed(), t.w->dtype(), n_in, xq,
                                xq_stride, n_tokens, t.w->dim(0), *claims[c], c > 0);
        ++c;
      }
    });
    return;
  }
  // Rows of all targets, end to end; a chunk may span two targets. One
  // token takes chunks of 16 rows or more; several tokens over unpacked
  // weights prepare their activations once per call (kernels' transposed
  // tiles), so each thread takes one chunk.
  const int64_t grain =
      n_tokens == 1 ? 16 : (total_rows + 16 * ctx.n_threads() - 1) / (16 * ctx.n_threads()) * 16;
  ctx.pool().ParallelFor(total_rows, grain, [&](int64_t b, int64_t e, int) {
    int64_t first = 0;
    for (const MatMulTarget& t : targets) {
      const int64_t n_out = t.w->dim(0);
      const int64_t lo = std::max(b, first) - first, hi = std::min(e, first + n_out) - first;
      if (lo < hi && t.w->packed() != nullptr) {
        k.matmul_packed(t.out->mutable_data<float>(), n_out, t.w->packed(), t.w->dtype(), n_in, xq, xq_stride,
                        n_tokens, lo, hi);
      } else if (lo < hi) {
        k.matmul_rows(t.out->mutable_data<float>(), n_out, t.w->raw(), t.w->dtype(), n_in, xq, xq_stride,
                      n_tokens, lo, hi);
      }
      first += n_out;
    }
  });
}

void Embed(Context& ctx, Tensor& out, const Tensor& table, const int32_t* ids, int64_t n) {
  CheckF32(out, "embed out");
  ATRIUM_CHECK(out.rows() == n && out.cols() == table.cols(), "embed shapes");
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  for (int64_t i = 0; i < n; ++i) {
    ATRIUM_CHECK(ids[i] >= 0 && ids[i] < table.rows(), "token id %d out of range", ids[i]);
    k.dequantize_row(table.dtype(), out.mutable_data<float>() + i * out.cols(), table.row(ids[i]),
                     table.cols());
  }
}

void RmsNorm(Context& ctx, Tensor& out, const Tensor& x, const Tensor* w, float eps) {
  CheckF32(out, "rms_norm out");
  CheckF32(x, "rms_norm x");
  const int64_t dim = w != nullptr ? w->numel() : x.cols();
  ATRIUM_CHECK(x.numel() % dim == 0 && out.numel() == x.numel(), "rms_norm shapes: x %s, w of %lld",
               x.ShapeString().c_str(), static_cast<long long>(dim));
  if (w != nullptr) CheckF32(*w, "rms_norm weight");
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  const int64_t rows = x.numel() / dim;
  const float* wd = w != nullptr ? w->data<float>() : nullptr;
  const float* xd = x.data<float>();
  float* od = out.mutable_data<float>();
  ByRows(ctx, rows, dim, [&](int64_t b, int64_t e) { k.rms_norm(od + b * dim, xd + b * dim, wd, eps, e - b, dim); });
}

void RmsNormRegion(Context& ctx, Tensor& out, const Tensor& x, const Tensor& w, float eps, const Region& r) {
  const int64_t dim = w.numel();
  ATRIUM_CHECK(out.cols() == x.cols() && r.col0 % dim == 0 && r.n_cols % dim == 0,
               "rms_norm region: columns [%lld, +%lld) in pieces of %lld", static_cast<long long>(r.col0),
               static_cast<long long>(r.n_cols), static_cast<long long>(dim));
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  for (int64_t i = r.row0; i < r.row0 + r.n_rows; ++i) {
    k.rms_norm(out.mutable_data<float>() + i * out.cols() + r.col0, x.data<float>() + i * x.cols() + r.col0,
               w.data<float>(), eps, r.n_cols / dim, dim);
  }
}

void RopeRegion(Context& ctx, Tensor& x, int64_t head_dim, const int32_t* pos, int64_t rot_dim, float freq_base,
                float freq_scale, RopeLayout layout, const Region& r) {
  ATRIUM_CHECK(r.col0 % head_dim == 0 && r.n_cols % head_dim == 0 && rot_dim <= head_dim,
               "rope region: columns [%lld, +%lld) in heads of %lld", static_cast<long long>(r.col0),
               static_cast<long long>(r.n_cols), static_cast<long long>(head_dim));
  CpuOrDie(ctx).rope(x.mutable_data<float>() + r.row0 * x.cols() + r.col0, r.n_rows, r.n_cols / head_dim, head_dim,
                     x.cols(), pos + r.row0, rot_dim, freq_base, freq_scale, layout);
}

void Attention(Context& ctx, Tensor& out, const Tensor& q, const KvRows& kv, const AttentionSeq* seqs,
               int64_t n_seqs, const AttentionShape& s, const AttentionPrologue& prologue) {
  CheckF32(out, "attention out");
  CheckF32(q, "attention q");
  ATRIUM_CHECK(q.cols() == s.n_heads * s.head_dim && out.cols() == q.cols() && out.rows() == q.rows() &&
                   s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0 && kv.stride >= s.n_kv_heads * s.head_dim &&
                   s.head_dim % Info(kv.dtype).block_size == 0 &&
                   (kv.dtype != DType::kQ8_0 || kv.block_tokens % kernels::kKvQ8Rows == 0),
               "attention shapes: q %s, out %s, a %s cache of head_dim %lld, pages of %lld", q.ShapeString().c_str(),
               out.ShapeString().c_str(), std::string(DTypeName(kv.dtype)).c_str(),
               static_cast<long long>(s.head_dim), static_cast<long long>(kv.block_tokens));
  for (int64_t i = 0; i < n_seqs; ++i) {
    const AttentionSeq& a = seqs[i];
    ATRIUM_CHECK(a.row0 >= 0 && a.n_tokens >= 0 && a.row0 + a.n_tokens <= q.rows() && a.q_pos0 + a.n_tokens <= a.n_kv &&
                     (a.blocks == nullptr || kv.block_tokens > 0),
                 "attention sequence %lld: rows [%lld, +%lld) of %lld, %lld keys", static_cast<long long>(i),
                 static_cast<long long>(a.row0), static_cast<long long>(a.n_tokens),
                 static_cast<long long>(q.rows()), static_cast<long long>(a.n_kv));
  }
  const kernels::CpuKernels& kt = CpuOrDie(ctx);
  float* od = out.mutable_data<float>();
  const float* qd = q.data<float>();
  // Work units: (sequence, head range, token range). The kernel reads K and V
  // once for all query heads that share a KV head, so a unit takes the whole
  // group, unless there are too few units to keep the threads busy (decode of
  // one sequence with one KV head), where single heads are split out instead.
  // Long prompts are also cut into token ranges of equal causal work: a query
  // at position p reads p keys, so range i ends at n * sqrt((i + 1) / blocks).
  const int64_t group = s.n_heads / s.n_kv_heads;
  int64_t max_tokens = 0;
  for (int64_t i = 0; i < n_seqs; ++i) max_tokens = std::max(max_tokens, seqs[i].n_tokens);
  const int64_t token_blocks = max_tokens >= 64 ? ctx.n_threads() : 1;
  const bool whole_groups = n_seqs * s.n_kv_heads * token_blocks >= ctx.n_threads() || group == 1;
  const int64_t head_units = whole_groups ? s.n_kv_heads : s.n_heads;
  const int64_t heads_per_unit = whole_groups ? group : 1;
  const int64_t units_per_seq = head_units * token_blocks;
  auto token_edge = [&](int64_t n_tokens, int64_t i) {
    return i >= token_blocks ? n_tokens
                             : static_cast<int64_t>(static_cast<double>(n_tokens) *
                                                    std::sqrt(static_cast<double>(i) / token_blocks));
  };
  // A unit of one whole group of one sequence's tokens makes its own inputs.
  const bool unit_prologue = prologue && whole_groups && token_blocks == 1;
  if (prologue && !unit_prologue) {
    ctx.pool().ParallelFor(n_seqs, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) prologue(seqs[i], 0, s.n_kv_heads);
    });
  }
  // Unit u: its sequence, first query head and token range.
  struct Unit {
    const AttentionSeq* a;
    int64_t h0, t0, t1;
  };
  auto unit = [&](int64_t u) {
    const AttentionSeq& a = seqs[u / units_per_seq];
    const int64_t tb = u % token_blocks;
    return Unit{&a, (u % units_per_seq / token_blocks) * heads_per_unit, token_edge(a.n_tokens, tb),
                token_edge(a.n_tokens, tb + 1)};
  };
  // Unit u as the kernel of the unit before it sees it, to prefetch its first keys.
  auto as_next = [&](const Unit& n) {
    return kernels::AttentionNext{kv.k, kv.v, n.a->blocks, n.a->q_pos0 + n.t0, n.a->n_kv, n.h0 / group};
  };
  ctx.pool().ParallelFor(n_seqs * units_per_seq, 1, [&](int64_t b, int64_t e, int thread) {
    for (int64_t u = b; u < e; ++u) {
      const Unit w = unit(u);
      const AttentionSeq& a = *w.a;
      if (unit_prologue) prologue(a, w.h0 / group, w.h0 / group + 1);
      if (w.t0 == w.t1) continue;
      const kernels::AttentionNext next = u + 1 < e ? as_next(unit(u + 1)) : kernels::AttentionNext{};
      float* scratch = ctx.ThreadScratch(thread, static_cast<size_t>(a.n_kv));
      kt.attention(od + (a.row0 + w.t0) * out.cols(), out.cols(), qd + (a.row0 + w.t0) * q.cols(), q.cols(), kv.k,
                   kv.v, kv.dtype, kv.stride, a.blocks, kv.block_tokens, w.t1 - w.t0, a.q_pos0 + w.t0, a.n_kv,
                   s.n_heads, s.n_kv_heads, s.head_dim, s.scale, s.softcap, s.window, w.h0, w.h0 + heads_per_unit,
                   scratch, &next);
    }
  });
}

void ScatterRegion(Context& ctx, void* dst, DType dst_type, int64_t dst_stride, const Tensor& src,
                   const int64_t* rows, const Region& r, kernels::KvSide side) {
  const int64_t block = Info(dst_type).block_size;
  ATRIUM_CHECK(r.col0 + r.n_cols <= dst_stride && r.col0 % block == 0 && r.n_cols % block == 0 &&
                   dst_stride % block == 0 &&
                   (dst_type == DType::kF32 || dst_type == DType::kF16 || dst_type == DType::kQ8_0),
               "scatter region: columns [%lld, +%lld) into a %s stride of %lld", static_cast<long long>(r.col0),
               static_cast<long long>(r.n_cols), std::string(DTypeName(dst_type)).c_str(),
               static_cast<long long>(dst_stride));
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  const int64_t row_bytes = RowBytes(dst_type, dst_stride), col_bytes = RowBytes(dst_type, r.col0);
  for (int64_t i = r.row0; i < r.row0 + r.n_rows; ++i) {
    const float* from = src.data<float>() + i * src.cols() + r.col0;
    if (dst_type == DType::kQ8_0) {
      kernels::KvQ8StoreRow(side, dst, dst_stride, rows[i], r.col0, from, r.n_cols);
      continue;
    }
    uint8_t* at = static_cast<uint8_t*>(dst) + rows[i] * row_bytes + col_bytes;
    if (dst_type == DType::kF32) {
      std::copy_n(from, r.n_cols, reinterpret_cast<float*>(at));
    } else {
      k.quantize_row(dst_type, at, from, r.n_cols);
    }
  }
}

void GatherRows(Context& ctx, Tensor& dst, const Tensor& src, const int64_t* rows) {
  CheckF32(dst, "gather dst");
  CheckF32(src, "gather src");
  ATRIUM_CHECK(dst.cols() == src.cols(), "gather: rows of %lld floats into rows of %lld",
               static_cast<long long>(src.cols()), static_cast<long long>(dst.cols()));
  const float* s = src.data<float>();
  float* d = dst.mutable_data<float>();
  for (int64_t i = 0; i < dst.rows(); ++i) {
    ATRIUM_CHECK(rows[i] >= 0 && rows[i] < src.rows(), "gather: row %lld of %lld", static_cast<long long>(rows[i]),
                 static_cast<long long>(src.rows()));
    std::copy_n(s + rows[i] * src.cols(), src.cols(), d + i * dst.cols());
  }
}

namespace {
void GatedActRegion(Tensor& out, const Tensor& gate, const Tensor& up, const Region& r,
                    void (*fn)(float*, const float*, const float*, int64_t)) {
  ATRIUM_CHECK(gate.cols() == out.cols() && up.cols() == out.cols() && gate.rows() >= r.row0 + r.n_rows &&
                   up.rows() >= r.row0 + r.n_rows && r.col0 + r.n_cols <= out.cols(),
               "gated activation region: gate %s, up %s into %s", gate.ShapeString().c_str(),
               up.ShapeString().c_str(), out.ShapeString().c_str());
  for (int64_t i = r.row0; i < r.row0 + r.n_rows; ++i) {
    const int64_t at = i * out.cols() + r.col0;
    fn(out.mutable_data<float>() + at, gate.data<float>() + at, up.data<float>() + at, r.n_cols);
  }
}
}  // namespace

void SiluMulRegion(Context& ctx, Tensor& out, const Tensor& gate, const Tensor& up, const Region& r) {
  GatedActRegion(out, gate, up, r, CpuOrDie(ctx).silu_mul);
}

void GeluTanhMulRegion(Context& ctx, Tensor& out, const Tensor& gate, const Tensor& up, const Region& r) {
  GatedActRegion(out, gate, up, r, CpuOrDie(ctx).gelu_tanh_mul);
}

void Add(Context& ctx, Tensor& out, const Tensor& a, const Tensor& b) {
  CheckF32(out, "add out");
  CheckF32(a, "add a");
  CheckF32(b, "add b");
  ATRIUM_CHECK(out.numel() == a.numel() && b.numel() == a.numel(), "add shapes");
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  float* o = out.mutable_data<float>();
  const float* ad = a.data<float>();
  const float* bd = b.data<float>();
  Elementwise(ctx, out.numel(), [&](int64_t s, int64_t e) { k.add(o + s, ad + s, bd + s, e - s); });
}

void AddRegion(Context& ctx, Tensor& x, const Tensor& y, const Region& r) {
  ATRIUM_CHECK(y.cols() == x.cols() && y.rows() >= r.row0 + r.n_rows, "add region: %s into %s",
               y.ShapeString().c_str(), x.ShapeString().c_str());
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  for (int64_t i = r.row0; i < r.row0 + r.n_rows; ++i) {
    float* row = x.mutable_data<float>() + i * x.cols() + r.col0;
    k.add(row, row, y.data<float>() + i * y.cols() + r.col0, r.n_cols);
  }
}

void AddBiasRegion(Context& ctx, Tensor& x, const Tensor& bias, const Region& r) {
  ATRIUM_CHECK(bias.numel() == x.cols(), "bias of %lld for rows of %lld", static_cast<long long>(bias.numel()),
               static_cast<long long>(x.cols()));
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  for (int64_t i = r.row0; i < r.row0 + r.n_rows; ++i) {
    float* row = x.mutable_data<float>() + i * x.cols() + r.col0;
    k.add(row, row, bias.data<float>() + r.col0, r.n_cols);
  }
}

void ScaleRegion(Context& ctx, Tensor& x, float s, const Region& r) {
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  for (int64_t i = r.row0; i < r.row0 + r.n_rows; ++i) k.scale(x.mutable_data<float>() + i * x.cols() + r.col0, r.n_cols, s);
}

void Scale(Context& ctx, Tensor& x, float s) {
  CheckF32(x, "scale x");
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  float* xd = x.mutable_data<float>();
  Elementwise(ctx, x.numel(), [&](int64_t b, int64_t e) { k.scale(xd + b, e - b, s); });
}

void SoftCap(Context& ctx, Tensor& x, float cap) {
  CheckF32(x, "soft_cap x");
  const kernels::CpuKernels& k = CpuOrDie(ctx);
  float* xd = x.mutable_data<float>();
  Elementwise(ctx, x.numel(), [&](int64_t b, int64_t e) { k.soft_cap(xd + b, e - b, cap); });
}

}  // namespace atrium::ops

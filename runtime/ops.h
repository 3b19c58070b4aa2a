// The ops facade: checks shapes (a mismatch is a bug: ATRIUM_CHECK), then one
// switch on the device calls a kernel. Models call only these, so a CUDA
// backend slots in here without touching models/.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/kv_q8.h"
#include "runtime/tensor.h"
#include "runtime/thread_pool.h"

namespace atrium::ops {

using kernels::RopeLayout;

// Where ops run and their reusable scratch memory: buffers grow to the
// largest request and are then reused, so a decode step allocates nothing.
class Context {
 public:
  explicit Context(int n_threads = 0, Device device = Device::kCpu);
  Device device() const { return device_; }
  ThreadPool& pool() { return *pool_; }
  int n_threads() const { return pool_->size(); }
  // Shared scratch (e.g. the quantized activations of a matmul).
  uint8_t* Scratch(size_t bytes);
  // Per-thread float scratch.
  float* ThreadScratch(int thread, size_t n_floats);

 private:
  Device device_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<uint8_t> scratch_;
  std::vector<std::vector<float>> thread_scratch_;
};

// out [n_tokens, n_out] f32 = x [n_tokens, n_in] f32 . w [n_out, n_in]^T (w any weight dtype).
void MatMul(Context& ctx, Tensor& out, const Tensor& x, const Tensor& w);

// Several products of one input (q, k and v; gate and up): x is quantized
// once and all their rows run in one parallel pass, one hand-off to the
// threads instead of one each. out_i = x . w_i^T.
struct MatMulTarget {
  Tensor* out;
  const Tensor* w;
};
//
// prologue, when given, makes x's rows first: it is called on rows [begin,
// end) of x just before they are quantized, by the thread that quantizes
// them, inside the matmul's own parallel pass over its input (a residual add
// and a norm: one hand-off to the threads instead of three, and no serial
// pass between matmuls). It must write only those rows of its outputs, and
// call only the *Region ops below (they never use the pool).
using RowPrologue = std::function<void(int64_t begin, int64_t end)>;
void MatMulShared(Context& ctx, const Tensor& x, std::initializer_list<MatMulTarget> targets,
                  const RowPrologue& prologue = nullptr);
// out [n, dim] f32 = rows ids[0..n) of table [n_vocab, dim] (any dtype), dequantized.
void Embed(Context& ctx, Tensor& out, const Tensor& table, const int32_t* ids, int64_t n);
// Each row of x normalized (row length = w's length); out may alias x. w may be null.
void RmsNorm(Context& ctx, Tensor& out, const Tensor& x, const Tensor* w, float eps);
struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;    // applied to q.k
  float softcap = 0.0f;  // 0 = none
  int64_t window = 0;    // 0 = full causal attention
};
// One layer's keys and values: rows of n_kv_heads * head_dim elements of
// dtype (f32, f16, or q8_0 in kernels/kv_q8.h's layout when head_dim is a
// multiple of 32 and block_tokens of 16), stride elements apart. A sequence's key j is row j of
// a contiguous cache (blocks null), or row
// blocks[j / block_tokens] * block_tokens + j % block_tokens of a paged one.
struct KvRows {
  const void* k;
  const void* v;
  int64_t stride;
  int64_t block_tokens;
  DType dtype = DType::kF32;
};
// One sequence of a batched attention: its query rows [row0, row0 + n_tokens)
// of q / out sit at positions q_pos0.., and its keys 0..n_kv-1 are visible
// (causally, and within the window).
struct AttentionSeq {
  int64_t row0;
  int64_t n_tokens;
  int64_t q_pos0;
  int64_t n_kv;
  const int32_t* blocks;  // its block table (null: contiguous)
};
// Makes what attention reads for one sequence and KV heads [kv_head0,
// kv_head1): the rope of those heads' queries and keys, their new keys and
// values written to the cache. Called, like RowPrologue, on a pool thread
// (only *Region ops), just before the work unit that reads them, in the same
// parallel pass; in a pass of its own first when units split a group's heads
// or a sequence's tokens.
using AttentionPrologue = std::function<void(const AttentionSeq& seq, int64_t kv_head0, int64_t kv_head1)>;
// out, q: [total query rows, n_heads * head_dim]. All sequences in one
// parallel pass, whole GQA groups a work unit.
void Attention(Context& ctx, Tensor& out, const Tensor& q, const KvRows& kv, const AttentionSeq* seqs,
               int64_t n_seqs, const AttentionShape& shape, const AttentionPrologue& prologue = nullptr);

// Row rows[i] of src is copied to row i of dst [n, cols].
void GatherRows(Context& ctx, Tensor& dst, const Tensor& src, const int64_t* rows);

// ---- One region of a 2-D f32 tensor, on the calling thread (never the
// pool): the pieces prologues are made of. Rows [row0, row0 + n_rows),
// columns [col0, col0 + n_cols); the whole-tensor ops above run the same
// kernels over every row, so the results are the same bit for bit.
struct Region {
  int64_t row0 = 0, n_rows = 0, col0 = 0, n_cols = 0;
  static Region Rows(const Tensor& t, int64_t begin, int64_t end) { return {begin, end - begin, 0, t.cols()}; }
};
// x += y (y shaped as x).
void AddRegion(Context& ctx, Tensor& x, const Tensor& y, const Region& r);
// x[row, col] += bias[col].
void AddBiasRegion(Context& ctx, Tensor& x, const Tensor& bias, const Region& r);
// out = x normalized in pieces of w's length (a head's, for per-head norms;
// the region's columns whole pieces); out may alias x.
void RmsNormRegion(Context& ctx, Tensor& out, const Tensor& x, const Tensor& w, float eps, const Region& r);
void ScaleRegion(Context& ctx, Tensor& x, float s, const Region& r);
// The region's columns are whole heads; pos[row] is a row's position.
void RopeRegion(Context& ctx, Tensor& x, int64_t head_dim, const int32_t* pos, int64_t rot_dim, float freq_base,
                float freq_scale, RopeLayout layout, const Region& r);
// Row i of src's region to row rows[i] of dst, the same columns (dst rows
// dst_stride elements of dst_type apart: f32, f16, or q8_0 with the columns
// and the stride in whole blocks of 32, in kernels/kv_q8.h's layout for
// `side`, the keys or the values of a cache; f32 and f16 rows ignore it).
void ScatterRegion(Context& ctx, void* dst, DType dst_type, int64_t dst_stride, const Tensor& src,
                   const int64_t* rows, const Region& r, kernels::KvSide side);
// out = act(gate) * up, all three shaped alike; out may alias gate.
void SiluMulRegion(Context& ctx, Tensor& out, const Tensor& gate, const Tensor& up, const Region& r);
void GeluTanhMulRegion(Context& ctx, Tensor& out, const Tensor& gate, const Tensor& up, const Region& r);

void Add(Context& ctx, Tensor& out, const Tensor& a, const Tensor& b);
void Scale(Context& ctx, Tensor& x, float s);
void SoftCap(Context& ctx, Tensor& x, float cap);

}  // namespace atrium::ops

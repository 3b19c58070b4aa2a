// The ops' prologues (ops.h): work fused into a parallel pass gives the
// same results as the same work done first, and runs exactly once per row
// (MatMulShared) or per (sequence, KV head) (Attention), whichever way the
// pass splits its work.
#include "runtime/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

namespace atrium::ops {
namespace {

Tensor Random(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t = Tensor::Empty(DType::kF32, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  float* d = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = dist(rng);
  return t;
}

std::vector<float> Values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

// A quantized weight matrix [rows, n_in] made from random floats.
Tensor QuantizedWeight(DType type, int64_t rows, int64_t n_in, uint32_t seed) {
  const Tensor f = Random({rows, n_in}, seed);
  Tensor w = Tensor::Empty(type, {rows, n_in});
  for (int64_t r = 0; r < rows; ++r) {
    kernels::Cpu().quantize_row(type, static_cast<uint8_t*>(w.mutable_raw()) + r * w.row_bytes(), f.data<float>() + r * n_in,
                                n_in);
  }
  return w;
}

TEST(OpsTest, MatMulPrologueEqualsTheSameWorkDoneFirst) {
  Context ctx(2);
  for (const int64_t n : {1, 3, 16, 40}) {  // serial and parallel quantizing passes
    SCOPED_TRACE(n);
    const Tensor x = Random({n, 64}, 1), add = Random({n, 64}, 2), norm = Random({64}, 3);
    const Tensor w1 = QuantizedWeight(DType::kQ8_0, 48, 64, 4), w2 = QuantizedWeight(DType::kQ4_1, 32, 64, 5);

    // Reference: x += add, h = RmsNorm(x), then the matmuls.
    Tensor x_ref = Tensor::Empty(DType::kF32, {n, 64}), h_ref = Tensor::Empty(DType::kF32, {n, 64});
    std::copy_n(x.data<float>(), x.numel(), x_ref.mutable_data<float>());
    Add(ctx, x_ref, x_ref, add);
    RmsNorm(ctx, h_ref, x_ref, &norm, 1e-5f);
    Tensor o1_ref = Tensor::Empty(DType::kF32, {n, 48}), o2_ref = Tensor::Empty(DType::kF32, {n, 32});
    MatMulShared(ctx, h_ref, {{&o1_ref, &w1}});
    MatMulShared(ctx, h_ref, {{&o2_ref, &w2}});

    // Fused: the same, row by row inside the matmul's pass. Q8_0 and Q4_1
    // take different activation forms, so this also covers the one-by-one
    // path, where the prologue runs in a pass of its own.
    for (const bool mixed : {false, true}) {
      SCOPED_TRACE(mixed ? "mixed weights" : "one weight");
      Tensor xf = Tensor::Empty(DType::kF32, {n, 64}), h = Tensor::Empty(DType::kF32, {n, 64});
      std::copy_n(x.data<float>(), x.numel(), xf.mutable_data<float>());
      std::mutex mu;
      std::multiset<int64_t> rows;
      auto prologue = [&](int64_t b, int64_t e) {
        {
          std::lock_guard<std::mutex> lock(mu);
          for (int64_t r = b; r < e; ++r) rows.insert(r);
        }
        const Region region = Region::Rows(xf, b, e);
        AddRegion(ctx, xf, add, region);
        RmsNormRegion(ctx, h, xf, norm, 1e-5f, region);
      };
      Tensor o1 = Tensor::Empty(DType::kF32, {n, 48}), o2 = Tensor::Empty(DType::kF32, {n, 32});
      if (mixed) {
        MatMulShared(ctx, h, {{&o1, &w1}, {&o2, &w2}}, prologue);
        EXPECT_EQ(Values(o2), Values(o2_ref));
      } else {
        MatMulShared(ctx, h, {{&o1, &w1}}, prologue);
      }
      EXPECT_EQ(Values(o1), Values(o1_ref));
      EXPECT_EQ(Values(xf), Values(x_ref));
      ASSERT_EQ(rows.size(), static_cast<size_t>(n)) << "every row once";
      for (int64_t r = 0; r < n; ++r) EXPECT_EQ(rows.count(r), 1u) << r;
    }
  }
}

// Attention over a paged cache of one block per sequence: the new keys and
// values (rows of knew / vnew) roped and written to the cache by a
// prologue, or by the same region ops before the call.
TEST(OpsTest, AttentionPrologueEqualsTheSameWorkDoneFirst) {
  constexpr int64_t kHeads = 4, kKvHeads = 2, kHeadDim = 16, kBlock = 128, kKvDim = kKvHeads * kHeadDim;
  Context ctx(2);
  // Decode steps (one or two tokens a sequence: one unit per sequence and KV
  // head), and a long prompt (units split its tokens: a pass of its own).
  for (const std::vector<int64_t>& new_tokens : {std::vector<int64_t>{1, 2, 1}, std::vector<int64_t>{70, 1}}) {
    SCOPED_TRACE(new_tokens.size());
    const int64_t n_seqs = static_cast<int64_t>(new_tokens.size());
    std::vector<AttentionSeq> seqs;
    std::vector<int32_t> pos;
    std::vector<int64_t> slots;
    std::vector<std::vector<int32_t>> tables;
    int64_t total = 0;
    for (int64_t i = 0; i < n_seqs; ++i) tables.push_back({static_cast<int32_t>(n_seqs - 1 - i)});
    for (int64_t i = 0; i < n_seqs; ++i) {
      const int64_t past = 5 + 3 * i;  // keys already in the cache
      seqs.push_back({total, new_tokens[i], past, past + new_tokens[i], tables[i].data()});
      for (int64_t t = 0; t < new_tokens[i]; ++t) {
        pos.push_back(static_cast<int32_t>(past + t));
        slots.push_back(tables[i][0] * kBlock + past + t);
      }
      total += new_tokens[i];
    }
    const Tensor q0 = Random({total, kHeads * kHeadDim}, 7), k0 = Random({total, kKvDim}, 8),
                 v0 = Random({total, kKvDim}, 9), cache0_k = Random({n_seqs * kBlock, kKvDim}, 10),
                 cache0_v = Random({n_seqs * kBlock, kKvDim}, 11);
    const AttentionShape shape{kHeads, kKvHeads, kHeadDim, 0.25f, 0.0f, 0};
    auto copy = [](const Tensor& t) {
      Tensor c = Tensor::Empty(DType::kF32, t.shape());
      std::copy_n(t.data<float>(), t.numel(), c.mutable_data<float>());
      return c;
    };
    // What the prologue does for sequence s and KV heads [g0, g1).
    auto prepare = [&](Tensor& q, Tensor& k, const Tensor& v, Tensor& ck, Tensor& cv, const AttentionSeq& s, int64_t g0,
                       int64_t g1) {
      const int64_t group = kHeads / kKvHeads;
      const Region qr{s.row0, s.n_tokens, g0 * group * kHeadDim, (g1 - g0) * group * kHeadDim};
      const Region kr{s.row0, s.n_tokens, g0 * kHeadDim, (g1 - g0) * kHeadDim};
      RopeRegion(ctx, q, kHeadDim, pos.data(), kHeadDim, 10000.0f, 1.0f, RopeLayout::kNormal, qr);
      RopeRegion(ctx, k, kHeadDim, pos.data(), kHeadDim, 10000.0f, 1.0f, RopeLayout::kNormal, kr);
      ScatterRegion(ctx, ck.mutable_data<float>(), DType::kF32, kKvDim, k, slots.data(), kr, kernels::KvSide::kKeys);
      ScatterRegion(ctx, cv.mutable_data<float>(), DType::kF32, kKvDim, v, slots.data(), kr, kernels::KvSide::kValues);
    };

    Tensor q_ref = copy(q0), k_ref = copy(k0), ck_ref = copy(cache0_k), cv_ref = copy(cache0_v);
    for (const AttentionSeq& s : seqs) prepare(q_ref, k_ref, v0, ck_ref, cv_ref, s, 0, kKvHeads);
    Tensor out_ref = Tensor::Empty(DType::kF32, {total, kHeads * kHeadDim});
    Attention(ctx, out_ref, q_ref, KvRows{ck_ref.data<float>(), cv_ref.data<float>(), kKvDim, kBlock, DType::kF32},
              seqs.data(), n_seqs, shape);

    Tensor q = copy(q0), k = copy(k0), ck = copy(cache0_k), cv = copy(cache0_v);
    std::mutex mu;
    std::multiset<std::tuple<int64_t, int64_t>> done;  // (sequence, kv head)
    Tensor out = Tensor::Empty(DType::kF32, {total, kHeads * kHeadDim});
    Attention(ctx, out, q, KvRows{ck.data<float>(), cv.data<float>(), kKvDim, kBlock, DType::kF32}, seqs.data(),
              n_seqs, shape, [&](const AttentionSeq& s, int64_t g0, int64_t g1) {
                {
                  std::lock_guard<std::mutex> lock(mu);
                  for (int64_t g = g0; g < g1; ++g) done.insert({&s - seqs.data(), g});
                }
                prepare(q, k, v0, ck, cv, s, g0, g1);
              });
    EXPECT_EQ(Values(out), Values(out_ref));
    EXPECT_EQ(Values(ck), Values(ck_ref));
    ASSERT_EQ(done.size(), static_cast<size_t>(n_seqs * kKvHeads)) << "every (sequence, KV head) once";
    for (int64_t i = 0; i < n_seqs; ++i) {
      for (int64_t g = 0; g < kKvHeads; ++g) EXPECT_EQ(done.count({i, g}), 1u) << i << " " << g;
    }
  }
}

TEST(OpsTest, RegionOpsMatchTheWholeTensorOps) {
  Context ctx(1);
  const Tensor x = Random({5, 48}, 21), w = Random({16}, 22);
  // Per-head norms (pieces of 16) over heads 1 and 2 of rows 1..3, against
  // the whole-tensor op on the same pieces.
  Tensor whole = Tensor::Empty(DType::kF32, {5, 48});
  RmsNorm(ctx, whole, x, &w, 1e-6f);
  Tensor part = Tensor::Empty(DType::kF32, {5, 48});
  std::copy_n(x.data<float>(), x.numel(), part.mutable_data<float>());
  RmsNormRegion(ctx, part, part, w, 1e-6f, Region{1, 3, 16, 32});
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t c = 0; c < 48; ++c) {
      const bool inside = r >= 1 && r < 4 && c >= 16;
      const float want = inside ? whole.data<float>()[r * 48 + c] : x.data<float>()[r * 48 + c];
      EXPECT_EQ(part.data<float>()[r * 48 + c], want) << r << "," << c;
    }
  }
}

// The gated activations touch only their region, in place, and give the
// kernels' own results there.
TEST(OpsTest, GatedActRegionsMatchTheKernels) {
  Context ctx(1);
  const Tensor gate = Random({4, 40}, 31), up = Random({4, 40}, 32);
  using Kernel = void (*)(float*, const float*, const float*, int64_t);
  using RegionOp = void (*)(Context&, Tensor&, const Tensor&, const Tensor&, const Region&);
  for (auto [op, kernel] : {std::pair<RegionOp, Kernel>{SiluMulRegion, kernels::Cpu().silu_mul},
                            std::pair<RegionOp, Kernel>{GeluTanhMulRegion, kernels::Cpu().gelu_tanh_mul}}) {
    std::vector<float> want(static_cast<size_t>(gate.numel()));
    kernel(want.data(), gate.data<float>(), up.data<float>(), gate.numel());
    Tensor part = Tensor::Empty(DType::kF32, {4, 40});
    std::copy_n(gate.data<float>(), gate.numel(), part.mutable_data<float>());
    op(ctx, part, part, up, Region{1, 2, 8, 24});
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t c = 0; c < 40; ++c) {
        const bool inside = r >= 1 && r < 3 && c >= 8 && c < 32;
        const float expect = inside ? want[static_cast<size_t>(r * 40 + c)] : gate.data<float>()[r * 40 + c];
        EXPECT_EQ(part.data<float>()[r * 40 + c], expect) << r << "," << c;
      }
    }
  }
}

}  // namespace
}  // namespace atrium::ops

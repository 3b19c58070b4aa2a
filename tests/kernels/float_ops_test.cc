// The float ops of kernels/kernels.h: every SIMD table against the scalar
// reference (sizes with odd tails, misaligned pointers, the aliasing the
// contract allows), and the scalar reference itself against plain
// double-precision formulas.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/variants.h"
#include "kernels/kernels.h"
#include "kernels/kv_q8.h"

namespace atrium::kernels {
namespace {

const CpuKernels& Scalar() { return *CpuFor(Isa::kScalar); }

// On a CPU with AVX-512 F/DQ/VL but without VNNI, CpuFor(kAvx512) is null
// (its quant kernels need VNNI), yet the AVX-512 float code would run there:
// test it anyway through a table that holds only the float half.
const CpuKernels* Avx512FloatOnly() {
  static const CpuKernels* table = []() -> const CpuKernels* {
    if (CpuFor(Isa::kAvx512) != nullptr || CpuFor(Isa::kAvx2) == nullptr) return nullptr;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512bw")) {
      return nullptr;
    }
    static CpuKernels t = *CpuFor(Isa::kScalar);
    t.name = "avx512 (float ops only)";
    avx512::FillFloat(t);
    return &t;
  }();
  return table;
}

// Every table to compare with the scalar one; the test skips when empty.
std::vector<const CpuKernels*> SimdTables() {
  std::vector<const CpuKernels*> out;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (const CpuKernels* t = CpuFor(isa)) out.push_back(t);
  }
  if (const CpuKernels* t = Avx512FloatOnly()) out.push_back(t);
  return out;
}

#define FOR_EACH_SIMD_TABLE(t)                                              \
  const auto tables_ = SimdTables();                                       \
  if (tables_.empty()) GTEST_SKIP() << "no SIMD table on this CPU";        \
  for (const CpuKernels* t : tables_)

std::vector<int64_t> Sizes() {
  std::vector<int64_t> sizes;
  for (int64_t n = 1; n <= 67; ++n) sizes.push_back(n);
  for (int64_t n : {576, 640, 2048, 4097}) sizes.push_back(n);
  return sizes;
}

std::vector<float> Random(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A copy of `src` placed `offset` floats into a fresh buffer, so the data is
// misaligned for vector loads when offset is 1..3.
struct Shifted {
  Shifted(const std::vector<float>& src, int offset) : storage(src.size() + 4, -1.0f), off(offset) {
    std::copy(src.begin(), src.end(), storage.begin() + off);
  }
  float* data() { return storage.data() + off; }
  std::vector<float> values() const {
    return std::vector<float>(storage.begin() + off, storage.end() - (4 - off));
  }
  std::vector<float> storage;
  int off;
};

// |got - want| <= atol + rtol * |want| element-wise; NaN matches NaN and an
// infinity must match exactly. Reports the first few misses.
void ExpectClose(const float* got, const float* want, int64_t n, double rtol, double atol,
                 const std::string& what) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (std::isnan(w) || std::isnan(g)) {
      ok = std::isnan(w) && std::isnan(g);
    } else if (std::isinf(w) || std::isinf(g)) {
      ok = g == w;
    } else {
      ok = std::fabs(g - w) <= atol + rtol * std::fabs(w);
    }
    if (!ok && bad++ < 5) {
      ADD_FAILURE() << what << ": [" << i << "] got " << g << " want " << w << " (diff "
                    << g - w << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << n << " elements differ";
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                 double atol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ExpectClose(got.data(), want.data(), static_cast<int64_t>(got.size()), rtol, atol, what);
}

std::string Where(const CpuKernels* t, int64_t n, int off) {
  return std::string(t->name) + " n=" + std::to_string(n) + " off=" + std::to_string(off);
}

// ---------------------------------------------------------------------------
// SIMD tables against the scalar reference.

TEST(FloatOpsTest, RmsNormMatchesScalar) {
  FOR_EACH_SIMD_TABLE(t) {
    for (int64_t dim : Sizes()) {
      const int off = static_cast<int>(dim % 4);
      const int64_t rows = 3;
      const auto x = Random(rows * dim, -4.0f, 4.0f, 1 + dim);
      const auto w = Random(dim, -2.0f, 2.0f, 2 + dim);
      Shifted xs(x, off), ws(w, (off + 1) % 4);
      for (bool weighted : {false, true}) {
        const float* wp = weighted ? ws.data() : nullptr;
        std::vector<float> want(rows * dim), got(rows * dim);
        Scalar().rms_norm(want.data(), xs.data(), wp, 1e-6f, rows, dim);
        Shifted out(std::vector<float>(rows * dim), (off + 2) % 4);
        t->rms_norm(out.data(), xs.data(), wp, 1e-6f, rows, dim);
        ExpectClose(out.values(), want, 1e-6, 0, Where(t, dim, off) + " rms_norm");
        // In place: out aliases x.
        Shifted inplace(x, off);
        t->rms_norm(inplace.data(), inplace.data(), wp, 1e-6f, rows, dim);
        ExpectClose(inplace.values(), want, 1e-6, 0, Where(t, dim, off) + " rms_norm in place");
      }
    }
  }
}

// The angles are the reference's own cosf / sinf values; only an FMA the
// compiler may form in the rotation separates the results (1 ulp).
TEST(FloatOpsTest, RopeMatchesScalar) {
  struct Case {
    int64_t head_dim, rot_dim;
  };
  const Case cases[] = {{64, 64}, {64, 32}, {128, 64}, {256, 256}, {256, 128},
                        {80, 80}, {80, 40}, {24, 6},   {34, 34},   {576, 576}};
  const int32_t pos[] = {0, 1, 37, 5000, 131071};
  const int64_t n_tokens = 5, n_heads = 3;
  FOR_EACH_SIMD_TABLE(t) {
    for (const Case& c : cases) {
      for (RopeLayout layout : {RopeLayout::kNormal, RopeLayout::kNeox}) {
        for (float base : {10000.0f, 1000000.0f}) {
          for (float freq_scale : {1.0f, 0.25f}) {
            const int off = static_cast<int>((c.head_dim + c.rot_dim) % 4);
            // Token rows are padded past the heads; the padding must stay.
            const int64_t row_stride = n_heads * c.head_dim + 7;
            const auto x = Random(n_tokens * row_stride, -2.0f, 2.0f, 7 + c.head_dim);
            Shifted want(x, off), got(x, off);
            Scalar().rope(want.data(), n_tokens, n_heads, c.head_dim, row_stride, pos, c.rot_dim,
                          base, freq_scale, layout);
            t->rope(got.data(), n_tokens, n_heads, c.head_dim, row_stride, pos, c.rot_dim, base,
                    freq_scale, layout);
            const std::string what = std::string(t->name) + " rope head_dim=" +
                                     std::to_string(c.head_dim) + " rot_dim=" +
                                     std::to_string(c.rot_dim) +
                                     (layout == RopeLayout::kNeox ? " neox" : " normal");
            ExpectClose(got.values(), want.values(), 2.5e-7, 2.5e-7, what);
          }
        }
      }
    }
  }
}

// The SIMD ropes keep the latest positions' angles per thread (each layer
// ropes the same positions): a position met again, under another base,
// scale, layout or width in between, still gets its own angles.
TEST(FloatOpsTest, RopeAnglesReusedAcrossCallsStayExact) {
  struct Config {
    int64_t rot_dim;
    float base, freq_scale;
    RopeLayout layout;
  };
  const Config configs[] = {{64, 10000.0f, 1.0f, RopeLayout::kNormal},  {64, 1000000.0f, 1.0f, RopeLayout::kNormal},
                            {64, 10000.0f, 0.25f, RopeLayout::kNormal}, {64, 10000.0f, 1.0f, RopeLayout::kNeox},
                            {32, 10000.0f, 1.0f, RopeLayout::kNormal}};
  // 300 distinct positions, more than the table keeps, then the first again.
  std::vector<int32_t> pos(300);
  for (int32_t i = 0; i < 300; ++i) pos[static_cast<size_t>(i)] = i * 7;
  const int64_t head_dim = 64, n_heads = 2, n = static_cast<int64_t>(pos.size());
  FOR_EACH_SIMD_TABLE(t) {
    for (int round = 0; round < 2; ++round) {
      for (const Config& c : configs) {
        const auto x = Random(static_cast<size_t>(n * n_heads * head_dim), -2.0f, 2.0f, 11);
        std::vector<float> want(x), got(x);
        Scalar().rope(want.data(), n, n_heads, head_dim, n_heads * head_dim, pos.data(), c.rot_dim, c.base,
                      c.freq_scale, c.layout);
        t->rope(got.data(), n, n_heads, head_dim, n_heads * head_dim, pos.data(), c.rot_dim, c.base, c.freq_scale,
                c.layout);
        ExpectClose(got, want, 2.5e-7, 2.5e-7, std::string(t->name) + " round " + std::to_string(round));
      }
    }
  }
}

TEST(FloatOpsTest, SoftmaxMatchesScalar) {
  FOR_EACH_SIMD_TABLE(t) {
    for (int64_t cols : Sizes()) {
      const int off = static_cast<int>(cols % 4);
      const int64_t rows = 3;
      auto x = Random(rows * cols, -20.0f, 20.0f, 11 + cols);
      for (int64_t i = 3; i < cols; i += 7) x[i] = -INFINITY;        // row 0: some masked
      for (int64_t i = 0; i < cols; ++i) x[2 * cols + i] = -INFINITY;  // row 2: all masked
      Shifted want(x, off), got(x, off);
      Scalar().softmax(want.data(), rows, cols);
      t->softmax(got.data(), rows, cols);
      ExpectClose(got.values(), want.values(), 2e-6, 1e-12, Where(t, cols, off) + " softmax");
    }
  }
}

// Gates over the interesting range plus values that hit the edges of the
// vector exp (overflow, underflow) and zeros.
std::vector<float> Gates(int64_t n, uint32_t seed) {
  auto g = Random(n, -15.0f, 15.0f, seed);
  const float special[] = {0.0f, -0.0f, 1e-7f, -1e-7f, 0.6f, -0.65f, 40.0f, -40.0f, 90.0f, -90.0f};
  for (int64_t i = 0; i < n && i < 10; ++i) g[(i * 37) % n] = special[i];
  return g;
}

TEST(FloatOpsTest, GatedActivationsMatchScalar) {
  struct Op {
    const char* name;
    void (*CpuKernels::*fn)(float*, const float*, const float*, int64_t);
    double rtol, atol;
  };
  // GELU's 1 + tanh(u) cancels for negative gates, so its error is absolute.
  const Op ops[] = {{"silu_mul", &CpuKernels::silu_mul, 1e-6, 1e-12},
                    {"gelu_tanh_mul", &CpuKernels::gelu_tanh_mul, 2e-6, 4e-6}};
  FOR_EACH_SIMD_TABLE(t) {
    for (const Op& op : ops) {
      for (int64_t n : Sizes()) {
        const int off = static_cast<int>(n % 4);
        const auto gate = Gates(n, 21 + n);
        const auto up = Random(n, -3.0f, 3.0f, 22 + n);
        Shifted g(gate, off), u(up, (off + 1) % 4);
        std::vector<float> want(n);
        (Scalar().*op.fn)(want.data(), g.data(), u.data(), n);
        const std::string what = Where(t, n, off) + " " + op.name;
        Shifted out(std::vector<float>(n), (off + 3) % 4);
        (t->*op.fn)(out.data(), g.data(), u.data(), n);
        ExpectClose(out.values(), want, op.rtol, op.atol, what);
        Shifted g2(gate, off), u2(up, off);  // out aliases gate, then up
        (t->*op.fn)(g2.data(), g2.data(), u2.data(), n);
        ExpectClose(g2.values(), want, op.rtol, op.atol, what + " out=gate");
        Shifted g3(gate, off), u3(up, off);
        (t->*op.fn)(u3.data(), g3.data(), u3.data(), n);
        ExpectClose(u3.values(), want, op.rtol, op.atol, what + " out=up");
      }
    }
  }
}

TEST(FloatOpsTest, SoftCapMatchesScalar) {
  FOR_EACH_SIMD_TABLE(t) {
    for (float cap : {1.0f, 30.0f, 50.0f}) {
      for (int64_t n : Sizes()) {
        const int off = static_cast<int>(n % 4);
        const auto x = Random(n, -4.0f * cap, 4.0f * cap, 31 + n);
        Shifted want(x, off), got(x, off);
        Scalar().soft_cap(want.data(), n, cap);
        t->soft_cap(got.data(), n, cap);
        ExpectClose(got.values(), want.values(), 1e-6, 1e-30,
                    Where(t, n, off) + " soft_cap " + std::to_string(cap));
      }
    }
  }
}

TEST(FloatOpsTest, AddAndScaleMatchScalarExactly) {
  FOR_EACH_SIMD_TABLE(t) {
    for (int64_t n : Sizes()) {
      const int off = static_cast<int>(n % 4);
      const auto a = Random(n, -5.0f, 5.0f, 41 + n), b = Random(n, -5.0f, 5.0f, 42 + n);
      std::vector<float> want(n);
      Shifted as(a, off), bs(b, (off + 1) % 4);
      Scalar().add(want.data(), as.data(), bs.data(), n);
      Shifted out(std::vector<float>(n), (off + 2) % 4);
      t->add(out.data(), as.data(), bs.data(), n);
      ExpectClose(out.values(), want, 0, 0, Where(t, n, off) + " add");
      Shifted a2(a, off), b2(b, off);
      t->add(a2.data(), a2.data(), b2.data(), n);
      ExpectClose(a2.values(), want, 0, 0, Where(t, n, off) + " add out=a");
      Shifted a3(a, off), b3(b, off);
      t->add(b3.data(), a3.data(), b3.data(), n);
      ExpectClose(b3.values(), want, 0, 0, Where(t, n, off) + " add out=b");

      Shifted sw(a, off), sg(a, off);
      Scalar().scale(sw.data(), n, -0.37f);
      t->scale(sg.data(), n, -0.37f);
      ExpectClose(sg.values(), sw.values(), 0, 0, Where(t, n, off) + " scale");
    }
  }
}

struct AttnCase {
  int64_t n_heads, n_kv_heads, head_dim, n_tokens, q_pos0, n_kv, window;
  float softcap;
  int64_t head_begin, head_end;  // head_end 0: all heads
};

std::string Describe(const AttnCase& c) {
  return "heads " + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
         " head_dim " + std::to_string(c.head_dim) + " tokens " + std::to_string(c.n_tokens) +
         " q_pos0 " + std::to_string(c.q_pos0) + " n_kv " + std::to_string(c.n_kv) + " window " +
         std::to_string(c.window) + " softcap " + std::to_string(c.softcap) + " heads [" +
         std::to_string(c.head_begin) + "," + std::to_string(c.head_end) + ")";
}

// Runs `table`'s attention on deterministic inputs with padded, misaligned
// rows; returns the whole output buffer (rows padded, pre-filled with 7).
// With block_tokens > 0 the same keys and values sit in a paged cache: blocks
// of block_tokens rows in a shuffled order, with unused blocks in between.
// With kv f16 or q8_0, K and V are stored as that type first (the reference
// sees the same values). Rows are padded by kv_pad elements: 5, or a whole
// block for q8_0 (the inputs depend on the padding).
std::vector<float> RunAttention(const CpuKernels& table, const AttnCase& c, int off, int64_t block_tokens = 0,
                                DType kv = DType::kF32, int64_t kv_pad = 0) {
  const int64_t q_stride = c.n_heads * c.head_dim + 3;
  const int64_t out_stride = c.n_heads * c.head_dim + 1;
  if (kv_pad == 0) kv_pad = kv == DType::kQ8_0 ? 32 : 5;
  const int64_t kv_stride = c.n_kv_heads * c.head_dim + kv_pad;
  Shifted q(Random(c.n_tokens * q_stride, -2.0f, 2.0f, 51), off);
  std::vector<float> kc = Random(c.n_kv * kv_stride, -2.0f, 2.0f, 52);
  std::vector<float> vc = Random(c.n_kv * kv_stride, -1.0f, 1.0f, 53);
  std::vector<int32_t> blocks;
  if (block_tokens > 0) {
    const int64_t n_blocks = (c.n_kv + block_tokens - 1) / block_tokens;
    for (int64_t b = 0; b < n_blocks; ++b) blocks.push_back(static_cast<int32_t>(2 * b + 1));
    std::shuffle(blocks.begin(), blocks.end(), std::mt19937(54));
    const int64_t pool_rows = (2 * n_blocks + 1) * block_tokens;
    std::vector<float> kp = Random(pool_rows * kv_stride, -9.0f, 9.0f, 55);  // garbage in unused rows
    std::vector<float> vp = Random(pool_rows * kv_stride, -9.0f, 9.0f, 56);
    for (int64_t j = 0; j < c.n_kv; ++j) {
      const int64_t row = blocks[j / block_tokens] * block_tokens + j % block_tokens;
      std::copy_n(kc.begin() + j * kv_stride, kv_stride, kp.begin() + row * kv_stride);
      std::copy_n(vc.begin() + j * kv_stride, kv_stride, vp.begin() + row * kv_stride);
    }
    kc = std::move(kp);
    vc = std::move(vp);
  }
  std::vector<uint8_t> kq, vq;  // kc and vc as kv's rows
  if (kv == DType::kQ8_0) {  // kernels/kv_q8.h's groups of 16 rows, the last one's missing rows zero
    const int64_t rows = static_cast<int64_t>(kc.size()) / kv_stride;
    const int64_t groups = (rows + kernels::kKvQ8Rows - 1) / kernels::kKvQ8Rows;
    kq.resize(groups * kernels::KvQ8GroupBytes(kernels::KvSide::kKeys, kv_stride));
    vq.resize(groups * kernels::KvQ8GroupBytes(kernels::KvSide::kValues, kv_stride));
    for (int64_t r = 0; r < rows; ++r) {
      kernels::KvQ8StoreRow(kernels::KvSide::kKeys, kq.data(), kv_stride, r, 0, kc.data() + r * kv_stride, kv_stride);
      kernels::KvQ8StoreRow(kernels::KvSide::kValues, vq.data(), kv_stride, r, 0, vc.data() + r * kv_stride,
                            kv_stride);
    }
  } else if (kv != DType::kF32) {
    const int64_t rows = static_cast<int64_t>(kc.size()) / kv_stride, row_bytes = RowBytes(kv, kv_stride);
    kq.resize(rows * row_bytes);
    vq.resize(kq.size());
    for (int64_t r = 0; r < rows; ++r) {
      Scalar().quantize_row(kv, kq.data() + r * row_bytes, kc.data() + r * kv_stride, kv_stride);
      Scalar().quantize_row(kv, vq.data() + r * row_bytes, vc.data() + r * kv_stride, kv_stride);
    }
  }
  Shifted k(kc, (off + 1) % 4);
  Shifted v(vc, (off + 2) % 4);
  Shifted out(std::vector<float>(c.n_tokens * out_stride, 7.0f), (off + 3) % 4);
  std::vector<float> scratch(c.n_kv + 1);
  const int64_t head_end = c.head_end == 0 ? c.n_heads : c.head_end;
  const void* kp = kv != DType::kF32 ? static_cast<const void*>(kq.data()) : k.data();
  const void* vp = kv != DType::kF32 ? static_cast<const void*>(vq.data()) : v.data();
  // A hint of what the thread reads next (here: kv head 0's keys, as if
  // another sequence followed): only prefetched, it must change nothing.
  const kernels::AttentionNext next{kp, vp, blocks.empty() ? nullptr : blocks.data(), c.q_pos0, c.n_kv};
  table.attention(out.data(), out_stride, q.data(), q_stride, kp, vp, kv, kv_stride,
                  blocks.empty() ? nullptr : blocks.data(), block_tokens, c.n_tokens, c.q_pos0, c.n_kv,
                  c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                  c.softcap, c.window, c.head_begin, head_end, scratch.data(), &next);
  return out.values();
}

const AttnCase kAttnCases[] = {
    // Decode.
    {9, 3, 64, 1, 99, 100, 0, 0, 0, 0},
    {4, 1, 256, 1, 4096, 4097, 0, 0, 0, 0},
    {4, 1, 64, 1, 8191, 8192, 0, 0, 0, 0},
    {8, 8, 128, 1, 2, 3, 0, 0, 0, 0},
    {4, 1, 64, 1, 0, 1, 0, 0, 0, 0},
    // Prefill from 0 and continued prefill (q_pos0 > 0).
    {9, 3, 64, 7, 0, 7, 0, 0, 0, 0},
    {4, 1, 256, 5, 10, 15, 0, 0, 0, 0},
    {8, 2, 128, 64, 0, 64, 0, 0, 0, 0},
    // Sliding windows, soft cap, head ranges.
    {9, 3, 64, 6, 20, 26, 4, 0, 0, 0},
    {4, 1, 256, 3, 40, 43, 1, 0, 0, 0},
    {4, 1, 64, 3, 5, 8, 0, 50.0f, 0, 0},
    {4, 2, 256, 4, 300, 304, 17, 30.0f, 0, 0},
    {9, 3, 64, 3, 2, 5, 0, 0, 2, 7},
    {4, 1, 256, 2, 9, 11, 0, 0, 3, 4},
    // head_dim that is not a multiple of the vector width (masked tails).
    {2, 1, 72, 3, 4, 7, 0, 0, 0, 0},
    {2, 2, 20, 9, 0, 9, 3, 0, 0, 0},
    {3, 1, 5, 4, 1, 5, 0, 0, 0, 0},
    {2, 1, 200, 5, 33, 38, 0, 0, 0, 0},
    // More query heads per kv head than one group pass takes (8), and
    // head_dim above the on-stack accumulators (the scratch path).
    {16, 1, 32, 2, 70, 72, 0, 0, 0, 0},
    {12, 2, 64, 3, 130, 133, 0, 20.0f, 1, 11},
    // Decode with many heads: 8 kv heads of 3, 32 query heads on one kv
    // head, a range that starts and ends inside kv heads.
    {24, 8, 64, 1, 70, 71, 0, 0, 0, 0},
    {32, 1, 32, 1, 40, 41, 0, 0, 0, 0},
    {24, 8, 64, 1, 90, 91, 0, 0, 4, 23},
    {2, 1, 576, 2, 3, 5, 0, 0, 0, 0},
    {3, 1, 520, 3, 90, 93, 50, 0, 0, 0},
    // Queries past the end of the cache: the window leaves no key -> zeros.
    {2, 1, 64, 2, 50, 10, 4, 0, 0, 0},
    {2, 1, 64, 2, 50, 10, 0, 0, 0, 0},
};

TEST(FloatOpsTest, AttentionMatchesScalar) {
  FOR_EACH_SIMD_TABLE(t) {
    int off = 0;
    for (const AttnCase& c : kAttnCases) {
      off = (off + 1) % 4;
      const auto want = RunAttention(Scalar(), c, off);
      const auto got = RunAttention(*t, c, off);
      ExpectClose(got, want, 1e-5, 2e-6, std::string(t->name) + " attention " + Describe(c));
    }
  }
}

// An f16 cache (the serving engine's): every SIMD kernel agrees with the
// scalar one on the same f16 values, contiguous and paged.
TEST(FloatOpsTest, F16KvAttentionMatchesScalar) {
  int off = 0;
  for (const AttnCase& c : kAttnCases) {
    off = (off + 1) % 4;
    for (int64_t block_tokens : {0, 16}) {
      const auto want = RunAttention(Scalar(), c, off, block_tokens, DType::kF16);
      FOR_EACH_SIMD_TABLE(t) {
        ExpectClose(RunAttention(*t, c, off, block_tokens, DType::kF16), want, 1e-5, 2e-6,
                    std::string(t->name) + " f16 attention block_tokens " + std::to_string(block_tokens) + " " +
                        Describe(c));
      }
    }
  }
}

// kernels/kv_q8.h's layout, byte for byte: a row stored in pieces holds
// the blocks quantize_row(kQ8_0) makes, where the header says, and reads
// back as them; other rows' bytes are untouched.
TEST(FloatOpsTest, Q8KvLayoutHoldsGgmlBlocks) {
  using kernels::KvSide;
  const int64_t dim = 96, rows = 37;
  const auto x = Random(rows * dim, -3.0f, 3.0f, 71);
  for (KvSide side : {KvSide::kKeys, KvSide::kValues}) {
    const int64_t group = kernels::KvQ8GroupBytes(side, dim);
    std::vector<uint8_t> cache(3 * group, 0xEE);
    for (int64_t r = 0; r < rows; ++r) {
      kernels::KvQ8StoreRow(side, cache.data(), dim, r, 32, x.data() + r * dim + 32, 64);  // chunks 1, 2
      kernels::KvQ8StoreRow(side, cache.data(), dim, r, 0, x.data() + r * dim, 32);        // then chunk 0
    }
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<kernels::BlockQ8_0> want(dim / 32);
      Scalar().quantize_row(DType::kQ8_0, want.data(), x.data() + r * dim, dim);
      const uint8_t* g = cache.data() + r / 16 * group;
      const int64_t lane = r % 16;
      for (int64_t c = 0; c < dim / 32; ++c) {
        const kernels::BlockQ8_0 got = kernels::KvQ8Block(side, cache.data(), dim, r, c);
        ASSERT_EQ(std::memcmp(&got, &want[c], sizeof(got)), 0) << "row " << r << " chunk " << c;
        int16_t sum = 0;
        for (int i = 0; i < 32; ++i) {
          const uint8_t at = side == KvSide::kKeys ? g[c * 576 + (i / 4) * 64 + lane * 4 + i % 4]
                                                   : g[lane * dim + c * 32 + i];
          ASSERT_EQ(static_cast<int8_t>(at), want[c].qs[i]) << "row " << r << " element " << c * 32 + i;
          sum = static_cast<int16_t>(sum + want[c].qs[i]);
        }
        uint16_t d;
        std::memcpy(&d, side == KvSide::kKeys ? g + c * 576 + 512 + lane * 2 : g + 16 * dim + (c * 16 + lane) * 2, 2);
        EXPECT_EQ(d, want[c].d);
        if (side == KvSide::kKeys) {
          int16_t stored;
          std::memcpy(&stored, g + c * 576 + 544 + lane * 2, 2);
          EXPECT_EQ(stored, sum);
        }
        EXPECT_FLOAT_EQ(kernels::KvQ8Element(side, cache.data(), dim, r, c * 32 + 5),
                        F16ToF32(want[c].d) * want[c].qs[5]);
      }
    }
    // Row 40 (lane 8 of the last group) was never written.
    if (side == KvSide::kValues) EXPECT_EQ(cache[2 * group + 8 * dim], 0xEE);
  }
}

// A q8_0 cache (--kv-type q8_0): every SIMD kernel agrees with the scalar
// one on the same blocks, contiguous and paged, for every case whose heads
// are whole blocks; and the scalar one reads what it was given: within the
// quantization step of the f32 result.
TEST(FloatOpsTest, Q8KvAttentionMatchesScalar) {
  int off = 0, cases = 0;
  for (const AttnCase& c : kAttnCases) {
    off = (off + 1) % 4;
    if (c.head_dim % 32 != 0) continue;
    ++cases;
    for (int64_t block_tokens : {0, 16}) {
      const auto want = RunAttention(Scalar(), c, off, block_tokens, DType::kQ8_0);
      ExpectClose(want, RunAttention(Scalar(), c, off, block_tokens, DType::kF32, 32), 0.05, 0.02,
                  "scalar q8_0 attention against f32 " + Describe(c));
      FOR_EACH_SIMD_TABLE(t) {
        ExpectClose(RunAttention(*t, c, off, block_tokens, DType::kQ8_0), want, 1e-5, 2e-6,
                    std::string(t->name) + " q8_0 attention block_tokens " + std::to_string(block_tokens) + " " +
                        Describe(c));
      }
    }
  }
  EXPECT_GE(cases, 20);
}

// A paged cache holds the same keys as a contiguous one: the scalar kernel
// gives identical results (same order of operations), every SIMD kernel
// agrees with it, for block sizes that split the kernels' key blocks.
TEST(FloatOpsTest, PagedAttentionMatchesContiguous) {
  int off = 0;
  for (const AttnCase& c : kAttnCases) {
    off = (off + 1) % 4;
    const auto want = RunAttention(Scalar(), c, off);
    for (int64_t block_tokens : {1, 5, 16, 64}) {
      const std::string what = "block_tokens " + std::to_string(block_tokens) + " " + Describe(c);
      ExpectClose(RunAttention(Scalar(), c, off, block_tokens), want, 0, 0, "scalar paged attention " + what);
      FOR_EACH_SIMD_TABLE(t) {
        ExpectClose(RunAttention(*t, c, off, block_tokens), want, 1e-5, 2e-6,
                    std::string(t->name) + " paged attention " + what);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The scalar reference against straightforward double-precision formulas.

TEST(FloatOpsReferenceTest, RmsNormMatchesDouble) {
  const int64_t dim = 67;
  const auto x = Random(2 * dim, -3.0f, 3.0f, 61), w = Random(dim, 0.5f, 1.5f, 62);
  std::vector<float> out(2 * dim);
  Scalar().rms_norm(out.data(), x.data(), w.data(), 1e-5f, 2, dim);
  for (int64_t r = 0; r < 2; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double s = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int64_t i = 0; i < dim; ++i) {
      EXPECT_NEAR(out[r * dim + i], x[r * dim + i] * s * w[i], 1e-6 * std::fabs(x[r * dim + i] * s * w[i]) + 1e-7);
    }
  }
}

TEST(FloatOpsReferenceTest, SoftmaxSumsToOneAndMatchesDouble) {
  const int64_t cols = 300;
  auto x = Random(2 * cols, -30.0f, 30.0f, 63);
  x[5] = -INFINITY;
  for (int64_t i = 0; i < cols; ++i) x[cols + i] = -INFINITY;
  std::vector<float> y = x;
  Scalar().softmax(y.data(), 2, cols);
  double max = -INFINITY, sum_exp = 0, sum_y = 0;
  for (int64_t i = 0; i < cols; ++i) max = std::max(max, double(x[i]));
  // x - max is rounded to float first, as the op does (that rounding alone
  // moves exp by up to ~4e-6 relative at |x - max| ~ 60).
  const auto shifted = [&](int64_t i) { return double(x[i] - static_cast<float>(max)); };
  for (int64_t i = 0; i < cols; ++i) sum_exp += std::exp(shifted(i));
  for (int64_t i = 0; i < cols; ++i) {
    const double want = std::exp(shifted(i)) / sum_exp;
    EXPECT_NEAR(y[i], want, 1e-6 * want + 1e-30) << i;
    sum_y += y[i];
  }
  EXPECT_EQ(y[5], 0.0f);
  EXPECT_NEAR(sum_y, 1.0, 1e-6);
  for (int64_t i = 0; i < cols; ++i) EXPECT_EQ(y[cols + i], 0.0f);
}

TEST(FloatOpsReferenceTest, RopeIsIdentityAtZeroAndRotatesByTheAngle) {
  const int64_t head_dim = 64, n_heads = 2, rot_dim = 48;
  const auto x = Random(3 * n_heads * head_dim, -2.0f, 2.0f, 64);
  const int32_t pos[] = {0, 3, 100};
  for (RopeLayout layout : {RopeLayout::kNormal, RopeLayout::kNeox}) {
    std::vector<float> y = x;
    Scalar().rope(y.data(), 3, n_heads, head_dim, n_heads * head_dim, pos, rot_dim, 10000.0f,
                  1.0f, layout);
    for (int64_t i = 0; i < n_heads * head_dim; ++i) EXPECT_EQ(y[i], x[i]) << "pos 0, " << i;
    for (int64_t t = 1; t < 3; ++t) {
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t base = (t * n_heads + h) * head_dim;
        for (int64_t i = 0; i < rot_dim / 2; ++i) {
          const int64_t a = base + (layout == RopeLayout::kNeox ? i : 2 * i);
          const int64_t b = base + (layout == RopeLayout::kNeox ? i + rot_dim / 2 : 2 * i + 1);
          const double angle = pos[t] * std::pow(10000.0, -2.0 * i / rot_dim);
          const double ya = x[a] * std::cos(angle) - x[b] * std::sin(angle);
          const double yb = x[a] * std::sin(angle) + x[b] * std::cos(angle);
          EXPECT_NEAR(y[a], ya, 2e-5);
          EXPECT_NEAR(y[b], yb, 2e-5);
          // Rotation keeps the norm of each pair.
          EXPECT_NEAR(std::hypot(double(y[a]), double(y[b])), std::hypot(double(x[a]), double(x[b])), 1e-5);
        }
        for (int64_t d = rot_dim; d < head_dim; ++d) EXPECT_EQ(y[base + d], x[base + d]);
      }
    }
  }
}

TEST(FloatOpsReferenceTest, ActivationsMatchDouble) {
  const auto g = Random(500, -12.0f, 12.0f, 65), u = Random(500, -2.0f, 2.0f, 66);
  std::vector<float> silu(500), gelu(500), cap = g;
  Scalar().silu_mul(silu.data(), g.data(), u.data(), 500);
  Scalar().gelu_tanh_mul(gelu.data(), g.data(), u.data(), 500);
  Scalar().soft_cap(cap.data(), 500, 5.0f);
  for (int i = 0; i < 500; ++i) {
    const double x = g[i];
    const double s = x / (1 + std::exp(-x)) * u[i];
    const double ge = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))) * u[i];
    EXPECT_NEAR(silu[i], s, 1e-6 * std::fabs(s) + 1e-12) << x;
    EXPECT_NEAR(gelu[i], ge, 1e-6 * std::fabs(ge) + 2e-6) << x;
    EXPECT_NEAR(cap[i], 5.0 * std::tanh(x / 5.0), 1e-6) << x;
  }
}

TEST(FloatOpsReferenceTest, AttentionOverOneKeyReturnsV) {
  const int64_t head_dim = 64;
  const auto q = Random(head_dim, -1, 1, 67), k = Random(head_dim, -1, 1, 68),
             v = Random(head_dim, -1, 1, 69);
  std::vector<float> out(head_dim), scratch(1);
  Scalar().attention(out.data(), head_dim, q.data(), head_dim, k.data(), v.data(), DType::kF32, head_dim, nullptr, 0, 1, 0,
                     1, 1, 1, head_dim, 0.125f, 0.0f, 0, 0, 1, scratch.data(), nullptr);
  for (int64_t d = 0; d < head_dim; ++d) EXPECT_EQ(out[d], v[d]);
}

TEST(FloatOpsReferenceTest, AttentionMatchesDouble) {
  const AttnCase c = {6, 2, 32, 4, 6, 10, 5, 3.0f, 1, 6};
  const int64_t q_stride = c.n_heads * c.head_dim + 3;
  const int64_t out_stride = c.n_heads * c.head_dim + 1;
  const int64_t kv_stride = c.n_kv_heads * c.head_dim + 5;
  const auto got = RunAttention(Scalar(), c, 0);
  // The same inputs RunAttention builds (offset 0 -> same values).
  const auto q = Random(c.n_tokens * q_stride, -2.0f, 2.0f, 51);
  const auto k = Random(c.n_kv * kv_stride, -2.0f, 2.0f, 52);
  const auto v = Random(c.n_kv * kv_stride, -1.0f, 1.0f, 53);
  const double scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (int64_t t = 0; t < c.n_tokens; ++t) {
    const int64_t p = c.q_pos0 + t;
    for (int64_t h = 0; h < c.n_heads; ++h) {
      const int64_t kvh = h / (c.n_heads / c.n_kv_heads);
      std::vector<double> w(c.n_kv, 0.0);
      double max = -INFINITY, sum = 0;
      for (int64_t j = 0; j < c.n_kv; ++j) {
        if (j > p || p - j >= c.window) continue;
        double dot = 0;
        for (int64_t d = 0; d < c.head_dim; ++d) {
          dot += double(q[t * q_stride + h * c.head_dim + d]) * k[j * kv_stride + kvh * c.head_dim + d];
        }
        w[j] = c.softcap * std::tanh(scale * dot / c.softcap);
        max = std::max(max, w[j]);
      }
      for (int64_t j = 0; j < c.n_kv; ++j) {
        w[j] = (j > p || p - j >= c.window) ? 0.0 : std::exp(w[j] - max);
        sum += w[j];
      }
      for (int64_t d = 0; d < c.head_dim; ++d) {
        const float g = got[t * out_stride + h * c.head_dim + d];
        if (h < c.head_begin || h >= c.head_end) {
          EXPECT_EQ(g, 7.0f);  // outside the head range: untouched
          continue;
        }
        double o = 0;
        for (int64_t j = 0; j < c.n_kv; ++j) o += w[j] * v[j * kv_stride + kvh * c.head_dim + d];
        EXPECT_NEAR(g, o / sum, 2e-6) << "t " << t << " h " << h << " d " << d;
      }
    }
  }
}

// The vector exp and tanh, seen through ops that expose them: soft_cap with
// cap 1 is tanh itself, and silu at negative x is about x * exp(x).
TEST(FloatOpsReferenceTest, SimdExpAndTanhAreAccurate) {
  FOR_EACH_SIMD_TABLE(t) {
    std::vector<float> x;
    for (float v = -20.0f; v <= 20.0f; v += 0.000731f) x.push_back(v);
    for (float v = 1e-30f; v < 1.0f; v *= 1.37f) {
      x.push_back(v);
      x.push_back(-v);
    }
    std::vector<float> th = x;
    t->soft_cap(th.data(), static_cast<int64_t>(th.size()), 1.0f);
    double max_rel = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = std::tanh(double(x[i]));
      max_rel = std::max(max_rel, std::fabs(th[i] - want) / std::fabs(want));
    }
    EXPECT_LT(max_rel, 2.5e-7) << t->name << " tanh";

    std::vector<float> g, one;
    for (float v = -87.0f; v <= 0.0f; v += 0.00137f) g.push_back(v);
    one.assign(g.size(), 1.0f);
    std::vector<float> s(g.size());
    t->silu_mul(s.data(), g.data(), one.data(), static_cast<int64_t>(g.size()));
    max_rel = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      const double want = double(g[i]) / (1.0 + std::exp(-double(g[i])));
      if (want != 0) max_rel = std::max(max_rel, std::fabs(s[i] - want) / std::fabs(want));
    }
    EXPECT_LT(max_rel, 4e-7) << t->name << " silu (exp)";
  }
}

}  // namespace
}  // namespace atrium::kernels

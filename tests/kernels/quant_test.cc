// Quantization kernels: every ISA table against the scalar reference, the
// scalar reference against plain float math, and the activation quantizers
// against GGML's bytes.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "runtime/dtype.h"

namespace atrium::kernels {
namespace {

// 64-byte aligned storage (packed weights are read with aligned loads).
template <typename T>
struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <typename U>
  AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const AlignedAlloc&) const { return true; }
};

constexpr DType kWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                                  DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
constexpr DType kQuantizableTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                                       DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                                       DType::kQ8_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                                       DType::kQ8_K};

std::vector<const CpuKernels*> Tables() {
  std::vector<const CpuKernels*> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAmx}) {
    if (const CpuKernels* t = CpuFor(isa)) out.push_back(t);
  }
  return out;
}
const CpuKernels& Scalar() { return *CpuFor(Isa::kScalar); }

std::string Name(DType t) { return std::string(DTypeName(t)); }

// A byte buffer whose data starts `offset` bytes past a 64-byte boundary.
class Buffer {
 public:
  Buffer(int64_t bytes, int offset) : storage_(bytes + 128, 0xA5), offset_(offset) {}
  uint8_t* data() {
    auto base = reinterpret_cast<uintptr_t>(storage_.data());
    return reinterpret_cast<uint8_t*>((base + 63) / 64 * 64 + offset_);
  }

 private:
  std::vector<uint8_t> storage_;
  int offset_;
};

std::vector<float> RandomFloats(int64_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

uint16_t RandomScaleF16(std::mt19937& rng) {
  std::uniform_real_distribution<float> mag(-6.0f, 0.0f);
  const float v = std::exp2(mag(rng)) * (rng() % 2 ? 1.0f : -1.0f);
  return F32ToF16(v);
}

// Where the scale fields of a block are (byte offsets of f16 values that
// random bytes would turn into inf/nan or absurd magnitudes).
std::vector<int> ScaleOffsets(DType t) {
  switch (t) {
    case DType::kQ4_0: case DType::kQ5_0: case DType::kQ8_0: return {0};
    case DType::kQ4_1: case DType::kQ5_1: case DType::kQ4_K: case DType::kQ5_K: return {0, 2};
    case DType::kQ6_K: return {208};
    default: return {};
  }
}
// The quant bytes of a block: zeroing them leaves only the block's offset
// part (m, -dmin * m, -8 d, ...), a bound on cancellation in dot products.
std::pair<int, int> QuantByteRange(DType t) {
  switch (t) {
    case DType::kQ4_0: return {2, 16};
    case DType::kQ4_1: return {4, 16};
    case DType::kQ5_0: return {2, 20};
    case DType::kQ5_1: return {4, 20};
    case DType::kQ8_0: return {2, 32};
    case DType::kQ4_K: return {16, 128};
    case DType::kQ5_K: return {16, 160};
    case DType::kQ6_K: return {0, 192};
    default: return {0, 0};
  }
}

// A row of n random weights of type t written at dst: random block bytes with
// sane scales for quantized types, random values for float types.
void RandomWeights(DType t, uint8_t* dst, int64_t n, std::mt19937& rng) {
  const DTypeInfo& info = Info(t);
  if (!info.quantized) {
    const std::vector<float> x = RandomFloats(n, rng);
    Scalar().quantize_row(t, dst, x.data(), n);
    return;
  }
  const int64_t nb = n / info.block_size;
  for (int64_t i = 0; i < nb * info.block_bytes; ++i) dst[i] = static_cast<uint8_t>(rng());
  for (int64_t b = 0; b < nb; ++b) {
    for (int off : ScaleOffsets(t)) {
      uint16_t h = RandomScaleF16(rng);
      if (off == 2 && (t == DType::kQ4_K || t == DType::kQ5_K)) h &= 0x7fff;  // dmin >= 0
      std::memcpy(dst + b * info.block_bytes + off, &h, 2);
    }
  }
}

std::vector<float> Dequant(DType t, const uint8_t* src, int64_t n) {
  std::vector<float> out(n);
  Scalar().dequantize_row(t, out.data(), src, n);
  return out;
}
// Per element |offset part| of a weight row (see QuantByteRange).
std::vector<float> OffsetPart(DType t, const uint8_t* src, int64_t n) {
  const DTypeInfo& info = Info(t);
  if (!info.quantized) return std::vector<float>(n, 0.0f);
  std::vector<uint8_t> copy(src, src + RowBytes(t, n));
  const auto [begin, len] = QuantByteRange(t);
  for (int64_t b = 0; b < n / info.block_size; ++b) {
    std::memset(copy.data() + b * info.block_bytes + begin, 0, len);
  }
  // Q6_K's zero quants mean -32: the offset part is d * sc * -32.
  std::vector<float> out = Dequant(t, copy.data(), n);
  for (float& v : out) v = std::fabs(v);
  return out;
}

struct Activation {
  std::vector<float> x;     // the float activations
  std::vector<uint8_t> q;   // x converted to the dot partner type
  std::vector<float> xq;    // q dequantized
};
Activation MakeActivation(DType wtype, int64_t n, std::mt19937& rng) {
  Activation a;
  const DType p = DotPartner(wtype);
  a.x = RandomFloats(n, rng, 2.0f);
  a.q.resize(RowBytes(p, n));
  Scalar().quantize_row(p, a.q.data(), a.x.data(), n);
  a.xq = Dequant(p, a.q.data(), n);
  return a;
}

// Tolerance for a dot product of weights against xq: 1e-5 relative to the sum
// of |terms|, counting the block offsets separately so that cancellation
// between d * q and m does not make the bound too tight.
double DotTolerance(DType wtype, const uint8_t* w, const std::vector<float>& xq, int64_t n) {
  const std::vector<float> wf = Dequant(wtype, w, n);
  const std::vector<float> off = OffsetPart(wtype, w, n);
  double mass = 0.0;
  for (int64_t i = 0; i < n; ++i) mass += (std::fabs(wf[i]) + off[i]) * std::fabs(xq[i]);
  return 1e-5 * mass + 1e-30;
}

std::vector<int64_t> Sizes(DType t) {
  const int64_t bs = Info(t).block_size;
  std::vector<int64_t> out;
  if (bs == 1) {
    out = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100};
  } else {
    for (int64_t k = 1; k <= 7; ++k) out.push_back(k * bs);
  }
  out.push_back(4096);
  out.push_back(8192);
  return out;
}

TEST(QuantBlocksTest, SizesMatchDTypeTable) {
  EXPECT_EQ(Info(DType::kQ4_0).block_bytes, static_cast<int64_t>(sizeof(BlockQ4_0)));
  EXPECT_EQ(Info(DType::kQ4_1).block_bytes, static_cast<int64_t>(sizeof(BlockQ4_1)));
  EXPECT_EQ(Info(DType::kQ5_0).block_bytes, static_cast<int64_t>(sizeof(BlockQ5_0)));
  EXPECT_EQ(Info(DType::kQ5_1).block_bytes, static_cast<int64_t>(sizeof(BlockQ5_1)));
  EXPECT_EQ(Info(DType::kQ8_0).block_bytes, static_cast<int64_t>(sizeof(BlockQ8_0)));
  EXPECT_EQ(Info(DType::kQ8_1).block_bytes, static_cast<int64_t>(sizeof(BlockQ8_1)));
  EXPECT_EQ(Info(DType::kQ4_K).block_bytes, static_cast<int64_t>(sizeof(BlockQ4_K)));
  EXPECT_EQ(Info(DType::kQ5_K).block_bytes, static_cast<int64_t>(sizeof(BlockQ5_K)));
  EXPECT_EQ(Info(DType::kQ6_K).block_bytes, static_cast<int64_t>(sizeof(BlockQ6_K)));
  EXPECT_EQ(Info(DType::kQ8_K).block_bytes, static_cast<int64_t>(sizeof(BlockQ8_K)));
}

// ---------------------------------------------------------------------------
// Known GGML bytes, as llama.cpp's x86 build produces them. Generated with
// numpy float32 transcriptions of GGML's x86 quantize_row_q8_0 / q8_1 (the
// AVX path: id = 127 / amax, round half to even) and quantize_row_q8_K_ref:
//
//   import numpy as np
//   def inputs(n):
//       i = np.arange(n, dtype=np.int64)
//       return ((((i * 7919 + 13) % 2003) - 1001).astype(np.float32) / np.float32(64)).astype(np.float32)
//   x64 = inputs(64); x64[32:36] = [127.0, 2.5, -3.5, 0.5]
//   # q8_0 / q8_1: per 32: d = f32(amax / 127); id = f32(127 / amax) or 0;
//   #       qs = np.rint(f32(blk * id)); d, s = f16(d), f16(f32(sum(qs)) * d)
//   x512 = inputs(512); x512[0:4] = [-127.0, 2.5, -3.5, 0.5]
//   x512[300] = -x512[256 + argmax(|x512[256:]|)]
//   # q8_K: per 256: mx = blk[first argmax |blk|]; iscale = f32(-127 / mx);
//   #       qs = min(127, np.rint(iscale * blk)); bsums = sums of 16; d = f32(1 / iscale)
constexpr const char* kExpectedQ8_0 =
    "c82f81776b5f53473b2f23170bfff3e7dbcfc3b7ab9f93877d7165594d4135291d11003c7f02fc00fbf9f8f6f5f4f2f1"
    "0f0d0c0a09070604030100fffdfcfaf9f7f6f4f3";
constexpr const char* kExpectedQ8_1 =
    "c82f455481776b5f53473b2f23170bfff3e7dbcfc3b7ab9f93877d7165594d4135291d11003c40537f02fc00fbf9f8f6"
    "f5f4f2f10f0d0c0a09070604030100fffdfcfaf9f7f6f4f3";
constexpr const char* kExpectedQ8_K =
    "0000803f8102fc000a09070604030100fefdfcfaf9f7f6f4f3f10f0e0c0b09080605040201fffefcfbf9f8f6f5f4f2f1"
    "0f0d0c0a09070604030100fffdfcfaf9f7f6f4f3f10f0e0c0b09080705040201fffefcfbfaf8f7f5f4f2f10f0d0c0a09"
    "070604030200fffdfcfaf9f7f6f4f3f20f0e0c0b0a080705040201fffefdfbfaf8f7f5f4f2f10f0d0c0a090706050302"
    "00fffdfcfaf9f7f6f5f3f2100e0d0b0a08070504020100fefdfbfaf8f7f5f4f2f10f0d0c0a09080605030200fffdfcfa"
    "f9f8f6f5f3f2100e0d0b0a08070504030100fefdfbfaf8f7f5f4f3f10f0e0c0b09080605030200fffefcfbf9f8f6f5f3"
    "f2f00e0d0b0a08070604030100fefdfbfaf8f7f698ff1400daffddff3d000400e7ffecff2d001200d6fff9ff3c000100"
    "c5ff07006fb7fb3d9f94887b6f63574b3f34281c1004f8ede1d5c9bdb2a69a8e8275695d52463a2e22170bfff3e7dbd0"
    "c4b8aca081897b7064584c4035291d1105f9eee2d6cabeb2a79b8f83766a5e53473b2f23170c00f4e8dcd0c5b9ada195"
    "8a7c7165594d41352a1e1206faeee3d7cbbfb3a89c9084776b5f53483c3024180c01f5e9ddd1c6baaea2968a7d71665a"
    "4e42362a1f1307fbefe4d8ccc0b4a89d9185786c6054483d3125190d02f6eaded2c6bbafa3978b7e72665b4f43372b20"
    "1408fcf0e4d9cdc1b5a99d9286796d6155493e32261a0e02f7ebdfd3c7bbb0a4988c7f73675c5044382c201509fdf1e5"
    "d9cec2b6aa9e93877a6e62564a3e33271b0f03f7ece0d4c85a0179ff85feb200d000edff0efe2601420163ff81fe9a01"
    "b800d7fff6fd0e02";

std::vector<float> KnownInput(int64_t n) {
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7919 + 13) % 2003 - 1001) / 64.0f;
  return x;
}
std::string Hex(const uint8_t* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

TEST(QuantTest, ActivationQuantizersMatchGgmlBytes) {
  std::vector<float> x64 = KnownInput(64);
  x64[32] = 127.0f;  // exact .5 ties: id = 1 in this block
  x64[33] = 2.5f;
  x64[34] = -3.5f;
  x64[35] = 0.5f;
  std::vector<float> x512 = KnownInput(512);
  x512[0] = -127.0f;
  x512[1] = 2.5f;
  x512[2] = -3.5f;
  x512[3] = 0.5f;
  int64_t argmax = 256;
  for (int64_t i = 256; i < 512; ++i) {
    if (std::fabs(x512[i]) > std::fabs(x512[argmax])) argmax = i;
  }
  x512[300] = -x512[argmax];  // same magnitude, opposite sign: the first one wins
  for (const CpuKernels* t : Tables()) {
    SCOPED_TRACE(t->name);
    for (int offset : {0, 3}) {
      Buffer b0(RowBytes(DType::kQ8_0, 64), offset);
      t->quantize_row(DType::kQ8_0, b0.data(), x64.data(), 64);
      EXPECT_EQ(Hex(b0.data(), RowBytes(DType::kQ8_0, 64)), kExpectedQ8_0);
      Buffer b1(RowBytes(DType::kQ8_1, 64), offset);
      t->quantize_row(DType::kQ8_1, b1.data(), x64.data(), 64);
      EXPECT_EQ(Hex(b1.data(), RowBytes(DType::kQ8_1, 64)), kExpectedQ8_1);
      Buffer bk(RowBytes(DType::kQ8_K, 512), offset);
      t->quantize_row(DType::kQ8_K, bk.data(), x512.data(), 512);
      EXPECT_EQ(Hex(bk.data(), RowBytes(DType::kQ8_K, 512)), kExpectedQ8_K);
    }
  }
}

// ---------------------------------------------------------------------------
// Round trips and ISA agreement of quantize/dequantize.

// Largest error of quantize -> dequantize, relative to the row's max |x|.
double RoundTripBound(DType t) {
  switch (t) {
    case DType::kF32: return 0.0;
    case DType::kF16: return 1e-3;
    case DType::kBF16: return 8e-3;
    case DType::kQ8_0: case DType::kQ8_1: case DType::kQ8_K: return 0.5 / 127 + 1e-3;
    // GGML's symmetric quantizers clamp the value opposite the max to 2^k - 1.
    case DType::kQ4_0: return 1.0 / 8 + 3e-3;
    case DType::kQ5_0: return 1.0 / 16 + 3e-3;
    case DType::kQ4_1: return 0.5 * 2 / 15 + 3e-3;
    case DType::kQ5_1: return 0.5 * 2 / 31 + 3e-3;
    // K-quants also round their 6-bit sub-block scales and mins.
    case DType::kQ4_K: return 0.2;
    case DType::kQ5_K: return 0.1;
    case DType::kQ6_K: return 0.06;
    default: return 0.0;
  }
}

// Weights packed at load give bit-identical results to the GGUF layout, for
// every batch size and row range, in the same bytes (per 16 rows).
TEST(QuantTest, PackedMatmulEqualsUnpackedBitForBit) {
  std::mt19937 rng(23);
  constexpr int64_t kRows = 37;
  int packed_types = 0;
  for (const CpuKernels* t : Tables()) {
    for (DType wtype : kWeightTypes) {
      for (int64_t n_in : {int64_t{96}, int64_t{576}, int64_t{1024}}) {
        if (n_in % Info(wtype).block_size != 0) continue;
        const int64_t bytes = t->packed_bytes(wtype, kRows, n_in);
        if (bytes == 0) continue;
        ++packed_types;
        SCOPED_TRACE(std::string(t->name) + " " + Name(wtype) + " n_in=" + std::to_string(n_in));
        EXPECT_EQ(t->packed_bytes(wtype, 32, n_in), 32 * RowBytes(wtype, n_in));
        const int64_t w_row = RowBytes(wtype, n_in);
        Buffer w(w_row * kRows, 1);
        for (int64_t r = 0; r < kRows; ++r) RandomWeights(wtype, w.data() + r * w_row, n_in, rng);
        std::vector<uint8_t, AlignedAlloc<uint8_t>> packed(static_cast<size_t>(bytes));
        t->pack_rows(packed.data(), w.data(), wtype, kRows, n_in);
        const DType p = DotPartner(wtype);
        const int64_t x_stride = RowBytes(p, n_in);
        // 12..40: AMX tile groups of 16 tokens (full, partial, several); 40:
        // long prefills unpack each tile once.
        for (int64_t n_tokens : {1, 2, 5, 12, 16, 17, 40}) {
          Buffer x(x_stride * n_tokens, 0);
          for (int64_t tk = 0; tk < n_tokens; ++tk) {
            const Activation a = MakeActivation(wtype, n_in, rng);
            std::memcpy(x.data() + tk * x_stride, a.q.data(), a.q.size());
          }
          for (auto [row_begin, row_end] : {std::pair<int64_t, int64_t>{0, kRows}, {5, 21}, {16, kRows}}) {
            std::vector<float> want(kRows * n_tokens, -1.0f), got(kRows * n_tokens, -1.0f);
            t->matmul_rows(want.data(), kRows, w.data(), wtype, n_in, x.data(), x_stride, n_tokens, row_begin, row_end);
            t->matmul_packed(got.data(), kRows, packed.data(), wtype, n_in, x.data(), x_stride, n_tokens, row_begin,
                             row_end);
            ASSERT_EQ(got, want) << n_tokens << " tokens, rows [" << row_begin << "," << row_end << ")";
          }
          // The same matrix by threads that claim its tiles as they come
          // free: every row exactly once, the same bits.
          for (int n_threads : {1, 3}) {
            std::vector<float> want(kRows * n_tokens, -1.0f), got(kRows * n_tokens, -1.0f);
            t->matmul_rows(want.data(), kRows, w.data(), wtype, n_in, x.data(), x_stride, n_tokens, 0, kRows);
            WorkClaims claims((kRows + 15) / 16, n_threads);
            std::vector<std::thread> threads;
            for (int i = 0; i < n_threads; ++i) {
              threads.emplace_back([&] {
                t->matmul_packed_claimed(got.data(), kRows, packed.data(), wtype, n_in, x.data(), x_stride, n_tokens,
                                         kRows, claims, /*same_x=*/false);
              });
            }
            for (std::thread& th : threads) th.join();
            ASSERT_EQ(got, want) << n_tokens << " tokens, claimed by " << n_threads << " threads";
          }
          // A second weight over the same activations (as k after q) keeps
          // what the first call prepared: the second matrix's own bits. Its
          // rows are the first's in reverse, so a result from the first
          // weight's preparation of anything but x would differ.
          {
            Buffer w2(w_row * kRows, 1);
            for (int64_t r = 0; r < kRows; ++r) std::memcpy(w2.data() + r * w_row, w.data() + (kRows - 1 - r) * w_row, w_row);
            std::vector<uint8_t, AlignedAlloc<uint8_t>> packed2(static_cast<size_t>(bytes));
            t->pack_rows(packed2.data(), w2.data(), wtype, kRows, n_in);
            std::vector<float> want(kRows * n_tokens, -1.0f), first(kRows * n_tokens, -1.0f),
                got(kRows * n_tokens, -1.0f);
            t->matmul_rows(want.data(), kRows, w2.data(), wtype, n_in, x.data(), x_stride, n_tokens, 0, kRows);
            WorkClaims c1((kRows + 15) / 16, 1), c2((kRows + 15) / 16, 1);
            t->matmul_packed_claimed(first.data(), kRows, packed.data(), wtype, n_in, x.data(), x_stride, n_tokens,
                                     kRows, c1, /*same_x=*/false);
            t->matmul_packed_claimed(got.data(), kRows, packed2.data(), wtype, n_in, x.data(), x_stride, n_tokens,
                                     kRows, c2, /*same_x=*/true);
            ASSERT_EQ(got, want) << n_tokens << " tokens, second weight over the same activations";
            // New activations in the same buffer, not marked the same: prepared again.
            for (int64_t tk = 0; tk < n_tokens; ++tk) {
              const Activation a = MakeActivation(wtype, n_in, rng);
              std::memcpy(x.data() + tk * x_stride, a.q.data(), a.q.size());
            }
            t->matmul_rows(want.data(), kRows, w2.data(), wtype, n_in, x.data(), x_stride, n_tokens, 0, kRows);
            WorkClaims c3((kRows + 15) / 16, 1);
            t->matmul_packed_claimed(got.data(), kRows, packed2.data(), wtype, n_in, x.data(), x_stride, n_tokens,
                                     kRows, c3, /*same_x=*/false);
            ASSERT_EQ(got, want) << n_tokens << " tokens, new activations in the same buffer";
          }
        }
      }
    }
  }
  if (DetectIsa() >= Isa::kAvx512) {
    EXPECT_GT(packed_types, 0);
  }
}

// f32 -> f16 (the serving engine's KV cache rows): every table rounds
// exactly as the scalar one, tails included.
TEST(QuantTest, F16RowsEqualScalarBitForBit) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> dist(-70000.0f, 70000.0f);
  for (const CpuKernels* t : Tables()) {
    for (int64_t n : {1, 7, 8, 37, 192, 256}) {
      std::vector<float> x(n);
      for (int64_t i = 0; i < n; ++i) x[i] = (i % 3 == 0) ? dist(rng) : dist(rng) * 1e-6f;
      if (n > 2) x[1] = 65520.0f;  // rounds to infinity
      std::vector<uint16_t> got(n), want(n);
      t->quantize_row(DType::kF16, got.data(), x.data(), n);
      Scalar().quantize_row(DType::kF16, want.data(), x.data(), n);
      ASSERT_EQ(got, want) << t->name << " n=" << n;
    }
  }
}

TEST(QuantTest, QuantizeDequantizeRoundTrip) {
  std::mt19937 rng(1);
  for (DType type : kQuantizableTypes) {
    for (int64_t n : Sizes(type)) {
      SCOPED_TRACE(Name(type) + " n=" + std::to_string(n));
      const std::vector<float> x = RandomFloats(n, rng, 3.0f);
      // Block-wise bound: each block is scaled from its own max.
      const int64_t bs = std::max<int64_t>(Info(type).block_size, 1);
      std::vector<uint8_t> q(RowBytes(type, n));
      Scalar().quantize_row(type, q.data(), x.data(), n);
      const std::vector<float> y = Dequant(type, q.data(), n);
      for (int64_t b = 0; b < n / bs; ++b) {
        float amax = 0.0f;
        for (int64_t i = b * bs; i < (b + 1) * bs; ++i) amax = std::max(amax, std::fabs(x[i]));
        const double bound = RoundTripBound(type) * (bs == 1 ? std::fabs(x[b]) : amax) * 1.0001 + 1e-7;
        for (int64_t i = b * bs; i < (b + 1) * bs; ++i) {
          ASSERT_LE(std::fabs(y[i] - x[i]), bound) << "element " << i;
        }
      }
      // Every ISA writes the same bytes and reads them back the same, at any alignment.
      for (const CpuKernels* t : Tables()) {
        for (int offset : {1, 6}) {
          Buffer qb(q.size(), offset);
          t->quantize_row(type, qb.data(), x.data(), n);
          ASSERT_EQ(0, std::memcmp(qb.data(), q.data(), q.size())) << t->name << " offset " << offset;
          // Float outputs are misaligned by whole elements (a float* is 4-aligned by type).
          Buffer fb(n * sizeof(float), 4 * offset);
          t->dequantize_row(type, reinterpret_cast<float*>(fb.data()), qb.data(), n);
          ASSERT_EQ(0, std::memcmp(fb.data(), y.data(), n * sizeof(float))) << t->name;
        }
      }
    }
  }
}

// Inputs that stress the activation quantizers' rounding: all-zero blocks,
// exact .5 ties, a negative and a positive value of the same largest magnitude.
TEST(QuantTest, ActivationQuantizersAgreeOnEdgeCases) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> x(512);
    std::uniform_int_distribution<int> ints(-254, 254);
    for (float& v : x) v = trial % 2 ? ints(rng) * 0.5f : RandomFloats(1, rng, 10.0f)[0];
    if (trial % 5 == 0) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
    if (trial % 5 == 1) std::fill(x.begin() + 256, x.end(), 0.0f);
    if (trial % 3 == 0) {
      x[17] = 127.0f;
      x[200] = -127.0f;
    }
    // 512: one group of the 16-block path; 576: a group and two blocks
    // after it (a SmolLM2 row); 1,056: two groups and a block.
    x.resize(1056);
    for (size_t i = 512; i < x.size(); ++i) x[i] = x[i - 512] * (trial % 4 == 0 ? -1.0f : 0.25f);
    for (DType type : {DType::kQ8_0, DType::kQ8_1, DType::kQ8_K}) {
      for (int64_t n : {512, 576, 1056}) {
        if (n % Info(type).block_size != 0) continue;
        std::vector<uint8_t> ref(RowBytes(type, n));
        Scalar().quantize_row(type, ref.data(), x.data(), n);
        for (const CpuKernels* t : Tables()) {
          std::vector<uint8_t> got(ref.size());
          t->quantize_row(type, got.data(), x.data(), n);
          ASSERT_EQ(Hex(got.data(), got.size()), Hex(ref.data(), ref.size())) << t->name << " " << Name(type) << " n=" << n;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Dot products.

TEST(QuantTest, ScalarVecDotMatchesFloatMath) {
  std::mt19937 rng(3);
  for (DType wtype : kWeightTypes) {
    for (int64_t n : Sizes(wtype)) {
      SCOPED_TRACE(Name(wtype) + " n=" + std::to_string(n));
      std::vector<uint8_t> w(RowBytes(wtype, n));
      RandomWeights(wtype, w.data(), n, rng);
      const Activation a = MakeActivation(wtype, n, rng);
      const std::vector<float> wf = Dequant(wtype, w.data(), n);
      const std::vector<float> off = OffsetPart(wtype, w.data(), n);
      const float got = Scalar().vec_dot(wtype, w.data(), a.q.data(), n);
      // Against the dequantized activations: only float rounding differs,
      // and Q8_1's f16 rounding of s = d * sum(q) (which multiplies the mins).
      double exact = 0.0, s_rounding = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        exact += static_cast<double>(wf[i]) * a.xq[i];
        s_rounding += 1e-3 * off[i] * std::fabs(a.xq[i]);
      }
      EXPECT_NEAR(got, exact, s_rounding + DotTolerance(wtype, w.data(), a.xq, n));
      // Against the float activations: the activation quantization error,
      // plus Q8_1's f16 rounding of s (which multiplies the block mins).
      double full = 0.0, bound = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        full += static_cast<double>(wf[i]) * a.x[i];
        bound += std::fabs(wf[i]) * std::fabs(a.x[i] - a.xq[i]) + 1e-3 * off[i] * std::fabs(a.xq[i]);
      }
      EXPECT_NEAR(got, full, 1.01 * bound + DotTolerance(wtype, w.data(), a.xq, n));
    }
  }
}

TEST(QuantTest, VecDotEveryIsaMatchesScalar) {
  std::mt19937 rng(4);
  for (const CpuKernels* t : Tables()) {
    for (DType wtype : kWeightTypes) {
      for (int64_t n : Sizes(wtype)) {
        for (int offset = 0; offset < 8; offset += (n > 1024 ? 7 : 1)) {
          SCOPED_TRACE(std::string(t->name) + " " + Name(wtype) + " n=" + std::to_string(n) +
                       " offset=" + std::to_string(offset));
          Buffer w(RowBytes(wtype, n), offset);
          RandomWeights(wtype, w.data(), n, rng);
          const Activation a = MakeActivation(wtype, n, rng);
          Buffer x(a.q.size(), (offset * 5) % 8);
          std::memcpy(x.data(), a.q.data(), a.q.size());
          const float want = Scalar().vec_dot(wtype, w.data(), x.data(), n);
          const float got = t->vec_dot(wtype, w.data(), x.data(), n);
          ASSERT_NEAR(got, want, DotTolerance(wtype, w.data(), a.xq, n));
        }
      }
    }
  }
}

// Extreme weight bytes: every quant at its largest and smallest value (Q8_0
// weights of -128 included), against activations at +-127.
TEST(QuantTest, VecDotExtremeQuants) {
  std::mt19937 rng(5);
  for (const CpuKernels* t : Tables()) {
    for (DType wtype : kWeightTypes) {
      if (!Info(wtype).quantized) continue;
      const int64_t n = 2 * kQK_K;
      for (uint8_t fill : {0x00, 0xFF, 0x80, 0x7F}) {
        SCOPED_TRACE(std::string(t->name) + " " + Name(wtype) + " fill=" + std::to_string(fill));
        std::vector<uint8_t> w(RowBytes(wtype, n));
        RandomWeights(wtype, w.data(), n, rng);
        const auto [begin, len] = QuantByteRange(wtype);
        for (int64_t b = 0; b < n / Info(wtype).block_size; ++b) {
          std::memset(w.data() + b * Info(wtype).block_bytes + begin, fill, len);
        }
        std::vector<float> xf(n);
        for (int64_t i = 0; i < n; ++i) xf[i] = (i % 3 == 0) ? -1.0f : 1.0f;
        const DType p = DotPartner(wtype);
        std::vector<uint8_t> xq(RowBytes(p, n));
        Scalar().quantize_row(p, xq.data(), xf.data(), n);
        const std::vector<float> xd = Dequant(p, xq.data(), n);
        const float want = Scalar().vec_dot(wtype, w.data(), xq.data(), n);
        ASSERT_NEAR(t->vec_dot(wtype, w.data(), xq.data(), n), want, DotTolerance(wtype, w.data(), xd, n));
      }
    }
  }
}

TEST(QuantTest, MatmulRowsEveryIsaMatchesScalar) {
  std::mt19937 rng(6);
  constexpr int64_t kRows = 37, kLdoPad = 3;
  constexpr float kSentinel = -12345.0f;
  for (const CpuKernels* t : Tables()) {
    for (DType wtype : kWeightTypes) {
      const DType p = DotPartner(wtype);
      const int64_t bs = Info(wtype).block_size;
      for (int64_t n_in : {bs * (bs == 1 ? 37 : 1), bs * (bs == 1 ? 64 : 3), int64_t{1024}}) {
        const int64_t w_row = RowBytes(wtype, n_in);
        Buffer w(w_row * kRows, 1);
        for (int64_t r = 0; r < kRows; ++r) RandomWeights(wtype, w.data() + r * w_row, n_in, rng);
        for (int64_t n_tokens : {1, 2, 3, 5, 8, 10, 11, 17}) {
          const int64_t x_stride = RowBytes(p, n_in) + 5;  // odd stride: misaligned rows
          Buffer x(x_stride * n_tokens, 3);
          std::vector<std::vector<float>> xq(n_tokens);
          for (int64_t tk = 0; tk < n_tokens; ++tk) {
            const Activation a = MakeActivation(wtype, n_in, rng);
            std::memcpy(x.data() + tk * x_stride, a.q.data(), a.q.size());
            xq[tk] = a.xq;
          }
          for (auto [row_begin, row_end] : {std::pair<int64_t, int64_t>{0, kRows}, {2, 35}, {16, 32}, {5, 6}, {3, 3}}) {
            SCOPED_TRACE(std::string(t->name) + " " + Name(wtype) + " n_in=" + std::to_string(n_in) +
                         " n_tokens=" + std::to_string(n_tokens) + " rows=[" + std::to_string(row_begin) +
                         "," + std::to_string(row_end) + ")");
            const int64_t ldo = kRows + kLdoPad;
            std::vector<float> out(ldo * n_tokens, kSentinel);
            t->matmul_rows(out.data(), ldo, w.data(), wtype, n_in, x.data(), x_stride, n_tokens, row_begin,
                           row_end);
            for (int64_t tk = 0; tk < n_tokens; ++tk) {
              for (int64_t r = 0; r < ldo; ++r) {
                const float got = out[tk * ldo + r];
                if (r < row_begin || r >= row_end) {
                  ASSERT_EQ(got, kSentinel) << "wrote outside rows: t=" << tk << " r=" << r;
                  continue;
                }
                const uint8_t* wr = w.data() + r * w_row;
                const float want = Scalar().vec_dot(wtype, wr, x.data() + tk * x_stride, n_in);
                ASSERT_NEAR(got, want, DotTolerance(wtype, wr, xq[tk], n_in)) << "t=" << tk << " r=" << r;
              }
            }
          }
        }
      }
    }
  }
}

// A row's result does not depend on the batch around it: every token alone,
// any run of tokens, and any row range give bit-identical outputs. The
// serving engine relies on this, so that a request's greedy output does not
// change with the traffic it is batched with.
TEST(QuantTest, MatmulRowsIsBatchInvariant) {
  std::mt19937 rng(7);
  constexpr int64_t kRows = 37, kTokens = 19;
  for (const CpuKernels* t : Tables()) {
    for (DType wtype : kWeightTypes) {
      const DType p = DotPartner(wtype);
      const int64_t bs = Info(wtype).block_size;
      for (int64_t n_in : {bs * (bs == 1 ? 64 : 3), int64_t{1024}}) {
        SCOPED_TRACE(std::string(t->name) + " " + Name(wtype) + " n_in=" + std::to_string(n_in));
        const int64_t w_row = RowBytes(wtype, n_in);
        Buffer w(w_row * kRows, 1);
        for (int64_t r = 0; r < kRows; ++r) RandomWeights(wtype, w.data() + r * w_row, n_in, rng);
        const int64_t x_stride = RowBytes(p, n_in);
        Buffer x(x_stride * kTokens, 0);
        for (int64_t tk = 0; tk < kTokens; ++tk) {
          const Activation a = MakeActivation(wtype, n_in, rng);
          std::memcpy(x.data() + tk * x_stride, a.q.data(), a.q.size());
        }
        std::vector<float> all(kRows * kTokens);
        t->matmul_rows(all.data(), kRows, w.data(), wtype, n_in, x.data(), x_stride, kTokens, 0, kRows);
        // Each token alone, over two row ranges that split the 16-row tiles differently.
        for (int64_t tk = 0; tk < kTokens; ++tk) {
          std::vector<float> one(kRows);
          t->matmul_rows(one.data(), kRows, w.data(), wtype, n_in, x.data() + tk * x_stride, x_stride, 1, 0, 21);
          t->matmul_rows(one.data(), kRows, w.data(), wtype, n_in, x.data() + tk * x_stride, x_stride, 1, 21, kRows);
          for (int64_t r = 0; r < kRows; ++r) ASSERT_EQ(one[r], all[tk * kRows + r]) << "token " << tk << " row " << r;
        }
        // Runs of 2, 3 and 7 tokens from the middle.
        for (int64_t n : {2, 3, 7}) {
          std::vector<float> some(kRows * n);
          t->matmul_rows(some.data(), kRows, w.data(), wtype, n_in, x.data() + 5 * x_stride, x_stride, n, 3, kRows);
          for (int64_t tk = 0; tk < n; ++tk)
            for (int64_t r = 3; r < kRows; ++r)
              ASSERT_EQ(some[tk * kRows + r], all[(5 + tk) * kRows + r]) << n << " tokens, token " << tk << " row " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace atrium::kernels

// The q8_0 KV cache layout of kernels/kv_q8.h: writing a row, reading an
// element. Portable code: a decode step writes one row per sequence.
#include "kernels/kv_q8.h"

#include <cstring>

#include "kernels/kernels.h"
#include "runtime/dtype.h"
#include "runtime/status.h"

namespace atrium::kernels {
namespace {

// Where row `row`'s group starts, and its lane.
uint8_t* Group(KvSide side, void* base, int64_t dim, int64_t row) {
  return static_cast<uint8_t*>(base) + row / kKvQ8Rows * KvQ8GroupBytes(side, dim);
}

}  // namespace

void KvQ8StoreRow(KvSide side, void* base, int64_t dim, int64_t row, int64_t col0, const float* x, int64_t n) {
  ATRIUM_CHECK(dim % kQK == 0 && col0 % kQK == 0 && n % kQK == 0 && col0 + n <= dim,
               "q8_0 kv row: elements [%lld, +%lld) of a row of %lld, in blocks of %d", static_cast<long long>(col0),
               static_cast<long long>(n), static_cast<long long>(dim), kQK);
  uint8_t* g = Group(side, base, dim, row);
  const int64_t lane = row % kKvQ8Rows;
  for (int64_t c = col0 / kQK; c < (col0 + n) / kQK; ++c) {
    BlockQ8_0 b;
    Cpu().quantize_row(DType::kQ8_0, &b, x + (c * kQK - col0), kQK);
    if (side == KvSide::kKeys) {
      uint8_t* chunk = g + c * kKvQ8KeyChunk;
      int16_t sum = 0;
      for (int i = 0; i < kQK; ++i) {
        chunk[(i / 4) * 64 + lane * 4 + i % 4] = static_cast<uint8_t>(b.qs[i]);
        sum = static_cast<int16_t>(sum + b.qs[i]);
      }
      std::memcpy(chunk + 512 + lane * 2, &b.d, 2);
      std::memcpy(chunk + 544 + lane * 2, &sum, 2);
    } else {
      std::memcpy(g + lane * dim + c * kQK, b.qs, kQK);
      std::memcpy(g + kKvQ8Rows * dim + (c * kKvQ8Rows + lane) * 2, &b.d, 2);
    }
  }
}

void KvQ8QuantizeQuery(const float* x, int64_t n, BlockQ8_0* hi, BlockQ8_0* lo) {
  const CpuKernels& k = Cpu();
  k.quantize_row(DType::kQ8_0, hi, x, n);
  float rest[kQK];
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = F16ToF32(hi[b].d);
    for (int i = 0; i < kQK; ++i) rest[i] = x[b * kQK + i] - d * static_cast<float>(hi[b].qs[i]);
    k.quantize_row(DType::kQ8_0, lo + b, rest, kQK);
  }
}

BlockQ8_0 KvQ8Block(KvSide side, const void* base, int64_t dim, int64_t row, int64_t chunk) {
  const uint8_t* g = Group(side, const_cast<void*>(base), dim, row);
  const int64_t lane = row % kKvQ8Rows;
  BlockQ8_0 b;
  if (side == KvSide::kKeys) {
    const uint8_t* c = g + chunk * kKvQ8KeyChunk;
    for (int i = 0; i < kQK; ++i) b.qs[i] = static_cast<int8_t>(c[(i / 4) * 64 + lane * 4 + i % 4]);
    std::memcpy(&b.d, c + 512 + lane * 2, 2);
  } else {
    std::memcpy(b.qs, g + lane * dim + chunk * kQK, kQK);
    std::memcpy(&b.d, g + kKvQ8Rows * dim + (chunk * kKvQ8Rows + lane) * 2, 2);
  }
  return b;
}

float KvQ8Element(KvSide side, const void* base, int64_t dim, int64_t row, int64_t e) {
  const BlockQ8_0 b = KvQ8Block(side, base, dim, row, e / kQK);
  return F16ToF32(b.d) * static_cast<float>(b.qs[e % kQK]);
}

}  // namespace atrium::kernels

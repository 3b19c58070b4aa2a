// The q8_0 KV cache layout of kernels/kv_q8.h: writing a row, reading an
// element. Portable code: a decode step writes one row per sequence.
#include "kernels/kv_q8.h"

#include <cstring>

#include "kernels/kernels.h"
#include "runtime/dtype.h"
#include "runtime/status.h"

namespace atrium::kernels {
namespace {

// Bytes from the cache's start to row `row`'s group.
int64_t GroupOffset(KvSide side, int64_t dim, int64_t row) { return row / kKvQ8Rows * KvQ8GroupBytes(side, dim); }

}  // namespace

void KvQ8StoreRow(KvSide side, void* base, int64_t dim, int64_t row, int64_t col0, const float* x, int64_t n) {
  ATRIUM_CHECK(dim % kQK == 0 && col0 % kQK == 0 && n % kQK == 0 && col0 + n <= dim,
               "q8_0 kv row: elements [%lld, +%lld) of a row of %lld, in blocks of %d", static_cast<long long>(col0),
               static_cast<long long>(n), static_cast<long long>(dim), kQK);
  uint8_t* g = static_cast<uint8_t*>(base) + GroupOffset(side, dim, row);
  const int64_t lane = row % kKvQ8Rows;
  BlockQ8_0 blocks[kKvQ8MaxRow / kQK];
  for (int64_t piece = 0; piece < n; piece += kKvQ8MaxRow) {
    const int64_t m = n - piece < kKvQ8MaxRow ? n - piece : kKvQ8MaxRow;
    Cpu().quantize_row(DType::kQ8_0, blocks, x + piece, m);  // one call: a decode step makes thousands
    for (int64_t i = 0; i < m / kQK; ++i) {
      const BlockQ8_0& b = blocks[i];
      const int64_t c = (col0 + piece) / kQK + i;
      if (side == KvSide::kKeys) {
        uint8_t* chunk = g + c * kKvQ8KeyChunk;
        int16_t sum = 0;
        for (int e = 0; e < kQK; ++e) {
          chunk[(e / 4) * 64 + lane * 4 + e % 4] = static_cast<uint8_t>(b.qs[e]);
          sum = static_cast<int16_t>(sum + b.qs[e]);
        }
        std::memcpy(chunk + 512 + lane * 2, &b.d, 2);
        std::memcpy(chunk + 544 + lane * 2, &sum, 2);
      } else {
        std::memcpy(g + lane * dim + c * kQK, b.qs, kQK);
        std::memcpy(g + kKvQ8Rows * dim + (c * kKvQ8Rows + lane) * 2, &b.d, 2);
      }
    }
  }
}

void KvQ8QuantizeQuery(const float* x, int64_t n, BlockQ8_0* hi, BlockQ8_0* lo) {
  ATRIUM_CHECK(n % kQK == 0 && n <= kKvQ8MaxRow, "q8_0 kv query: %lld elements, not whole blocks of %d up to %lld",
               static_cast<long long>(n), kQK, static_cast<long long>(kKvQ8MaxRow));
  const CpuKernels& k = Cpu();
  k.quantize_row(DType::kQ8_0, hi, x, n);
  float rest[kKvQ8MaxRow];
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = F16ToF32(hi[b].d);
    for (int i = 0; i < kQK; ++i) rest[b * kQK + i] = x[b * kQK + i] - d * static_cast<float>(hi[b].qs[i]);
  }
  k.quantize_row(DType::kQ8_0, lo, rest, n);
}

BlockQ8_0 KvQ8Block(KvSide side, const void* base, int64_t dim, int64_t row, int64_t chunk) {
  const uint8_t* g = static_cast<const uint8_t*>(base) + GroupOffset(side, dim, row);
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

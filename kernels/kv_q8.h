// The layout of a q8_0 KV cache (DType::kQ8_0 as a KV cache type): GGML's
// q8_0 quantization of every 32 elements of a row (an f16 scale d and 32
// int8 quants q; the value is d * q, as llama.cpp's --cache-type-k/v q8_0),
// laid out so that decode attention reads 16 keys in the lanes of a SIMD
// register and never a line it does not use.
//
// Rows come in groups of kKvQ8Rows consecutive rows: row r is lane r % 16 of
// group r / 16 (a paged cache's pages are whole groups). A group of rows of
// `dim` elements (dim a multiple of 32) holds, per 32-element chunk c:
//
//   keys    at c * 576: the quants as [8 dim quads][16 lanes][4 dims] (512
//           bytes: one 64-byte line is 4 dims of all 16 rows, so vpdpbusd
//           forms 16 keys' dot products with no reduction), then the 16
//           rows' f16 scales (32 bytes), then the 16 rows' int16 sums of
//           their 32 quants (32 bytes: the query's quants are read as
//           unsigned, q + 128, and 128 * sum corrects for it);
//   values  the quants row by row, [16 rows][dim] (a head's slice of a row
//           is contiguous: one line for 64 dims), then the scales as
//           [chunk][16 rows] f16; the group padded to whole lines.
//
// A kv head of head_dim elements (a multiple of 32) is chunks [h *
// head_dim / 32, (h + 1) * head_dim / 32) of every group.
#pragma once

#include <cstdint>

#include "kernels/quant_blocks.h"

namespace atrium::kernels {

enum class KvSide { kKeys, kValues };

constexpr int64_t kKvQ8Rows = 16;
constexpr int64_t kKvQ8KeyChunk = 512 + 32 + 32;  // quants, scales, sums
constexpr int64_t kKvQ8MaxRow = 4096;  // elements of a query row (KvQ8QuantizeQuery)

// Bytes of one group of 16 rows of `dim` elements.
inline int64_t KvQ8GroupBytes(KvSide side, int64_t dim) {
  const int64_t chunks = dim / kQK;
  if (side == KvSide::kKeys) return chunks * kKvQ8KeyChunk;
  return (kKvQ8Rows * dim + chunks * kKvQ8Rows * 2 + 63) / 64 * 64;
}

// Row `row`'s elements [col0, col0 + n) (col0 and n multiples of 32) of the
// cache at base, rows of `dim` elements, set to x quantized to q8_0 exactly
// as quantize_row(kQ8_0) does.
void KvQ8StoreRow(KvSide side, void* base, int64_t dim, int64_t row, int64_t col0, const float* x, int64_t n);

// Block `chunk` (elements [32 chunk, 32 chunk + 32)) of row `row`, as GGML's q8_0 block.
BlockQ8_0 KvQ8Block(KvSide side, const void* base, int64_t dim, int64_t row, int64_t chunk);

// A query row of n elements (a multiple of 32, at most kKvQ8MaxRow) as
// attention over a q8_0 cache reads it: hi = x quantized to q8_0, lo = what
// hi misses (x - hi's values) quantized to q8_0 again. A score's integer
// dot products with a key's quants then carry about 15 bits of the query,
// not 8: one level alone moved SmolLM2's mean log-likelihood over a
// 110-token text 0.0096 from f16's, two 0.0008.
void KvQ8QuantizeQuery(const float* x, int64_t n, BlockQ8_0* hi, BlockQ8_0* lo);

// Element e of row `row`, as f32: its block's d times its quant.
float KvQ8Element(KvSide side, const void* base, int64_t dim, int64_t row, int64_t e);

}  // namespace atrium::kernels

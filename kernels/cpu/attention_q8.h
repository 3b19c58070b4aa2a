// Internal: causal grouped-query attention over a q8_0 KV cache in the
// layout of kernels/kv_q8.h, for any ISA: the walk over keys, the online
// softmax and the prefetching, over an ISA's float vector interface V (of
// float_simd.h) and its Ops for a group's scores and weighted values
// (attention_q8_avx512.h: VNNI; attention_q8_avx2.h). Internal linkage for
// the reason float_simd.h gives.
//
// Per (kv head, query token) the group's query heads, quantized to q8_0 in
// two levels (KvQ8QuantizeQuery), walk the visible keys 16 at a time, the
// keys of a group of rows in the lanes: per 4 dims one 64-byte line of K
// gives 16 keys' partial dot products, with no reduction across lanes.
// Scores go through an online softmax over blocks of 128 keys; V's rows (a
// head's slice of a row is one line at head_dim 64) are converted to f32
// and weighted as in the f16 kernel. The cache reads about half the lines
// of f16.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "kernels/cpu/attention_simd.h"
#include "kernels/cpu/float_simd.h"
#include "kernels/kernels.h"
#include "kernels/kv_q8.h"
#include "runtime/dtype.h"
#include "runtime/status.h"

namespace atrium::kernels {
namespace {

constexpr int64_t kQ8BlockKeys = 128;  // keys per online-softmax block: 8 groups
constexpr int64_t kQ8Heads = 8;        // query heads of one kv head attended together
constexpr int64_t kQ8MaxHeadDim = 512;
constexpr int64_t kQ8KeysAhead = 3;    // groups of keys fetched ahead of their scores

// prefetcht0 of p's line. (_mm_prefetch in this header's member functions
// was dropped by GCC 12 at -O3: objdump found no prefetch in AttendQ8.)
inline void FetchLine(const char* p) { asm volatile("prefetcht0 %0" : : "m"(*p)); }

// One kv head of one layer's q8_0 cache.
struct Q8Head {
  const uint8_t* k;
  const uint8_t* v;
  int64_t dim;                 // elements per row (the cache's row stride)
  int64_t k_group, v_group;    // bytes per group of 16 rows
  const int32_t* blocks;       // null: contiguous
  int64_t block_tokens;
  int64_t chunk0, chunks;      // the head's 32-element chunks of a row

  Q8Head(const void* k_base, const void* v_base, int64_t row_dim, const int32_t* table, int64_t page,
         int64_t kv_head, int64_t head_dim)
      : k(static_cast<const uint8_t*>(k_base)),
        v(static_cast<const uint8_t*>(v_base)),
        dim(row_dim),
        k_group(KvQ8GroupBytes(KvSide::kKeys, row_dim)),
        v_group(KvQ8GroupBytes(KvSide::kValues, row_dim)),
        blocks(table),
        block_tokens(page),
        chunk0(kv_head * head_dim / kQK),
        chunks(head_dim / kQK) {}
  // Key j's row; for j a multiple of 16, the first row of its group.
  int64_t Row(int64_t j) const {
    return blocks == nullptr ? j : blocks[j / block_tokens] * block_tokens + j % block_tokens;
  }
  const uint8_t* KeyChunks(int64_t j) const { return k + Row(j) / kKvQ8Rows * k_group + chunk0 * kKvQ8KeyChunk; }
  const uint8_t* ValueGroup(int64_t j) const { return v + Row(j) / kKvQ8Rows * v_group; }
  // The group of key j (a multiple of 16) towards L1: its K chunks, or its
  // V rows' slices and scales.
  void FetchKeys(int64_t j) const {
    const char* p = reinterpret_cast<const char*>(KeyChunks(j));
    for (int64_t b = 0; b < chunks * kKvQ8KeyChunk; b += 64) FetchLine(p + b);
  }
  void FetchValues(int64_t j) const {
    const char* g = reinterpret_cast<const char*>(ValueGroup(j));
    for (int64_t r = 0; r < kKvQ8Rows; ++r) {
      for (int64_t b = 0; b < chunks * kQK; b += 64) FetchLine(g + r * dim + chunk0 * kQK + b);
    }
    for (int64_t b = 0; b < chunks * kKvQ8Rows * 2; b += 64) {
      FetchLine(g + kKvQ8Rows * dim + chunk0 * kKvQ8Rows * 2 + b);
    }
  }
};

// The group's query heads in KvQ8QuantizeQuery's two levels: per level,
// head and 4 dims the quants as one dword (plus 128 each where the ISA's
// dot product wants them unsigned); per level, head and chunk, d * scale.
struct Q8Query {
  alignas(64) int32_t quads[2][kQ8Heads][kQ8MaxHeadDim / 4];
  float d[2][kQ8Heads][kQ8MaxHeadDim / kQK];
};

// One head's softmax weights of a group's 16 keys times their V block
// scales, per chunk of the head.
using Q8Weights = float[kQ8MaxHeadDim / kQK][kKvQ8Rows];

template <bool kUnsigned>
inline void QuantizeQuery(Q8Query& out, const float* q_heads, int64_t nh, int64_t head_dim, float scale) {
  BlockQ8_0 b[2][kQ8MaxHeadDim / kQK];
  for (int64_t h = 0; h < nh; ++h) {
    KvQ8QuantizeQuery(q_heads + h * head_dim, head_dim, b[0], b[1]);
    for (int level = 0; level < 2; ++level) {
      for (int64_t c = 0; c < head_dim / kQK; ++c) {
        out.d[level][h][c] = F16ToF32(b[level][c].d) * scale;
        __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[level][c].qs));
        if constexpr (kUnsigned) u = _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80)));  // q + 128
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(&out.quads[level][h][c * 8]), u);
      }
    }
  }
}

// NH query heads (q_heads rows head_dim apart) of one token over the keys
// [begin, end) of one kv head, into out (rows head_dim apart). `then`: the
// first group this thread reads next (null: none), fetched during the last.
template <class V, class Ops, int NH>
void AttendQ8(float* out, const float* q_heads, const Q8Head& kv, int64_t begin, int64_t end, int64_t head_dim,
              float scale, float softcap, const Q8Head* then, int64_t then_key) {
  Q8Query q;
  QuantizeQuery<Ops::kUnsignedQuery>(q, q_heads, NH, head_dim, scale);
  alignas(64) float acc[NH][kQ8MaxHeadDim];
  alignas(64) float p[NH][kQ8BlockKeys];
  alignas(64) Q8Weights w[NH];
  float max[NH], sum[NH];
  for (int h = 0; h < NH; ++h) {
    max[h] = -INFINITY;
    sum[h] = 0.0f;
    Map1<V>(acc[h], acc[h], head_dim, [](auto) { return V::Zero(); });
  }
  const int64_t first = begin / kKvQ8Rows * kKvQ8Rows;
  // Keys are fetched kQ8KeysAhead groups ahead of their scores: a group's
  // scores take less time than a line takes to come from DRAM.
  for (int64_t j = first; j < first + kQ8KeysAhead * kKvQ8Rows && j < end; j += kKvQ8Rows) kv.FetchKeys(j);
  for (int64_t j0 = first; j0 < end; j0 += kQ8BlockKeys) {
    const int64_t j1 = j0 + kQ8BlockKeys < end ? j0 + kQ8BlockKeys : end;
    const int64_t n = (j1 - j0 + kKvQ8Rows - 1) / kKvQ8Rows * kKvQ8Rows;  // whole groups
    // Scores, fetching keys ahead and this block's values (a block's K and
    // V, ~18 KiB at head_dim 64, stay in L1 for the weighted sum).
    for (int64_t j = j0; j < j1; j += kKvQ8Rows) {
      if (j + kQ8KeysAhead * kKvQ8Rows < end) kv.FetchKeys(j + kQ8KeysAhead * kKvQ8Rows);
      kv.FetchValues(j);
      const int64_t lo = begin > j ? begin - j : 0, hi = end - j < kKvQ8Rows ? end - j : kKvQ8Rows;
      const auto valid = static_cast<uint32_t>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
      Ops::template Scores<V, NH>(p, j - j0, kv.KeyChunks(j), kv.chunks, q, softcap, valid);
    }
    float corr[NH];
    for (int h = 0; h < NH; ++h) {
      const float block_max = MaxOf<V>(p[h], n);
      const float new_max = block_max > max[h] ? block_max : max[h];
      corr[h] = expf(max[h] - new_max);  // 0 at the first block, when acc is still zero
      max[h] = new_max;
      sum[h] = sum[h] * corr[h] + ExpShiftSum<V>(p[h], n, new_max);
      if (corr[h] != 1.0f) {
        const auto cv = V::Set1(corr[h]);
        Map1<V>(acc[h], acc[h], head_dim, [&](auto a) { return V::Mul(a, cv); });
      }
    }
    // The weighted sum; after the last block's first group, the first keys
    // of what this thread reads next. Each key's weight is multiplied by
    // its V block scales first, so the Ops weight V's quants directly.
    for (int64_t j = j0; j < j1; j += kKvQ8Rows) {
      if (j == j0 && j1 >= end && then != nullptr) then->FetchKeys(then_key);
      const int64_t lo = begin > j ? begin - j : 0, hi = end - j < kKvQ8Rows ? end - j : kKvQ8Rows;
      const uint8_t* g = kv.ValueGroup(j);
      const auto* dv = reinterpret_cast<const uint16_t*>(g + kKvQ8Rows * kv.dim) + kv.chunk0 * kKvQ8Rows;
      for (int h = 0; h < NH; ++h) {
        for (int64_t c = 0; c < kv.chunks; ++c) {
          for (int64_t i = 0; i < kKvQ8Rows; i += V::kLanes) {
            V::Store(w[h][c] + i, V::Mul(V::Load(p[h] + (j - j0) + i), V::LoadHalf(dv + c * kKvQ8Rows + i)));
          }
        }
      }
      Ops::template Values<NH>(acc[0], kQ8MaxHeadDim, w, g + kv.chunk0 * kQK, kv.dim, kv.chunks, lo, hi);
    }
  }
  for (int h = 0; h < NH; ++h) {
    const auto inv = V::Set1(1.0f / sum[h]);
    Map1<V>(out + h * head_dim, acc[h], head_dim, [&](auto a) { return V::Mul(a, inv); });
  }
}

// CpuKernels::attention for a q8_0 cache (kv_type kQ8_0; see kernels.h).
template <class V, class Ops>
void AttentionQ8(float* out, int64_t out_stride, const float* q, int64_t q_stride, const void* k, const void* v,
                 int64_t kv_stride, const int32_t* blocks, int64_t block_tokens, int64_t n_tokens, int64_t q_pos0,
                 int64_t n_kv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float softcap,
                 int64_t window, int64_t head_begin, int64_t head_end, const AttentionNext* next) {
  ATRIUM_CHECK(head_dim % kQK == 0 && head_dim <= kQ8MaxHeadDim && kv_stride % kQK == 0 &&
                   (blocks == nullptr || block_tokens % kKvQ8Rows == 0),
               "attention: a q8_0 cache needs head_dim (%lld, at most %lld) and the row (%lld) in blocks of %d, "
               "and pages (%lld tokens) of whole groups of %lld",
               static_cast<long long>(head_dim), static_cast<long long>(kQ8MaxHeadDim),
               static_cast<long long>(kv_stride), kQK, static_cast<long long>(block_tokens),
               static_cast<long long>(kKvQ8Rows));
  const int64_t group = n_heads / n_kv_heads;
  auto visible = [&](int64_t p, int64_t n) { return VisibleKeys(p, n, window); };
  const int64_t g_end = (head_end + group - 1) / group;
  for (int64_t g = head_begin / group; g < g_end; ++g) {
    const int64_t h0 = g * group > head_begin ? g * group : head_begin;
    const int64_t h1 = (g + 1) * group < head_end ? (g + 1) * group : head_end;
    const Q8Head kv(k, v, kv_stride, blocks, block_tokens, g, head_dim);
    // What this thread reads after this kv head's last token.
    Q8Head then = kv;
    int64_t then_key = 0;
    bool has_then = false;
    if (g + 1 < g_end) {
      then = Q8Head(k, v, kv_stride, blocks, block_tokens, g + 1, head_dim);
      then_key = visible(q_pos0, n_kv).first / kKvQ8Rows * kKvQ8Rows;
      has_then = true;
    } else if (next != nullptr && next->n_kv > 0) {
      then = Q8Head(next->k, next->v, kv_stride, next->blocks, block_tokens, next->kv_head, head_dim);
      then_key = visible(next->q_pos0, next->n_kv).first / kKvQ8Rows * kKvQ8Rows;
      has_then = true;
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      const auto [begin, end] = visible(q_pos0 + t, n_kv);
      const float* qt = q + t * q_stride;
      float* ot = out + t * out_stride;
      if (begin >= end) {
        Map1<V>(ot + h0 * head_dim, ot + h0 * head_dim, (h1 - h0) * head_dim, [](auto) { return V::Zero(); });
        continue;
      }
      const Q8Head* after = t + 1 == n_tokens && has_then ? &then : nullptr;
      for (int64_t h = h0; h < h1; h += kQ8Heads) {
        const int64_t nh = h1 - h < kQ8Heads ? h1 - h : kQ8Heads;
        float* oh = ot + h * head_dim;
        const float* qh = qt + h * head_dim;
        const Q8Head* fetch = h + nh < h1 ? nullptr : after;
        switch (nh) {
          case 1: AttendQ8<V, Ops, 1>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
          case 2: AttendQ8<V, Ops, 2>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
          case 3: AttendQ8<V, Ops, 3>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
          case 4: AttendQ8<V, Ops, 4>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
          case 5: AttendQ8<V, Ops, 5>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
          case 6: AttendQ8<V, Ops, 6>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
          case 7: AttendQ8<V, Ops, 7>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
          default: AttendQ8<V, Ops, 8>(oh, qh, kv, begin, end, head_dim, scale, softcap, fetch, then_key); break;
        }
      }
    }
  }
}

}  // namespace
}  // namespace atrium::kernels

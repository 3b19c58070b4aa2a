// Internal: SIMD causal grouped-query attention over an f32 or f16 KV cache
// (a q8_0 one: attention_q8.h), over the vector interface V of float_simd.h
// (include that first). Instantiated by float_avx2.cc and float_avx512.cc;
// internal linkage for the same reason as float_simd.h.
//
// Per (kv head, token): the query heads that share the kv head walk the
// visible keys together in blocks (online softmax), so K and V are read from
// memory once per group rather than once per query head. Scores are computed
// 4 keys at a time, vectorized over head_dim; the weighted sum of V rows is
// accumulated in registers, head_dim in blocks of up to 8 vectors.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "kernels/cpu/float_simd.h"
#include "runtime/status.h"

namespace atrium::kernels {
namespace {

// Elements [d, d + lanes) of a row of an f32 or f16 cache (E float or
// uint16_t), as f32 (d a multiple of the lanes).
template <class V>
inline typename V::T LoadE(const float* row, int64_t d) { return V::Load(row + d); }
template <class V>
inline typename V::T LoadE(const uint16_t* row, int64_t d) { return V::LoadHalf(row + d); }
template <class V>
inline typename V::T LoadTailE(const float* row, int64_t d, typename V::M m) { return V::LoadTail(row + d, m); }
template <class V>
inline typename V::T LoadTailE(const uint16_t* row, int64_t d, typename V::M m) {
  return V::LoadHalfTail(row + d, m);
}

// s[j] = scale * dot(q, k + j * kv_stride) for j in [0, n); dim elements
// each, kv_stride E units apart. LoadE converts the cache's elements to f32.
template <class V, typename E>
inline void AttentionScores(float* s, const float* q, const E* k, int64_t kv_stride,
                            int64_t n, int64_t dim, float scale) {
  constexpr int64_t L = V::kLanes;
  const int64_t full = dim / L * L;
  const auto tail = V::TailMask(dim - full);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const E* k0 = k + j * kv_stride;
    const E* k1 = k0 + kv_stride;
    const E* k2 = k1 + kv_stride;
    const E* k3 = k2 + kv_stride;
    auto a0 = V::Zero(), a1 = V::Zero(), a2 = V::Zero(), a3 = V::Zero();
    for (int64_t d = 0; d < full; d += L) {
      const auto qv = V::Load(q + d);
      a0 = V::Fma(qv, LoadE<V>(k0, d), a0);
      a1 = V::Fma(qv, LoadE<V>(k1, d), a1);
      a2 = V::Fma(qv, LoadE<V>(k2, d), a2);
      a3 = V::Fma(qv, LoadE<V>(k3, d), a3);
    }
    if (full < dim) {
      const auto qv = V::LoadTail(q + full, tail);
      a0 = V::Fma(qv, LoadTailE<V>(k0, full, tail), a0);
      a1 = V::Fma(qv, LoadTailE<V>(k1, full, tail), a1);
      a2 = V::Fma(qv, LoadTailE<V>(k2, full, tail), a2);
      a3 = V::Fma(qv, LoadTailE<V>(k3, full, tail), a3);
    }
    float r[4];
    V::Reduce4(a0, a1, a2, a3, r);
    for (int i = 0; i < 4; ++i) s[j + i] = scale * r[i];
  }
  for (; j < n; ++j) {
    const E* kj = k + j * kv_stride;
    auto a = V::Zero();
    for (int64_t d = 0; d < full; d += L) a = V::Fma(V::Load(q + d), LoadE<V>(kj, d), a);
    if (full < dim) a = V::Fma(V::LoadTail(q + full, tail), LoadTailE<V>(kj, full, tail), a);
    s[j] = scale * V::ReduceAdd(a);
  }
}

// acc[0 .. NV*L) = corr * acc + sum_j p[j] * (row j of v)[c .. c + NV*L),
// rows kv_stride E units apart, accumulated in NV registers.
template <class V, int NV, typename E>
inline void AccumulateRowsBlock(float* acc, float corr, const float* p, const E* v, int64_t c,
                                int64_t kv_stride, int64_t n) {
  constexpr int64_t L = V::kLanes;
  const auto cv = V::Set1(corr);
  typename V::T a[NV];
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) a[i] = V::Mul(V::Load(acc + i * L), cv);
  for (int64_t j = 0; j < n; ++j) {
    const auto w = V::Set1(p[j]);
    const E* row = v + j * kv_stride;
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) a[i] = V::Fma(w, LoadE<V>(row, c + i * L), a[i]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) V::Store(acc + i * L, a[i]);
}

// The same over all of dim: register blocks of 8, 4, 2, 1 vectors, then a
// masked tail.
template <class V, typename E>
inline void AccumulateRows(float* acc, float corr, const float* p, const E* v,
                           int64_t kv_stride, int64_t n, int64_t dim) {
  constexpr int64_t L = V::kLanes;
  int64_t c = 0;
  for (; dim - c >= 8 * L; c += 8 * L) AccumulateRowsBlock<V, 8>(acc + c, corr, p, v, c, kv_stride, n);
  if (dim - c >= 4 * L) {
    AccumulateRowsBlock<V, 4>(acc + c, corr, p, v, c, kv_stride, n);
    c += 4 * L;
  }
  if (dim - c >= 2 * L) {
    AccumulateRowsBlock<V, 2>(acc + c, corr, p, v, c, kv_stride, n);
    c += 2 * L;
  }
  if (dim - c >= L) {
    AccumulateRowsBlock<V, 1>(acc + c, corr, p, v, c, kv_stride, n);
    c += L;
  }
  if (c < dim) {
    const auto m = V::TailMask(dim - c);
    auto a = V::Mul(V::LoadTail(acc + c, m), V::Set1(corr));
    for (int64_t j = 0; j < n; ++j) {
      a = V::Fma(V::Set1(p[j]), LoadTailE<V>(v + j * kv_stride, c, m), a);
    }
    V::StoreTail(acc + c, m, a);
  }
}

// Where the keys and values of one kv head live: key j is row Row(j) of k
// and v, rows stride E units apart. A contiguous cache has no blocks; a paged
// one keeps block_tokens consecutive rows per block.
template <typename E>
struct KeyRows {
  const E* k;
  const E* v;
  int64_t stride;
  const int32_t* blocks;  // null: key j is row j
  int64_t block_tokens;
  int64_t Row(int64_t j) const {
    return blocks == nullptr ? j : blocks[j / block_tokens] * block_tokens + j % block_tokens;
  }
  // How many keys from j on, up to limit, are consecutive rows.
  int64_t Run(int64_t j, int64_t limit) const {
    if (blocks == nullptr) return limit;
    const int64_t left = block_tokens - j % block_tokens;
    return left < limit ? left : limit;
  }
};

// Rows of the next block of keys to bring towards L1 while this block is
// computed, a few per step of the loops that read this block: a burst of
// prefetches fills the core's line fill buffers and stalls it as a miss
// would, while spread out they overlap the arithmetic.
struct Ahead {
  const char* const* rows = nullptr;
  int64_t n = 0;      // rows
  int64_t bytes = 0;  // from each row's pointer on
  void Fetch(int64_t from, int64_t to) const {
    for (int64_t r = from; r < to && r < n; ++r) {
      for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(rows[r] + b, _MM_HINT_T0);
    }
  }
};

// Query heads of one kv head and one token that are attended together, and
// the largest head_dim the on-stack accumulators hold.
constexpr int64_t kGroupHeads = 8;
constexpr int64_t kMaxHeadDim = 512;
// Heads whose dot products share one conversion of a K or V row: four
// heads by four keys (or by four vectors of V) is 16 accumulators.
constexpr int kFusedHeads = 4;
constexpr int64_t kMaxBlock = 64;  // keys per online-softmax block

// Scores of HN heads (q rows head_dim apart) against nb keys (rows krow[j]):
// p[h][j] = scale * dot(q_h, k_j). Each key's row is loaded (and, for f16,
// converted) once for all HN heads; per (head, key) the sum runs in the same
// order as AttentionScores, four keys to one Reduce4.
template <class V, int HN, typename E>
inline void GroupScores(float (*p)[kMaxBlock], const float* q, const E* const* krow, int64_t nb, int64_t head_dim,
                        float scale, const Ahead& ahead = {}) {
  constexpr int64_t L = V::kLanes;
  const int64_t full = head_dim / L * L;
  const auto tail = V::TailMask(head_dim - full);
  int64_t j = 0;
  for (; j + 4 <= nb; j += 4) {
    ahead.Fetch(j, j + 4);
    typename V::T a[HN][4];
    for (int h = 0; h < HN; ++h)
      for (int i = 0; i < 4; ++i) a[h][i] = V::Zero();
    for (int64_t d = 0; d < full; d += L) {
      typename V::T k[4];
      for (int i = 0; i < 4; ++i) k[i] = LoadE<V>(krow[j + i], d);
      for (int h = 0; h < HN; ++h) {
        const auto qv = V::Load(q + h * head_dim + d);
        for (int i = 0; i < 4; ++i) a[h][i] = V::Fma(qv, k[i], a[h][i]);
      }
    }
    if (full < head_dim) {
      typename V::T k[4];
      for (int i = 0; i < 4; ++i) k[i] = LoadTailE<V>(krow[j + i], full, tail);
      for (int h = 0; h < HN; ++h) {
        const auto qv = V::LoadTail(q + h * head_dim + full, tail);
        for (int i = 0; i < 4; ++i) a[h][i] = V::Fma(qv, k[i], a[h][i]);
      }
    }
    for (int h = 0; h < HN; ++h) {
      float r[4];
      V::Reduce4(a[h][0], a[h][1], a[h][2], a[h][3], r);
      for (int i = 0; i < 4; ++i) p[h][j + i] = scale * r[i];
    }
  }
  ahead.Fetch(j, ahead.n);
  for (; j < nb; ++j) {
    for (int h = 0; h < HN; ++h) {
      const float* qh = q + h * head_dim;
      auto a = V::Zero();
      for (int64_t d = 0; d < full; d += L) a = V::Fma(V::Load(qh + d), LoadE<V>(krow[j], d), a);
      if (full < head_dim) a = V::Fma(V::LoadTail(qh + full, tail), LoadTailE<V>(krow[j], full, tail), a);
      p[h][j] = scale * V::ReduceAdd(a);
    }
  }
}

// acc_h[c .. c + NV*L) = corr[h] * acc_h + sum_j p[h][j] * v_j[...] for HN
// heads (acc rows head_dim apart): each V row slice converted once for all.
template <class V, int HN, int NV, typename E>
inline void GroupAccumulate(float* acc, int64_t head_dim, int64_t c, const float* corr, const float (*p)[kMaxBlock],
                            const E* const* vrow, int64_t nb, const Ahead& ahead = {}) {
  constexpr int64_t L = V::kLanes;
  typename V::T a[HN][NV];
  for (int h = 0; h < HN; ++h) {
    const auto cv = V::Set1(corr[h]);
    for (int i = 0; i < NV; ++i) a[h][i] = V::Mul(V::Load(acc + h * head_dim + c + i * L), cv);
  }
  ahead.Fetch(nb, ahead.n);
  for (int64_t j = 0; j < nb; ++j) {
    ahead.Fetch(j, j + 1);
    typename V::T v[NV];
    for (int i = 0; i < NV; ++i) v[i] = LoadE<V>(vrow[j], c + i * L);
    for (int h = 0; h < HN; ++h) {
      const auto w = V::Set1(p[h][j]);
      for (int i = 0; i < NV; ++i) a[h][i] = V::Fma(w, v[i], a[h][i]);
    }
  }
  for (int h = 0; h < HN; ++h)
    for (int i = 0; i < NV; ++i) V::Store(acc + h * head_dim + c + i * L, a[h][i]);
}

// The same over all of head_dim: blocks of 16 / HN vectors (at most 16
// accumulators), then a masked tail per head.
template <class V, int HN, typename E>
inline void GroupAccumulateAll(float* acc, int64_t head_dim, const float* corr, const float (*p)[kMaxBlock],
                               const E* const* vrow, int64_t nb, const Ahead& ahead = {}) {
  constexpr int64_t L = V::kLanes;
  constexpr int kNV = 16 / HN >= 4 ? 4 : 16 / HN;
  int64_t c = 0;
  for (; head_dim - c >= kNV * L; c += kNV * L) {
    GroupAccumulate<V, HN, kNV>(acc, head_dim, c, corr, p, vrow, nb, c == 0 ? ahead : Ahead{});
  }
  for (; head_dim - c >= L; c += L) {
    GroupAccumulate<V, HN, 1>(acc, head_dim, c, corr, p, vrow, nb, c == 0 ? ahead : Ahead{});
  }
  if (c < head_dim) {
    const auto m = V::TailMask(head_dim - c);
    for (int h = 0; h < HN; ++h) {
      float* ah = acc + h * head_dim + c;
      auto a = V::Mul(V::LoadTail(ah, m), V::Set1(corr[h]));
      for (int64_t j = 0; j < nb; ++j) a = V::Fma(V::Set1(p[h][j]), LoadTailE<V>(vrow[j], c, m), a);
      V::StoreTail(ah, m, a);
    }
  }
}

// Keys [begin, end) of a KeyRows: what a call reads first, for the
// prefetch of the call before it (empty: nothing follows).
template <typename E>
struct KeyRange {
  KeyRows<E> rows{};
  int64_t begin = 0, end = 0;
};

// Heads q_heads[0 .. nh) (rows head_dim apart) of one query token over the
// keys [begin, end) of kv, written to out (rows head_dim apart). Online
// softmax over blocks of up to kMaxBlock keys: each block of K and V rows is
// read from memory once and converted once for every head of the group,
// which is what decode with grouped-query attention is bound by. A block
// spans the pages of a paged cache (its rows are looked up one by one), so
// a paged and a contiguous cache give the same result. The last block
// prefetches the first block of `then`, what the thread reads next.
template <class V, typename E>
void AttendGroup(float* out, const float* q_heads, int64_t nh, const KeyRows<E>& kv, int64_t begin, int64_t end,
                 int64_t head_dim, float scale, float softcap, const KeyRange<E>& then) {
  const int64_t block = head_dim <= 128 ? kMaxBlock : kMaxBlock / 2;  // K block fits in L1
  alignas(64) float acc[kGroupHeads * kMaxHeadDim];
  alignas(64) float p[kGroupHeads][kMaxBlock];
  const E* krow[kMaxBlock];
  const E* vrow[kMaxBlock];
  const char* knext[kMaxBlock];
  const char* vnext[kMaxBlock];
  float max[kGroupHeads], sum[kGroupHeads], corr[kGroupHeads];
  for (int64_t i = 0; i < nh; ++i) {
    max[i] = -INFINITY;
    sum[i] = 0.0f;
    Map1<V>(acc + i * head_dim, acc + i * head_dim, head_dim, [](auto) { return V::Zero(); });
  }
  const int64_t row_bytes = head_dim * static_cast<int64_t>(sizeof(E));  // this group's slice of a row
  for (int64_t j0 = begin, nb = 0; j0 < end; j0 += nb) {
    nb = end - j0 < block ? end - j0 : block;
    // Row lookups a page at a time: Row() divides by the page size, which
    // per key cost more than the key's whole dot product.
    for (int64_t r = 0, run = 0; r < nb; r += run) {
      run = kv.Run(j0 + r, nb - r);
      const E* k = kv.k + kv.Row(j0 + r) * kv.stride;
      const E* v = kv.v + kv.Row(j0 + r) * kv.stride;
      for (int64_t i = 0; i < run; ++i) {
        krow[r + i] = k + i * kv.stride;
        vrow[r + i] = v + i * kv.stride;
      }
    }
    // The next block's K and V rows, prefetched while this one is computed:
    // a paged cache jumps between pages, and the slices of a row are short
    // strided streams the hardware prefetcher picks up late.
    // After the last block, the first of `then`.
    const bool last = j0 + nb >= end;
    const KeyRows<E>& nkv = last ? then.rows : kv;
    const int64_t j1 = last ? then.begin : j0 + nb, e1 = last ? then.end : end;
    const int64_t n1 = e1 - j1 < block ? (e1 > j1 ? e1 - j1 : 0) : block;
    for (int64_t r = 0, run = 0; r < n1; r += run) {
      run = nkv.Run(j1 + r, n1 - r);
      const int64_t row = nkv.Row(j1 + r);
      for (int64_t i = 0; i < run; ++i) {
        knext[r + i] = reinterpret_cast<const char*>(nkv.k + (row + i) * nkv.stride);
        vnext[r + i] = reinterpret_cast<const char*>(nkv.v + (row + i) * nkv.stride);
      }
    }
    const Ahead k_ahead{knext, n1, row_bytes}, v_ahead{vnext, n1, row_bytes};
    for (int64_t h0 = 0; h0 < nh; h0 += kFusedHeads) {
      const int64_t hn = nh - h0 < kFusedHeads ? nh - h0 : kFusedHeads;
      const float* qh = q_heads + h0 * head_dim;
      switch (hn) {
        case 1: GroupScores<V, 1>(p + h0, qh, krow, nb, head_dim, scale, h0 == 0 ? k_ahead : Ahead{}); break;
        case 2: GroupScores<V, 2>(p + h0, qh, krow, nb, head_dim, scale, h0 == 0 ? k_ahead : Ahead{}); break;
        case 3: GroupScores<V, 3>(p + h0, qh, krow, nb, head_dim, scale, h0 == 0 ? k_ahead : Ahead{}); break;
        default: GroupScores<V, 4>(p + h0, qh, krow, nb, head_dim, scale, h0 == 0 ? k_ahead : Ahead{}); break;
      }
    }
    for (int64_t i = 0; i < nh; ++i) {
      if (softcap > 0.0f) SoftCapT<V>(p[i], nb, softcap);
      const float block_max = MaxOf<V>(p[i], nb);
      const float new_max = block_max > max[i] ? block_max : max[i];
      // Rescales what was accumulated under the old max (exp(-inf) = 0 at
      // the first block, when acc is still zero).
      corr[i] = expf(max[i] - new_max);
      max[i] = new_max;
      sum[i] = sum[i] * corr[i] + ExpShiftSum<V>(p[i], nb, new_max);
    }
    for (int64_t h0 = 0; h0 < nh; h0 += kFusedHeads) {
      const int64_t hn = nh - h0 < kFusedHeads ? nh - h0 : kFusedHeads;
      float* ah = acc + h0 * head_dim;
      switch (hn) {
        case 1: GroupAccumulateAll<V, 1>(ah, head_dim, corr + h0, p + h0, vrow, nb, h0 == 0 ? v_ahead : Ahead{}); break;
        case 2: GroupAccumulateAll<V, 2>(ah, head_dim, corr + h0, p + h0, vrow, nb, h0 == 0 ? v_ahead : Ahead{}); break;
        case 3: GroupAccumulateAll<V, 3>(ah, head_dim, corr + h0, p + h0, vrow, nb, h0 == 0 ? v_ahead : Ahead{}); break;
        default: GroupAccumulateAll<V, 4>(ah, head_dim, corr + h0, p + h0, vrow, nb, h0 == 0 ? v_ahead : Ahead{}); break;
      }
    }
  }
  for (int64_t i = 0; i < nh; ++i) {
    const auto inv = V::Set1(1.0f / sum[i]);
    Map1<V>(out + i * head_dim, acc + i * head_dim, head_dim, [&](auto a) { return V::Mul(a, inv); });
  }
}

// One head over the keys [begin, end) of kv with the scores in scratch (one
// float per key): the path for head_dim > kMaxHeadDim.
template <class V, typename E>
void AttendOne(float* out, const float* qh, const KeyRows<E>& kv, int64_t begin, int64_t end, int64_t head_dim,
               float scale, float softcap, float* scratch) {
  const int64_t n = end - begin;
  for (int64_t j = begin, run = 0; j < end; j += run) {
    run = kv.Run(j, end - j);
    AttentionScores<V>(scratch + (j - begin), qh, kv.k + kv.Row(j) * kv.stride, kv.stride, run, head_dim, scale);
  }
  if (softcap > 0.0f) SoftCapT<V>(scratch, n, softcap);
  const float max = MaxOf<V>(scratch, n);
  const double sum = ExpShiftSum<V>(scratch, n, max);
  Map1<V>(out, out, head_dim, [](auto) { return V::Zero(); });
  for (int64_t j = begin, run = 0; j < end; j += run) {
    run = kv.Run(j, end - j);
    AccumulateRows<V>(out, 1.0f, scratch + (j - begin), kv.v + kv.Row(j) * kv.stride, kv.stride, run, head_dim);
  }
  const auto inv = V::Set1(static_cast<float>(1.0 / sum));
  Map1<V>(out, out, head_dim, [&](auto a) { return V::Mul(a, inv); });
}

// The keys a query at position p sees, of n: the contiguous range
// [begin, end) (kernels.h: j <= p, and p - j < window when window > 0).
inline std::pair<int64_t, int64_t> VisibleKeys(int64_t p, int64_t n, int64_t window) {
  return {window > 0 && p - window + 1 > 0 ? p - window + 1 : 0, p + 1 < n ? p + 1 : n};
}

template <class V, typename E>
void AttentionTyped(float* out, int64_t out_stride, const float* q, int64_t q_stride, const E* k,
                    const E* v, int64_t kv_stride, const int32_t* blocks, int64_t block_tokens,
                    int64_t n_tokens, int64_t q_pos0, int64_t n_kv,
                int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float softcap,
                int64_t window, int64_t head_begin, int64_t head_end, float* scratch, const AttentionNext* next) {
  const int64_t group = n_heads / n_kv_heads;
  auto visible = [&](int64_t p, int64_t n) { return VisibleKeys(p, n, window); };
  // What this thread reads after this call.
  KeyRange<E> after;
  if (next != nullptr && next->n_kv > 0) {
    const auto [b, e] = visible(next->q_pos0, next->n_kv);
    after = {{static_cast<const E*>(next->k) + next->kv_head * head_dim,
              static_cast<const E*>(next->v) + next->kv_head * head_dim, kv_stride, next->blocks, block_tokens},
             b, e};
  }
  const int64_t g_end = (head_end + group - 1) / group;
  // Query heads [h0, h1) share kv head g; kv heads are the outer loop so
  // that their K / V rows stay in cache across the tokens of a prefill.
  for (int64_t g = head_begin / group; g < g_end; ++g) {
    const int64_t h0 = g * group > head_begin ? g * group : head_begin;
    const int64_t h1 = (g + 1) * group < head_end ? (g + 1) * group : head_end;
    const KeyRows<E> kv{k + g * head_dim, v + g * head_dim, kv_stride, blocks, block_tokens};
    // Read after this kv head's last token: the next kv head's first keys.
    KeyRange<E> then_g = after;
    if (g + 1 < g_end) {
      const auto [b, e] = visible(q_pos0, n_kv);
      then_g = {{kv.k + head_dim, kv.v + head_dim, kv_stride, blocks, block_tokens}, b, e};
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int64_t p = q_pos0 + t;
      const auto [begin, end] = visible(p, n_kv);
      // The next token reads (mostly) the same keys, already in cache.
      const KeyRange<E> then = t + 1 < n_tokens ? KeyRange<E>{} : then_g;
      const float* qt = q + t * q_stride;
      float* ot = out + t * out_stride;
      if (begin >= end) {
        Map1<V>(ot + h0 * head_dim, ot + h0 * head_dim, (h1 - h0) * head_dim,
                [](auto) { return V::Zero(); });
        continue;
      }
      if (head_dim > kMaxHeadDim) {
        for (int64_t h = h0; h < h1; ++h) {
          AttendOne<V>(ot + h * head_dim, qt + h * head_dim, kv, begin, end, head_dim, scale, softcap, scratch);
        }
        continue;
      }
      for (int64_t h = h0; h < h1; h += kGroupHeads) {
        const int64_t nh = h1 - h < kGroupHeads ? h1 - h : kGroupHeads;
        AttendGroup<V>(ot + h * head_dim, qt + h * head_dim, nh, kv, begin, end, head_dim, scale, softcap,
                       h + nh < h1 ? KeyRange<E>{} : then);
      }
    }
  }
}

template <class V>
void AttentionT(float* out, int64_t out_stride, const float* q, int64_t q_stride, const void* k, const void* v,
                DType kv_type, int64_t kv_stride, const int32_t* blocks, int64_t block_tokens, int64_t n_tokens,
                int64_t q_pos0, int64_t n_kv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
                float softcap, int64_t window, int64_t head_begin, int64_t head_end, float* scratch,
                const AttentionNext* next) {
  if (kv_type == DType::kF16) {
    AttentionTyped<V>(out, out_stride, q, q_stride, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v),
                      kv_stride, blocks, block_tokens, n_tokens, q_pos0, n_kv, n_heads, n_kv_heads, head_dim, scale,
                      softcap, window, head_begin, head_end, scratch, next);
  } else {
    ATRIUM_CHECK(kv_type == DType::kF32, "attention: a %s cache goes to attention_q8.h, not here",
                 std::string(DTypeName(kv_type)).c_str());
    AttentionTyped<V>(out, out_stride, q, q_stride, static_cast<const float*>(k), static_cast<const float*>(v),
                      kv_stride, blocks, block_tokens, n_tokens, q_pos0, n_kv, n_heads, n_kv_heads, head_dim, scale,
                      softcap, window, head_begin, head_end, scratch, next);
  }
}

}  // namespace
}  // namespace atrium::kernels

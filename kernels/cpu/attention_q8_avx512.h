// Internal: the AVX-512 VNNI Ops of attention_q8.h. Included by
// float_avx512.cc after its vector interface V; internal linkage for the
// reason float_simd.h gives.
//
// A group's 16 keys fill one register: per 4 dims one 64-byte line of K and
// two vpdpbusd per head (the query's two levels, as unsigned bytes: q +
// 128, corrected by 128 times the key's quant sum) give 16 keys' dot
// products, a fifth of the f16 kernel's instructions for the scores.
#pragma once

#include "kernels/cpu/attention_q8.h"

namespace atrium::kernels {
namespace {

// acc_h += sum over rows r in [r0, r1) of the group of w[h][c][r] times
// row r's quants of chunk c, for NH heads (acc rows acc_stride apart) and
// the SC chunks from chunk c0 of the head: NH * 2 SC accumulators in
// registers.
template <int NH, int SC>
inline void Q8GroupValuesSlice(float* acc, int64_t acc_stride, int64_t c0, const Q8Weights* w, const uint8_t* rows,
                               int64_t dim, int64_t r0, int64_t r1) {
  __m512 a[NH][2 * SC];
  for (int h = 0; h < NH; ++h)
    for (int i = 0; i < 2 * SC; ++i) a[h][i] = _mm512_loadu_ps(acc + h * acc_stride + c0 * kQK + 16 * i);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* row = reinterpret_cast<const int8_t*>(rows + r * dim + c0 * kQK);
    __m512 x[2 * SC];
    for (int i = 0; i < 2 * SC; ++i) {
      x[i] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * i))));
    }
    for (int h = 0; h < NH; ++h) {
      for (int c = 0; c < SC; ++c) {
        const __m512 wr = _mm512_set1_ps(w[h][c0 + c][r]);
        a[h][2 * c] = _mm512_fmadd_ps(wr, x[2 * c], a[h][2 * c]);
        a[h][2 * c + 1] = _mm512_fmadd_ps(wr, x[2 * c + 1], a[h][2 * c + 1]);
      }
    }
  }
  for (int h = 0; h < NH; ++h)
    for (int i = 0; i < 2 * SC; ++i) _mm512_storeu_ps(acc + h * acc_stride + c0 * kQK + 16 * i, a[h][i]);
}

// attention_q8.h's Ops with AVX-512 VNNI.
struct Q8Avx512 {
  static constexpr bool kUnsignedQuery = true;  // vpdpbusd multiplies unsigned by signed bytes

  // Scores of NH heads against the 16 keys of the group at key j (row group
  // chunks kc), into s[h][at .. at + 16): scale * sum over chunks and the
  // query's two levels of d_q d_k times the quants' dot product; keys
  // outside `valid` get -inf.
  template <class V, int NH>
  static void Scores(float (*s)[kQ8BlockKeys], int64_t at, const uint8_t* kc, int64_t chunks, const Q8Query& q,
                     float softcap, uint32_t valid) {
    __m512 sc[NH];
    for (int h = 0; h < NH; ++h) sc[h] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks; ++c) {
      const uint8_t* chunk = kc + c * kKvQ8KeyChunk;
      __m512i hi[NH], lo[NH];
      for (int h = 0; h < NH; ++h) hi[h] = lo[h] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int quad = 0; quad < 8; ++quad) {
        const __m512i k = _mm512_loadu_si512(chunk + quad * 64);
        for (int h = 0; h < NH; ++h) {
          hi[h] = _mm512_dpbusd_epi32(hi[h], _mm512_set1_epi32(q.quads[0][h][c * 8 + quad]), k);
          lo[h] = _mm512_dpbusd_epi32(lo[h], _mm512_set1_epi32(q.quads[1][h][c * 8 + quad]), k);
        }
      }
      const __m512 dk = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 512)));
      const __m512i bias = _mm512_slli_epi32(
          _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 544))), 7);
      for (int h = 0; h < NH; ++h) {
        sc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(hi[h], bias)),
                                _mm512_mul_ps(dk, _mm512_set1_ps(q.d[0][h][c])), sc[h]);
        sc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(lo[h], bias)),
                                _mm512_mul_ps(dk, _mm512_set1_ps(q.d[1][h][c])), sc[h]);
      }
    }
    for (int h = 0; h < NH; ++h) {
      if (softcap > 0.0f) sc[h] = V::Mul(V::Set1(softcap), Tanh<V>(V::Mul(sc[h], V::Set1(1.0f / softcap))));
      _mm512_store_ps(s[h] + at, _mm512_mask_blend_ps(static_cast<__mmask16>(valid), _mm512_set1_ps(-INFINITY), sc[h]));
    }
  }

  // acc_h += sum over the group's rows r in [r0, r1) of w[h][c][r] times
  // row r's quants of chunk c (rows: the head's slice of the group's first
  // row, rows dim bytes apart).
  template <int NH>
  static void Values(float* acc, int64_t acc_stride, const Q8Weights* w, const uint8_t* rows, int64_t dim,
                     int64_t chunks, int64_t r0, int64_t r1) {
    constexpr int kSC = NH <= 4 ? 2 : 1;
    int64_t c = 0;
    for (; c + kSC <= chunks; c += kSC) Q8GroupValuesSlice<NH, kSC>(acc, acc_stride, c, w, rows, dim, r0, r1);
    for (; c < chunks; ++c) Q8GroupValuesSlice<NH, 1>(acc, acc_stride, c, w, rows, dim, r0, r1);
  }
};

}  // namespace
}  // namespace atrium::kernels

// Internal: the AVX2 Ops of attention_q8.h. Included by float_avx2.cc after
// its vector interface V (8 float lanes); internal linkage for the reason
// float_simd.h gives.
//
// A group's 16 keys are two registers of 8. Without VNNI a dot product of 4
// bytes per lane is llama.cpp's: the key's quants take the sign of the
// query's (vpsignb), vpmaddubsw multiplies them by |q| into pairs of int16
// (127 * 127 * 2 fits: no saturation), vpmaddwd adds the pairs into int32.
#pragma once

#include "kernels/cpu/attention_q8.h"

namespace atrium::kernels {
namespace {

struct Q8Avx2 {
  static constexpr bool kUnsignedQuery = false;

  // 4-byte dot products per lane of the keys' quants k with the query's q
  // (one dword broadcast), added to acc.
  static __m256i Dot4(__m256i acc, __m256i k, int32_t q) {
    const __m256i qv = _mm256_set1_epi32(q);
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(qv), _mm256_sign_epi8(k, qv));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }

  // Scores of NH heads against the 16 keys of the group (row group chunks
  // kc), into s[h][at .. at + 16), as Q8Avx512::Scores, 8 keys at a time.
  template <class V, int NH>
  static void Scores(float (*s)[kQ8BlockKeys], int64_t at, const uint8_t* kc, int64_t chunks, const Q8Query& q,
                     float softcap, uint32_t valid) {
    for (int half = 0; half < 2; ++half) {
      __m256 sc[NH];
      for (int h = 0; h < NH; ++h) sc[h] = _mm256_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c) {
        const uint8_t* chunk = kc + c * kKvQ8KeyChunk;
        __m256i hi[NH], lo[NH];
        for (int h = 0; h < NH; ++h) hi[h] = lo[h] = _mm256_setzero_si256();
        for (int quad = 0; quad < 8; ++quad) {
          const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + quad * 64 + half * 32));
          for (int h = 0; h < NH; ++h) {
            hi[h] = Dot4(hi[h], k, q.quads[0][h][c * 8 + quad]);
            lo[h] = Dot4(lo[h], k, q.quads[1][h][c * 8 + quad]);
          }
        }
        const __m256 dk = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(chunk + 512 + half * 16)));
        for (int h = 0; h < NH; ++h) {
          sc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi[h]), _mm256_mul_ps(dk, _mm256_set1_ps(q.d[0][h][c])), sc[h]);
          sc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo[h]), _mm256_mul_ps(dk, _mm256_set1_ps(q.d[1][h][c])), sc[h]);
        }
      }
      // Lane l keeps its score when bit 8 half + l of valid is set.
      const __m256i bits = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(valid >> (8 * half))),
                                            _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128));
      const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(bits, _mm256_setzero_si256()));
      for (int h = 0; h < NH; ++h) {
        if (softcap > 0.0f) sc[h] = V::Mul(V::Set1(softcap), Tanh<V>(V::Mul(sc[h], V::Set1(1.0f / softcap))));
        _mm256_storeu_ps(s[h] + at + 8 * half, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), sc[h], keep));
      }
    }
  }

  // acc_h += sum over the group's rows r in [r0, r1) of w[h][c][r] times
  // row r's quants of chunk c (as Q8Avx512::Values), 16 dims (two
  // registers per head) at a time.
  template <int NH>
  static void Values(float* acc, int64_t acc_stride, const Q8Weights* w, const uint8_t* rows, int64_t dim,
                     int64_t chunks, int64_t r0, int64_t r1) {
    for (int64_t d = 0; d < chunks * kQK; d += 16) {
      __m256 a[NH][2];
      for (int h = 0; h < NH; ++h) {
        a[h][0] = _mm256_loadu_ps(acc + h * acc_stride + d);
        a[h][1] = _mm256_loadu_ps(acc + h * acc_stride + d + 8);
      }
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = rows + r * dim + d;
        const __m256 x0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row))));
        const __m256 x1 =
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8))));
        for (int h = 0; h < NH; ++h) {
          const __m256 wr = _mm256_set1_ps(w[h][d / kQK][r]);
          a[h][0] = _mm256_fmadd_ps(wr, x0, a[h][0]);
          a[h][1] = _mm256_fmadd_ps(wr, x1, a[h][1]);
        }
      }
      for (int h = 0; h < NH; ++h) {
        _mm256_storeu_ps(acc + h * acc_stride + d, a[h][0]);
        _mm256_storeu_ps(acc + h * acc_stride + d + 8, a[h][1]);
      }
    }
  }
};

}  // namespace
}  // namespace atrium::kernels

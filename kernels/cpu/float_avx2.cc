// AVX2 + FMA float ops: the vector interface of float_simd.h over __m256.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/attention_q8_avx2.h"
#include "kernels/cpu/float_table.h"
#include "kernels/cpu/variants.h"

namespace atrium::kernels::avx2 {
namespace {

struct V {
  using T = __m256;
  using M = __m256;  // all-ones lanes are selected
  static constexpr int64_t kLanes = 8;

  static T Zero() { return _mm256_setzero_ps(); }
  static T Set1(float v) { return _mm256_set1_ps(v); }
  static T Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static M TailMask(int64_t n) {
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  }
  static T LoadTail(const float* p, M m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
  // f16 elements (a KV cache), converted to f32. A tail mask covers a prefix of lanes.
  static T LoadHalf(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static T LoadHalfTail(const uint16_t* p, M m) {
    alignas(16) uint16_t tmp[8] = {};
    std::memcpy(tmp, p, 2 * static_cast<size_t>(__builtin_popcount(_mm256_movemask_ps(m))));
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
  }
  static void StoreTail(float* p, M m, T v) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), v); }

  static T Add(T a, T b) { return _mm256_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T Mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T Div(T a, T b) { return _mm256_div_ps(a, b); }
  static T Min(T a, T b) { return _mm256_min_ps(a, b); }
  static T Max(T a, T b) { return _mm256_max_ps(a, b); }
  static T Fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T Fnma(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
  static M CmpLt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M CmpGt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M IsNan(T a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static T Select(M m, T if_true, T if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  static T Abs(T a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static T OrSign(T mag, T x) { return _mm256_or_ps(mag, _mm256_and_ps(x, _mm256_set1_ps(-0.0f))); }
  // z = 1.5 * 2^23 + n with n an integer in [-126, 127]: 2^n.
  static T Pow2FromShifted(T z) {
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f800000)));
  }
  static T SwapPairs(T a) { return _mm256_permute_ps(a, 0xB1); }

  static float ReduceAdd(T a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float ReduceMax(T a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // out[i] = sum of the lanes of the i-th argument.
  static void Reduce4(T a, T b, T c, T d, float* out) {
    const __m256 ab = _mm256_hadd_ps(a, b);  // a01 a23 b01 b23 | a45 a67 b45 b67
    const __m256 cd = _mm256_hadd_ps(c, d);
    const __m256 abcd = _mm256_hadd_ps(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 ...
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
  // Squares rounded to float, then summed in double, as GGML's rms_norm.
  static double SumSquares(const float* x, int64_t n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      const __m256 sq = _mm256_mul_ps(v, v);
      s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
      s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  }
};

}  // namespace

void FillFloat(CpuKernels& t) { FillFloatTable<V, Q8Avx2>(t); }

}  // namespace atrium::kernels::avx2

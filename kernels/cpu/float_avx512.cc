// AVX-512 float ops: the vector interface of float_simd.h over __m512. Uses
// only AVX-512 F and DQ (the table as a whole needs BW, VL and VNNI too).
// GCC 12's AVX-512 headers trip a false -Wmaybe-uninitialized (the `__Y =
// __Y` idiom of _mm512_undefined_*, GCC bug 105593, fixed in 12.3 / 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "kernels/cpu/attention_q8_avx512.h"
#include "kernels/cpu/float_table.h"
#include "kernels/cpu/variants.h"

namespace atrium::kernels::avx512 {
namespace {

struct V {
  using T = __m512;
  using M = __mmask16;
  static constexpr int64_t kLanes = 16;

  static T Zero() { return _mm512_setzero_ps(); }
  static T Set1(float v) { return _mm512_set1_ps(v); }
  static T Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static M TailMask(int64_t n) { return static_cast<M>((1u << n) - 1u); }
  static T LoadTail(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  // f16 elements (a KV cache), converted to f32.
  static T LoadHalf(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static T LoadHalfTail(const uint16_t* p, M m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
  static void StoreTail(float* p, M m, T v) { _mm512_mask_storeu_ps(p, m, v); }

  static T Add(T a, T b) { return _mm512_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T Mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T Div(T a, T b) { return _mm512_div_ps(a, b); }
  static T Min(T a, T b) { return _mm512_min_ps(a, b); }
  static T Max(T a, T b) { return _mm512_max_ps(a, b); }
  static T Fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T Fnma(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
  static M CmpLt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M CmpGt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M IsNan(T a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static T Select(M m, T if_true, T if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
  static T Abs(T a) { return _mm512_abs_ps(a); }
  static T OrSign(T mag, T x) { return _mm512_or_ps(mag, _mm512_and_ps(x, _mm512_set1_ps(-0.0f))); }
  // z = 1.5 * 2^23 + n with n an integer in [-126, 127]: 2^n.
  static T Pow2FromShifted(T z) {
    const __m512i e = _mm512_slli_epi32(_mm512_castps_si512(z), 23);
    return _mm512_castsi512_ps(_mm512_add_epi32(e, _mm512_set1_epi32(0x3f800000)));
  }
  static T SwapPairs(T a) { return _mm512_permute_ps(a, 0xB1); }

  static float ReduceAdd(T a) { return _mm512_reduce_add_ps(a); }
  static float ReduceMax(T a) { return _mm512_reduce_max_ps(a); }
  static __m256 Fold(T a) {
    return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  }
  // out[i] = sum of the lanes of the i-th argument.
  static void Reduce4(T a, T b, T c, T d, float* out) {
    const __m256 ab = _mm256_hadd_ps(Fold(a), Fold(b));
    const __m256 cd = _mm256_hadd_ps(Fold(c), Fold(d));
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
  // Squares rounded to float, then summed in double, as GGML's rms_norm.
  static double SumSquares(const float* x, int64_t n) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
      const __m512 v = _mm512_loadu_ps(x + i);
      const __m512 sq = _mm512_mul_ps(v, v);
      s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
      s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  }
};

}  // namespace

void FillFloat(CpuKernels& t) { FillFloatTable<V, Q8Avx512>(t); }

}  // namespace atrium::kernels::avx512

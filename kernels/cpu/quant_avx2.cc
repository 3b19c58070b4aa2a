// AVX2 quantized dot products and matmul (compiled with -mavx2 -mfma -mf16c).
// Integer products use maddubs (u8 x s8 -> s16 pairs) + madd (-> s32). For
// signed weights the sign of the weight is moved onto the activation
// (GGML's trick), which is exact as long as activations are in [-127, 127]:
// the Q8 quantizers never produce -128.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/quant_simd.h"
#include "kernels/cpu/variants.h"
#include "kernels/quant_blocks.h"
#include "runtime/status.h"

namespace atrium::kernels::avx2 {
namespace {

inline __m256i Load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i Load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15), then
// high nibbles (elements 16..31).
inline __m256i Nibbles32(const uint8_t* qs) {
  const __m128i b = Load128(qs);
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}
// Bit i of a 32-bit little-endian word -> byte i: 0xFF if set, else 0.
inline __m256i BitsToBytes(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                         0x0101010101010101, 0x0000000000000000);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}
// u8 x s8, summed in groups of 4 -> 8 x s32.
inline __m256i DotU8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
// s8 x s8 (s in [-127, 127]), summed in groups of 4 -> 8 x s32.
inline __m256i DotS8(__m256i w, __m256i s) {
  return DotU8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(s, w));
}

// ---------------------------------------------------------------------------
// The weight types (see quant_simd.h for what each provides). Here a step
// is one 32-element block, one K-quant super-block or 8 floats.

struct XQ8_0 {
  __m256i q;
  __m256 d;
};
inline XQ8_0 LoadXQ8_0(const uint8_t* p) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
  return {Load256(b->qs), _mm256_set1_ps(F16(&b->d))};
}
struct XQ8_1 {
  __m256i q;
  __m256 d, s;
};
inline XQ8_1 LoadXQ8_1(const uint8_t* p) {
  const auto* b = reinterpret_cast<const BlockQ8_1*>(p);
  return {Load256(b->qs), _mm256_set1_ps(F16(&b->d)), _mm256_set1_ps(F16(&b->s))};
}

// Signed 32-element weights against Q8_0.
struct WSigned {
  __m256i q;
  __m256 d;
};
template <typename Derived>
struct SignedQ32 {
  static constexpr int64_t kBlock = 32;
  static constexpr int64_t kXBytes = sizeof(BlockQ8_0);
  using X = XQ8_0;
  using W = WSigned;
  static X PrepX(const uint8_t* p) { return LoadXQ8_0(p); }
  static void Acc(__m256& acc, const W& w, const X& x) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DotS8(w.q, x.q)), _mm256_mul_ps(w.d, x.d), acc);
  }
};
struct Q4_0 : SignedQ32<Q4_0> {
  static constexpr DType kType = DType::kQ4_0;
  static constexpr int64_t kWBytes = sizeof(BlockQ4_0);
  static W PrepW(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(p);
    return {_mm256_sub_epi8(Nibbles32(b->qs), _mm256_set1_epi8(8)), _mm256_set1_ps(F16(&b->d))};
  }
};
struct Q5_0 : SignedQ32<Q5_0> {
  static constexpr DType kType = DType::kQ5_0;
  static constexpr int64_t kWBytes = sizeof(BlockQ5_0);
  static W PrepW(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockQ5_0*>(p);
    // nibble - 16 where the fifth bit is clear: or-ing 0xF0 does exactly that in int8.
    const __m256i hi = _mm256_andnot_si256(BitsToBytes(b->qh), _mm256_set1_epi8(static_cast<char>(0xF0)));
    return {_mm256_or_si256(Nibbles32(b->qs), hi), _mm256_set1_ps(F16(&b->d))};
  }
};
struct Q8_0 : SignedQ32<Q8_0> {
  static constexpr DType kType = DType::kQ8_0;
  static constexpr int64_t kWBytes = sizeof(BlockQ8_0);
  static W PrepW(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
    return {Load256(b->qs), _mm256_set1_ps(F16(&b->d))};
  }
};

// Unsigned 32-element weights with a min, against Q8_1: d*dx*sum(q*x) + m*s.
struct WAffine {
  __m256i q;
  __m256 d, m;  // m only in lane 0, so adding m*s once per block
};
template <typename Derived>
struct AffineQ32 {
  static constexpr int64_t kBlock = 32;
  static constexpr int64_t kXBytes = sizeof(BlockQ8_1);
  using X = XQ8_1;
  using W = WAffine;
  static X PrepX(const uint8_t* p) { return LoadXQ8_1(p); }
  static void Acc(__m256& acc, const W& w, const X& x) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DotU8(w.q, x.q)), _mm256_mul_ps(w.d, x.d), acc);
    acc = _mm256_fmadd_ps(w.m, x.s, acc);
  }
};
inline __m256 Lane0(float v) { return _mm256_zextps128_ps256(_mm_set_ss(v)); }
struct Q4_1 : AffineQ32<Q4_1> {
  static constexpr DType kType = DType::kQ4_1;
  static constexpr int64_t kWBytes = sizeof(BlockQ4_1);
  static W PrepW(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockQ4_1*>(p);
    return {Nibbles32(b->qs), _mm256_set1_ps(F16(&b->d)), Lane0(F16(&b->m))};
  }
};
struct Q5_1 : AffineQ32<Q5_1> {
  static constexpr DType kType = DType::kQ5_1;
  static constexpr int64_t kWBytes = sizeof(BlockQ5_1);
  static W PrepW(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockQ5_1*>(p);
    const __m256i hi = _mm256_and_si256(BitsToBytes(b->qh), _mm256_set1_epi8(0x10));
    return {_mm256_or_si256(Nibbles32(b->qs), hi), _mm256_set1_ps(F16(&b->d)), Lane0(F16(&b->m))};
  }
};

// K-quants: one step is a 256-element super-block (KQuant, quant_simd.h).

// sum_j m_j * (bsums[2j] + bsums[2j+1]) as 4 x s32 partial sums.
inline __m128i MinsTimesBsums(const uint32_t sm[4], const BlockQ8_K* x) {
  const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 2)));
  const __m256i bsums = Load256(x->bsums);
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
  return _mm_madd_epi16(mins, pairs);
}

template <bool kHasHigh, typename BlockW>
inline void AccQ45K(__m256& acc, const BlockW* w, const BlockQ8_K* x) {
  uint32_t sm[4];
  DecodeScalesK4(w->scales, sm);
  const auto* sc = reinterpret_cast<const uint8_t*>(sm);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i hbits;
  if constexpr (kHasHigh) hbits = Load256(w->qh);
  __m256i sumi = _mm256_setzero_si256();
  for (int p = 0; p < 4; ++p) {
    const __m256i q = Load256(w->qs + 32 * p);
    __m256i lo = _mm256_and_si256(q, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    if constexpr (kHasHigh) {
      const __m256i one = _mm256_set1_epi8(1);
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * p), one), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * p + 1), one), 4));
    }
    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, Load256(x->qs + 64 * p)),
                                         _mm256_set1_epi16(sc[2 * p]));
    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, Load256(x->qs + 64 * p + 32)),
                                         _mm256_set1_epi16(sc[2 * p + 1]));
    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
  }
  const float dx = LoadD(x);
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(dx * F16(&w->d)), acc);
  const __m256 mins = _mm256_zextps128_ps256(_mm_cvtepi32_ps(MinsTimesBsums(sm, x)));
  acc = _mm256_fmadd_ps(mins, _mm256_set1_ps(-dx * F16(&w->dmin)), acc);
}
struct Q4_K : KQuant<BlockQ4_K> {
  static constexpr DType kType = DType::kQ4_K;
  static void Acc(__m256& acc, W w, X x) { AccQ45K<false>(acc, w, x); }
};
struct Q5_K : KQuant<BlockQ5_K> {
  static constexpr DType kType = DType::kQ5_K;
  static void Acc(__m256& acc, W w, X x) { AccQ45K<true>(acc, w, x); }
};
struct Q6_K : KQuant<BlockQ6_K> {
  static constexpr DType kType = DType::kQ6_K;
  static void Acc(__m256& acc, W w, X x) {
    const __m256i scales = _mm256_cvtepi8_epi16(Load128(w->scales));
    // The -32 of every q, folded in with the activation block sums.
    __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(Load256(x->bsums), scales), 5);
    sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
    const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = Load256(w->ql + 64 * h), ql1 = Load256(w->ql + 64 * h + 32);
      const __m256i qh = Load256(w->qh + 32 * h);
      __m256i q[4];
      q[0] = _mm256_and_si256(ql0, low4);
      q[1] = _mm256_and_si256(ql1, low4);
      q[2] = _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4);
      q[3] = _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4);
      for (int k = 0; k < 4; ++k) {
        const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two);
        q[k] = _mm256_or_si256(q[k], _mm256_slli_epi16(h2, 4));
        const __m256i p16 = _mm256_maddubs_epi16(q[k], Load256(x->qs + 128 * h + 32 * k));
        const int s = 8 * h + 2 * k;
        const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(w->scales[s + 1]), _mm_set1_epi16(w->scales[s]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, sc));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(LoadD(x) * F16(&w->d)), acc);
  }
};

// Float weights against f32 activations, 8 elements per block; the tail of a
// row that is not a multiple of 8 goes to the fallback vec_dot.
template <int64_t kElemBytes>
struct FloatW {
  static constexpr int64_t kBlock = 8;
  static constexpr int64_t kWBytes = 8 * kElemBytes;
  static constexpr int64_t kXBytes = 8 * sizeof(float);
  using X = __m256;
  using W = __m256;
  static X PrepX(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  static void Acc(__m256& acc, W w, X x) { acc = _mm256_fmadd_ps(w, x, acc); }
};
struct F32 : FloatW<4> {
  static constexpr DType kType = DType::kF32;
  static W PrepW(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
};
struct F16W : FloatW<2> {
  static constexpr DType kType = DType::kF16;
  static W PrepW(const uint8_t* p) { return _mm256_cvtph_ps(Load128(p)); }
};
struct BF16 : FloatW<2> {
  static constexpr DType kType = DType::kBF16;
  static W PrepW(const uint8_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(Load128(p)), 16));
  }
};

// ---------------------------------------------------------------------------
// The tiled matmul of quant_simd.h over __m256: tiles of 4 rows x 1 token
// (decode) or 2 rows x up to 4 tokens.
struct Isa {
  using Acc = __m256;
  static constexpr int kPrefillRows = 2;
  static constexpr int kCachedRows = 2;
  static constexpr int kCachedTokens = 4;
  static __m256 Zero() { return _mm256_setzero_ps(); }
  static float HSum(__m256 v) { return avx2::HSum(v); }
};

// ---------------------------------------------------------------------------
// Activation quantizers, bit-identical to the scalar (GGML reference) ones.

inline __m256 AbsPs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
// Four vectors of 8 integer-valued floats in [-128, 127] -> 32 int8 in order.
inline __m256i PackToI8(const __m256 v[4]) {
  const __m256i a = _mm256_packs_epi32(_mm256_cvtps_epi32(v[0]), _mm256_cvtps_epi32(v[1]));
  const __m256i b = _mm256_packs_epi32(_mm256_cvtps_epi32(v[2]), _mm256_cvtps_epi32(v[3]));
  return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Q8_0 (kSum = false) and Q8_1 (kSum = true) as GGML's x86 quantize_row_q8_0 /
// q8_1 do it: id = 127 / amax, round half to even. (GGML's *_ref versions use
// 1 / d and round half away; llama.cpp on x86 runs these, and we compare with it.)
template <bool kSum>
void QuantQ8Block(const float* x, void* d_out, void* s_out, int8_t* qs) {
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    amax = _mm256_max_ps(amax, AbsPs(v[k]));
  }
  const float max_abs = HMax(amax);
  const float d = max_abs / 127;
  const float id = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
  StoreF16(d_out, d);
  __m256 sum = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_round_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if constexpr (kSum) sum = _mm256_add_ps(sum, v[k]);
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), PackToI8(v));
  if constexpr (kSum) StoreF16(s_out, static_cast<float>(static_cast<int>(HSum(sum))) * d);
}

// GGML's quantize_row_q8_K_ref: scale from the signed value of largest
// magnitude (the first one), round half to even, clamp at 127.
void QuantQ8KBlock(const float* x, BlockQ8_K* y) {
  __m256 amax_v = _mm256_setzero_ps();
  for (int k = 0; k < 32; ++k) amax_v = _mm256_max_ps(amax_v, AbsPs(_mm256_loadu_ps(x + 8 * k)));
  const float amax = HMax(amax_v);
  if (amax == 0.0f) {
    std::memset(static_cast<void*>(y), 0, sizeof(BlockQ8_K));
    return;
  }
  float max = 0.0f;
  for (int k = 0; k < 32; ++k) {
    const int hit = _mm256_movemask_ps(
        _mm256_cmp_ps(AbsPs(_mm256_loadu_ps(x + 8 * k)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
    if (hit != 0) {
      max = x[8 * k + __builtin_ctz(static_cast<unsigned>(hit))];
      break;
    }
  }
  const float iscale = -127.f / max;
  const __m256 is = _mm256_set1_ps(iscale);
  for (int g = 0; g < 8; ++g) {  // 32 elements = two bsums groups at a time
    __m256 v[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), is),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v[k] = _mm256_min_ps(v[k], _mm256_set1_ps(127.0f));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y->qs + 32 * g), PackToI8(v));
    const int16_t s0 = static_cast<int16_t>(HSum(_mm256_add_ps(v[0], v[1])));
    const int16_t s1 = static_cast<int16_t>(HSum(_mm256_add_ps(v[2], v[3])));
    std::memcpy(&y->bsums[2 * g], &s0, 2);
    std::memcpy(&y->bsums[2 * g + 1], &s1, 2);
  }
  const float d = 1 / iscale;
  std::memcpy(&y->d, &d, 4);
}

void QuantizeRow(DType type, void* dst, const float* x, int64_t n) {
  const auto block = [](auto sum, const float* xb, void* d, void* s_out, int8_t* qs) {
    QuantQ8Block<decltype(sum)::value>(xb, d, s_out, qs);
  };
  if (QuantizeQ8Rows(type, dst, x, n, block)) return;
  auto* out = static_cast<uint8_t*>(dst);
  switch (type) {
    case DType::kQ8_K:
      ATRIUM_CHECK(n % kQK_K == 0, "quantize_row: n=%lld", static_cast<long long>(n));
      for (int64_t i = 0; i < n / kQK_K; ++i) {
        QuantQ8KBlock(x + i * kQK_K, reinterpret_cast<BlockQ8_K*>(out + i * sizeof(BlockQ8_K)));
      }
      return;
    case DType::kF16: {
      // F16C, round to nearest even (as the scalar F32ToF16): a KV cache row.
      auto* h = reinterpret_cast<uint16_t*>(out);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
      }
      if (i < n) g_fallback_quantize(type, h + i, x + i, n - i);
      return;
    }
    default: return g_fallback_quantize(type, dst, x, n);
  }
}

}  // namespace

void FillQuant(CpuKernels& t) {
  g_fallback_quantize = t.quantize_row;
  t.quantize_row = QuantizeRow;
  FillMatmul<Isa, F32, F16W, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K>(t);
}

}  // namespace atrium::kernels::avx2

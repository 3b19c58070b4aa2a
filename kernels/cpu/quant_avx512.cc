// AVX-512 (F, BW, DQ, VL, VNNI) quantized matmul. Every quantized type runs
// on the 16-row tiles of tiles_avx512.h (vpdpbusd, u8 x s8 -> s32); this
// file gives each type what the tiles need: its quants unpacked to unsigned
// bytes in element order (signed ones biased: q + 8, q + 16, q + 32,
// q ^ 0x80, the bias taken back with the activation sums, exact for any
// int8 activation), and its per-sub-block scales for 16 rows. Float
// weights use quant_simd.h's row-major tiles. Q8_0 / Q8_1 activations are
// quantized here, bit for bit as the AVX2 table does; the rest (Q8_K, f16)
// is inherited from it.
#include <immintrin.h>

#include <cstring>
#include <cstddef>
#include <vector>

#include "kernels/cpu/quant_simd.h"
#include "kernels/cpu/variants.h"
#include "kernels/quant_blocks.h"
#include "runtime/status.h"

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as merge sources,
// which -Wall reports as uninitialized once inlined here; it is not.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace atrium::kernels::avx512 {
namespace {

inline __m512i Load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m256i Load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i Load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline uint32_t Load32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
// (Written out because GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.)
inline float HSum(__m512 v) {
  const __m512 s = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  const __m256 h = _mm512_castps512_ps256(s);
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
inline __m512i Join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
// ---------------------------------------------------------------------------
// 32-element types, two blocks per step (kBlock = 64).

// Two blocks of packed nibbles (16 bytes each) -> 64 bytes in element order.
inline __m512i NibblePair(const uint8_t* qs0, const uint8_t* qs1) {
  const __m512i v = _mm512_castsi256_si512(_mm256_set_m128i(Load128(qs1), Load128(qs0)));
  const __m512i dup = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), v);
  const __m512i shifted = _mm512_srlv_epi64(dup, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
  return _mm512_and_si512(shifted, _mm512_set1_epi8(0x0F));
}
// The fifth bits of two Q5 blocks as a 64-bit mask in element order.
inline __mmask64 HighBitPair(const uint8_t* qh0, const uint8_t* qh1) {
  return _cvtu64_mask64(Load32(qh0) | (uint64_t{Load32(qh1)} << 32));
}

#include "kernels/cpu/tiles_avx512.h"

template <typename Derived, typename BlockW, typename BlockX, int kBiasQ>
struct Q32Pair {
  static constexpr int64_t kBlock = 64;  // a unit: two blocks
  static constexpr int64_t kWBytes = 2 * sizeof(BlockW);
  static constexpr bool kAffine = std::is_same_v<BlockX, BlockQ8_1>;
  using WBlock = BlockW;
  // The 16-row tiles of tiles_avx512.h (quant_simd.h's Matmul hands them every call).
  using XBlock = BlockX;
  static constexpr int kSub = kQK;
  static constexpr int kBias = kBiasQ;
  static void MatmulRows(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
    MatmulTiles<Derived>(a, n_tokens, row_begin, row_end);
  }
  // Decode: a unit is a pair of blocks (kBlock = 64).
  static void UnpackUnit(const uint8_t* row, int64_t e, int64_t n_in, __m512i* q) {
    const auto* blocks = reinterpret_cast<const BlockW*>(row);
    const int64_t b = e / kQK;
    q[0] = Derived::Quants(blocks[b], blocks[b + 1 < n_in / kQK ? b + 1 : b]);
  }
  // One gather per block fetches d (and m, the next two bytes) of 16 rows.
  static void UnitScales(const uint8_t* w, int64_t, __m512i offsets, int64_t, int64_t e, int64_t n_in, __m512* d,
                         __m512* m) {
    const int64_t b = e / kQK;
    for (int64_t k = 0; k < 2 && b + k < n_in / kQK; ++k) {
      const __m512i g = _mm512_i32gather_epi32(offsets, w + (b + k) * sizeof(BlockW), 1);
      d[k] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
      if constexpr (kAffine) m[k] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
    }
  }
};
// Prefill lines straight from 16 rows (the same bytes Quants unpacks):
// line g of a block holds its elements 4g..4g+3. Nibble types: the qs
// dword at 4g gives lines g (low nibbles) and g + 4 (high nibbles).
template <typename BlockW>
inline void GatherNibbleLines(const uint8_t* w, __m512i offsets, int64_t e, int64_t n_in, Line* lines) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int64_t k = 0; k < 2 && e / kQK + k < n_in / kQK; ++k) {
    const uint8_t* qs = w + (e / kQK + k) * sizeof(BlockW) + offsetof(BlockW, qs);
    for (int g = 0; g < 4; ++g) {
      const __m512i v = _mm512_i32gather_epi32(offsets, qs + 4 * g, 1);
      _mm512_store_si512(lines[8 * k + g].b, _mm512_and_si512(v, low4));
      _mm512_store_si512(lines[8 * k + g + 4].b, _mm512_and_si512(_mm512_srli_epi32(v, 4), low4));
    }
  }
}
struct Q4_0 : Q32Pair<Q4_0, BlockQ4_0, BlockQ8_0, 8> {
  static constexpr DType kType = DType::kQ4_0;
  static constexpr int kPackedBits = 4;
  static __m512i Quants(const BlockQ4_0& a, const BlockQ4_0& b) { return NibblePair(a.qs, b.qs); }
  static void GatherLines(const uint8_t* w, __m512i offsets, int64_t e, int64_t n_in, Line* lines) {
    GatherNibbleLines<BlockQ4_0>(w, offsets, e, n_in, lines);
  }
};
struct Q4_1 : Q32Pair<Q4_1, BlockQ4_1, BlockQ8_1, 0> {
  static constexpr DType kType = DType::kQ4_1;
  static constexpr int kPackedBits = 4;
  static __m512i Quants(const BlockQ4_1& a, const BlockQ4_1& b) { return NibblePair(a.qs, b.qs); }
  static void GatherLines(const uint8_t* w, __m512i offsets, int64_t e, int64_t n_in, Line* lines) {
    GatherNibbleLines<BlockQ4_1>(w, offsets, e, n_in, lines);
  }
};
struct Q5_0 : Q32Pair<Q5_0, BlockQ5_0, BlockQ8_0, 16> {
  static constexpr DType kType = DType::kQ5_0;
  static __m512i Quants(const BlockQ5_0& a, const BlockQ5_0& b) {
    const __m512i q = NibblePair(a.qs, b.qs);
    return _mm512_mask_add_epi8(q, HighBitPair(a.qh, b.qh), q, _mm512_set1_epi8(16));
  }
};
struct Q5_1 : Q32Pair<Q5_1, BlockQ5_1, BlockQ8_1, 0> {
  static constexpr DType kType = DType::kQ5_1;
  static __m512i Quants(const BlockQ5_1& a, const BlockQ5_1& b) {
    const __m512i q = NibblePair(a.qs, b.qs);
    return _mm512_mask_add_epi8(q, HighBitPair(a.qh, b.qh), q, _mm512_set1_epi8(16));
  }
};
struct Q8_0 : Q32Pair<Q8_0, BlockQ8_0, BlockQ8_0, 128> {
  static constexpr DType kType = DType::kQ8_0;
  static constexpr int kPackedBits = 8;
  static __m512i Quants(const BlockQ8_0& a, const BlockQ8_0& b) {
    return _mm512_xor_si512(Join(Load256(a.qs), Load256(b.qs)), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  // Eight dwords of qs per block, biased to unsigned.
  static void GatherLines(const uint8_t* w, __m512i offsets, int64_t e, int64_t n_in, Line* lines) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int64_t k = 0; k < 2 && e / kQK + k < n_in / kQK; ++k) {
      const uint8_t* qs = w + (e / kQK + k) * sizeof(BlockQ8_0) + offsetof(BlockQ8_0, qs);
      for (int g = 0; g < 8; ++g) {
        _mm512_store_si512(lines[8 * k + g].b, _mm512_xor_si512(_mm512_i32gather_epi32(offsets, qs + 4 * g, 1), bias));
      }
    }
  }
};

// ---------------------------------------------------------------------------
// K-quants: one 256-element super-block per step (KQuant, quant_simd.h).

// A K-quant super-block's quants (0..31) in element order, four registers
// of 64.
template <bool kHasHigh, typename BlockW>
inline void UnpackQ45K(const BlockW* w, __m512i q[4]) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m512i hbits;
  if constexpr (kHasHigh) hbits = _mm512_broadcast_i64x4(Load256(w->qh));
  for (int p = 0; p < 4; ++p) {
    const __m256i v = Load256(w->qs + 32 * p);
    q[p] = Join(_mm256_and_si256(v, low4), _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
    if constexpr (kHasHigh) {
      const __m512i sel = Join(_mm256_set1_epi8(static_cast<char>(1 << (2 * p))),
                               _mm256_set1_epi8(static_cast<char>(1 << (2 * p + 1))));
      q[p] = _mm512_mask_add_epi8(q[p], _mm512_test_epi8_mask(hbits, sel), q[p], _mm512_set1_epi8(16));
    }
  }
}
// Q4_K / Q5_K in the 16-row tiles: affine over 32-element sub-blocks,
// w = (d * scale) * q + (-dmin * min).
template <bool kHasHigh, typename BlockW, typename Derived>
struct Q45K {
  static constexpr int64_t kBlock = kQK_K;  // a unit: the super-block
  static constexpr int64_t kWBytes = sizeof(BlockW);
  using XBlock = BlockQ8_K;
  static constexpr int kSub = 32;
  static constexpr int kBias = 0;
  static constexpr bool kAffine = true;
  static void MatmulRows(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
    MatmulTiles<Derived>(a, n_tokens, row_begin, row_end);
  }
  // Decode: a unit is a super-block.
  static void UnpackUnit(const uint8_t* row, int64_t e, int64_t, __m512i* q) {
    UnpackQ45K<kHasHigh>(reinterpret_cast<const BlockW*>(row) + e / kQK_K, q);
  }
  static void UnitScales(const uint8_t* w, int64_t row_bytes, __m512i, int64_t n_valid, int64_t e, int64_t,
                         __m512* d, __m512* m) {
    alignas(64) float ds[8][kTileRows], ms[8][kTileRows];
    for (int r = 0; r < kTileRows; ++r) {
      const auto* blk = reinterpret_cast<const BlockW*>(w + (r < n_valid ? r : n_valid - 1) * row_bytes) + e / kQK_K;
      uint32_t sm[4];
      DecodeScalesK4(blk->scales, sm);
      const auto* bytes = reinterpret_cast<const uint8_t*>(sm);
      const float bd = F16(&blk->d), bm = F16(&blk->dmin);
      for (int k = 0; k < 8; ++k) {
        ds[k][r] = bd * static_cast<float>(bytes[k]);
        ms[k][r] = -bm * static_cast<float>(bytes[8 + k]);
      }
    }
    for (int k = 0; k < 8; ++k) {
      d[k] = _mm512_load_ps(ds[k]);
      m[k] = _mm512_load_ps(ms[k]);
    }
  }
};
struct Q4_K : Q45K<false, BlockQ4_K, Q4_K> {
  static constexpr DType kType = DType::kQ4_K;
};
struct Q5_K : Q45K<true, BlockQ5_K, Q5_K> {
  static constexpr DType kType = DType::kQ5_K;
};

struct Q6_K {
  static constexpr DType kType = DType::kQ6_K;
  static constexpr int64_t kBlock = kQK_K;  // a unit: the super-block
  static constexpr int64_t kWBytes = sizeof(BlockQ6_K);
  // A super-block's quants (0..63) in element order, four registers of 64.
  static void Unpack(const BlockQ6_K* w, __m512i q[4]) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi8(0x03);
    const __m512i shift_a = Join(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
    const __m512i shift_b = Join(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = Load512(w->ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(Load256(w->qh + 32 * h));
      // Elements 0..63 of this half: low nibbles of ql, qh bits 0-1 / 2-3.
      const __m512i ha = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_a), two);
      q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16(ha, 4));
      // Elements 64..127: high nibbles, qh bits 4-5 / 6-7.
      const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_b), two);
      q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_slli_epi16(hb, 4));
    }
  }

  // The 16-row tiles: biased over 16-element sub-blocks,
  // w = (d * scale) * (q - 32).
  using XBlock = BlockQ8_K;
  static constexpr int kSub = 16;
  static constexpr int kBias = 32;
  static constexpr bool kAffine = false;
  static void MatmulRows(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
    MatmulTiles<Q6_K>(a, n_tokens, row_begin, row_end);
  }
  // Decode: a unit is a super-block.
  static void UnpackUnit(const uint8_t* row, int64_t e, int64_t, __m512i* q) {
    Unpack(reinterpret_cast<const BlockQ6_K*>(row) + e / kQK_K, q);
  }
  static void UnitScales(const uint8_t* w, int64_t row_bytes, __m512i, int64_t n_valid, int64_t e, int64_t,
                         __m512* d, __m512*) {
    alignas(64) float ds[16][kTileRows];
    for (int r = 0; r < kTileRows; ++r) {
      const auto* blk =
          reinterpret_cast<const BlockQ6_K*>(w + (r < n_valid ? r : n_valid - 1) * row_bytes) + e / kQK_K;
      const float bd = F16(&blk->d);
      for (int k = 0; k < 16; ++k) ds[k][r] = bd * static_cast<float>(blk->scales[k]);
    }
    for (int k = 0; k < 16; ++k) d[k] = _mm512_load_ps(ds[k]);
  }
};

// Float weights against f32 activations, 16 per step.
template <int64_t kElemBytes>
struct FloatW {
  static constexpr int64_t kBlock = 16;
  static constexpr int64_t kWBytes = 16 * kElemBytes;
  static constexpr int64_t kXBytes = 16 * sizeof(float);
  using X = __m512;
  using W = __m512;
  static X PrepX(const uint8_t* p) { return _mm512_loadu_ps(p); }
  static void Acc(__m512& acc, W w, X x) { acc = _mm512_fmadd_ps(w, x, acc); }
};
struct F32 : FloatW<4> {
  static constexpr DType kType = DType::kF32;
  static W PrepW(const uint8_t* p) { return _mm512_loadu_ps(p); }
};
struct F16W : FloatW<2> {
  static constexpr DType kType = DType::kF16;
  static W PrepW(const uint8_t* p) { return _mm512_maskz_cvtph_ps(0xFFFF, Load256(p)); }
};
struct BF16 : FloatW<2> {
  static constexpr DType kType = DType::kBF16;
  static W PrepW(const uint8_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(Load256(p)), 16));
  }
};

// ---------------------------------------------------------------------------
// The tiled matmul of quant_simd.h over __m512: tiles of 4 rows x 1 token
// (decode) or, with 32 vector registers, 4 rows x up to 4 tokens.
struct Isa {
  using Acc = __m512;
  static constexpr int kPrefillRows = 4;
  static constexpr int kCachedRows = 8;
  static constexpr int kCachedTokens = 2;
  static __m512 Zero() { return _mm512_setzero_ps(); }
  static float HSum(__m512 v) { return avx512::HSum(v); }
};

// Calls fn(U{}) for the weight type U of wtype among those with a packed
// form; false for any other type.
template <typename Fn>
bool WithPackedType(DType wtype, Fn&& fn) {
  switch (wtype) {
    case DType::kQ4_0: fn(Q4_0{}); return true;
    case DType::kQ4_1: fn(Q4_1{}); return true;
    case DType::kQ8_0: fn(Q8_0{}); return true;
    default: return false;
  }
}

int64_t PackedBytes(DType wtype, int64_t n_rows, int64_t n_in) {
  int64_t bytes = 0;
  if (n_in % kQK == 0) WithPackedType(wtype, [&](auto u) { bytes = Packed<decltype(u)>::Bytes(n_rows, n_in); });
  return bytes;
}

void PackRowsFor(void* dst, const void* w, DType wtype, int64_t n_rows, int64_t n_in) {
  const bool packed = WithPackedType(wtype, [&](auto u) {
    using U = decltype(u);
    PackRows<U, typename U::WBlock>(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(w), n_rows, n_in,
                                    RowBytes(wtype, n_in));
  });
  ATRIUM_CHECK(packed, "pack_rows: type %d has no packed form", static_cast<int>(wtype));
}

// ---------------------------------------------------------------------------
// Activation quantizers: Q8_0 and Q8_1 as the AVX2 table forms them (GGML's
// x86 quantize_row_q8_0 / q8_1: id = 127 / amax, round half to even), bit
// for bit, one block in two registers; other types are the AVX2 table's.

template <bool kSum>
inline void QuantQ8Block(const float* x, void* d_out, void* s_out, int8_t* qs) {
  const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
  const __m512 amax = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
  const float max_abs = HMax(_mm256_max_ps(_mm512_castps512_ps256(amax), _mm512_extractf32x8_ps(amax, 1)));
  const float d = max_abs / 127;
  const float id = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
  StoreF16(d_out, d);
  const __m512 idv = _mm512_set1_ps(id);
  const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtsepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 16), _mm512_cvtsepi32_epi8(q1));
  if constexpr (kSum) {
    // Integers of at most 32 * 127: the same sum in any order.
    const __m512i s = _mm512_add_epi32(q0, q1);
    __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    StoreF16(s_out, static_cast<float>(_mm_cvtsi128_si32(s4)) * d);
  }
}

// Lane b of the result: the horizontal reduction (op: max, or an integer
// add on the vectors' bits) of v[b], for 16 vectors. Three rounds of lane
// shuffles; the order of a max or of an integer add does not change its
// result.
template <typename Op>
inline __m512 Reduce16(const __m512 v[16], Op op) {
  __m512 r8[8], r4[4];
  for (int i = 0; i < 8; ++i) {  // 128-bit lanes: block 2i's halves folded, then 2i + 1's
    r8[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  }
  for (int j = 0; j < 4; ++j) {  // lane l: four partials of block 4j + l
    r4[j] = op(_mm512_shuffle_f32x4(r8[2 * j], r8[2 * j + 1], 0x88),
               _mm512_shuffle_f32x4(r8[2 * j], r8[2 * j + 1], 0xDD));
  }
  const __m512 u01 = op(_mm512_unpacklo_ps(r4[0], r4[1]), _mm512_unpackhi_ps(r4[0], r4[1]));
  const __m512 u23 = op(_mm512_unpacklo_ps(r4[2], r4[3]), _mm512_unpackhi_ps(r4[2], r4[3]));
  const __m512 w = op(_mm512_shuffle_ps(u01, u23, 0x44), _mm512_shuffle_ps(u01, u23, 0xEE));
  // Lane 4l + k now holds block 4k + l: put block b in lane b.
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(order, w);
}

// Sixteen Q8_0 / Q8_1 blocks (512 floats) at once, the same bytes as
// QuantQ8Block gives each: the per-block max and sum are reduced across
// blocks in registers, and the scales divided and rounded to f16 sixteen
// at a time, where one block's scalar reductions and divisions dominated.
template <bool kSum, typename Block>
void QuantQ8x16(const float* x, Block* out) {
  __m512 v[32], amax[16];
  for (int b = 0; b < 16; ++b) {
    v[2 * b] = _mm512_loadu_ps(x + 32 * b);
    v[2 * b + 1] = _mm512_loadu_ps(x + 32 * b + 16);
    amax[b] = _mm512_max_ps(_mm512_abs_ps(v[2 * b]), _mm512_abs_ps(v[2 * b + 1]));
  }
  const __m512 max_abs = Reduce16(amax, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
  const __m512 d = _mm512_div_ps(max_abs, _mm512_set1_ps(127.0f));
  const __mmask16 nonzero = _mm512_cmp_ps_mask(max_abs, _mm512_setzero_ps(), _CMP_NEQ_OQ);
  alignas(64) float id[16];
  _mm512_store_ps(id, _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(127.0f), max_abs));
  alignas(32) uint16_t dh[16], sh[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(dh), _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
  __m512 sums[16];  // int32 bits
  for (int b = 0; b < 16; ++b) {
    const __m512 idv = _mm512_set1_ps(id[b]);
    const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v[2 * b], idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v[2 * b + 1], idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].qs), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].qs + 16), _mm512_cvtsepi32_epi8(q1));
    if constexpr (kSum) sums[b] = _mm512_castsi512_ps(_mm512_add_epi32(q0, q1));
    std::memcpy(&out[b].d, &dh[b], 2);
  }
  if constexpr (kSum) {
    const __m512 total = Reduce16(sums, [](__m512 a, __m512 b) {
      return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
    });
    const __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_castps_si512(total)), d);
    _mm256_store_si256(reinterpret_cast<__m256i*>(sh), _mm512_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT));
    for (int b = 0; b < 16; ++b) std::memcpy(&out[b].s, &sh[b], 2);
  }
}

void QuantizeRow(DType type, void* dst, const float* x, int64_t n) {
  const auto block = [](auto sum, const float* xb, void* d, void* s_out, int8_t* qs) {
    QuantQ8Block<decltype(sum)::value>(xb, d, s_out, qs);
  };
  // Whole groups of 16 blocks sixteen at a time; QuantizeQ8Rows takes the
  // blocks after them.
  if (n % kQK == 0 && (type == DType::kQ8_0 || type == DType::kQ8_1)) {
    const int64_t groups = n / (16 * kQK);
    for (int64_t g = 0; g < groups; ++g) {
      if (type == DType::kQ8_0) {
        QuantQ8x16<false>(x + g * 16 * kQK, static_cast<BlockQ8_0*>(dst) + g * 16);
      } else {
        QuantQ8x16<true>(x + g * 16 * kQK, static_cast<BlockQ8_1*>(dst) + g * 16);
      }
    }
    const size_t block_bytes = type == DType::kQ8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ8_1);
    dst = static_cast<uint8_t*>(dst) + static_cast<size_t>(groups * 16) * block_bytes;
    x += groups * 16 * kQK;
    n -= groups * 16 * kQK;
  }
  if (!QuantizeQ8Rows(type, dst, x, n, block)) g_fallback_quantize(type, dst, x, n);
}

#include "kernels/cpu/tiles_amx.h"

// The packed entry points' frame: the arguments as MatmulArgs, the weight
// type as its struct for fn(a, u), and a clear failure for a type with no
// packed form.
template <typename Fn>
void WithPackedArgs(const char* op, float* out, int64_t ldo, const void* packed, DType wtype, int64_t n_in,
                    const void* x, int64_t x_stride, Fn&& fn) {
  const MatmulArgs a{out, ldo, static_cast<const uint8_t*>(packed), 0, static_cast<const uint8_t*>(x), x_stride,
                     n_in, wtype};
  const bool done = WithPackedType(wtype, [&](auto u) { fn(a, u); });
  ATRIUM_CHECK(done, "%s: type %d has no packed form", op, static_cast<int>(wtype));
}

// matmul_packed on the vpdpbusd tiles (kAmx = false) or on AMX tiles.
template <bool kAmx>
void MatmulPackedFor(float* out, int64_t ldo, const void* packed, DType wtype, int64_t n_in, const void* x,
                     int64_t x_stride, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  WithPackedArgs("matmul_packed", out, ldo, packed, wtype, n_in, x, x_stride, [&](const MatmulArgs& a, auto u) {
    if constexpr (kAmx) {
      MatmulPackedAmx<decltype(u)>(a, n_tokens, row_begin, row_end);
    } else {
      MatmulPacked<decltype(u)>(a, n_tokens, row_begin, row_end);
    }
  });
}

// matmul_packed_claimed, the same two ways.
template <bool kAmx>
void MatmulPackedClaimedFor(float* out, int64_t ldo, const void* packed, DType wtype, int64_t n_in, const void* x,
                            int64_t x_stride, int64_t n_tokens, int64_t n_rows, WorkClaims& claims, bool same_x) {
  WithPackedArgs("matmul_packed_claimed", out, ldo, packed, wtype, n_in, x, x_stride,
                 [&](const MatmulArgs& a, auto u) {
                   if constexpr (kAmx) {
                     MatmulPackedAmxClaimed<decltype(u)>(a, n_tokens, n_rows, claims, same_x);
                   } else {
                     MatmulPackedClaimed<decltype(u)>(a, n_tokens, n_rows, claims, same_x);
                   }
                 });
}

}  // namespace

void FillQuantAmx(CpuKernels& t) {
  t.matmul_packed = MatmulPackedFor<true>;
  t.matmul_packed_claimed = MatmulPackedClaimedFor<true>;
}

void FillQuant(CpuKernels& t) {
  g_fallback_quantize = t.quantize_row;
  t.quantize_row = QuantizeRow;
  FillMatmul<Isa, F32, F16W, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K>(t);
  t.packed_bytes = PackedBytes;
  t.pack_rows = PackRowsFor;
  t.matmul_packed = MatmulPackedFor<false>;
  t.matmul_packed_claimed = MatmulPackedClaimedFor<false>;
}

}  // namespace atrium::kernels::avx512

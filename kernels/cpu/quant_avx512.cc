// AVX-512 (F, BW, DQ, VL, VNNI) quantized dot products and matmul. 32-element
// types are processed two blocks per 512-bit register with vpdpbusd (u8 x s8
// -> s32). Signed weights are biased to unsigned (q + 8, q + 16, q ^ 0x80) and
// the bias is taken back with the activation block sum, computed once per
// token and block and shared by every row of a tile; this is exact for any
// int8 activation. K-quants use maddubs + vpdpwssd with 16-bit sub-block
// scales. Activation quantization is inherited from the AVX2 table.
#include <immintrin.h>

#include <cstring>
#include <cstddef>
#include <type_traits>
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
// Two f16 values -> [a x 8, b x 8].
inline __m512 PairF16(const void* a, const void* b) {
  uint16_t ha, hb;
  std::memcpy(&ha, a, 2);
  std::memcpy(&hb, b, 2);
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(ha | (uint32_t{hb} << 16))));
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
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

// Activations: two Q8_0 / Q8_1 blocks.
struct XPair {
  __m512i q;
  __m512 d;
  __m512i bias;  // -kBias * (sum of each group of 4 q), or the Q8_1 s values
  __m512 s;
};
template <typename BlockX, int kBias>
inline XPair LoadXPair(const uint8_t* p) {
  const auto* b = reinterpret_cast<const BlockX*>(p);
  XPair x;
  x.q = Join(Load256(b[0].qs), Load256(b[1].qs));
  x.d = PairF16(&b[0].d, &b[1].d);
  if constexpr (kBias != 0) {
    const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(kBias)), x.q);
    x.bias = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
  } else {
    x.bias = _mm512_setzero_si512();
  }
  if constexpr (std::is_same_v<BlockX, BlockQ8_1>) x.s = PairF16(&b[0].s, &b[1].s);
  return x;
}

#include "kernels/cpu/tiles_avx512.h"

struct WPair {
  __m512i q;  // unsigned (biased) quants
  __m512 d;
  __m512 m;   // block mins in lanes 0 and 8 (affine types)
};
template <typename Derived, typename BlockW, typename BlockX, int kBiasQ>
struct Q32Pair {
  static constexpr int64_t kBlock = 64;
  static constexpr int64_t kWBytes = 2 * sizeof(BlockW);
  static constexpr int64_t kXBytes = 2 * sizeof(BlockX);
  static constexpr bool kAffine = std::is_same_v<BlockX, BlockQ8_1>;
  using X = XPair;
  using W = WPair;
  static X PrepX(const uint8_t* p) { return LoadXPair<BlockX, kBiasQ>(p); }
  static W PrepW(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockW*>(p);
    W w;
    w.q = Derived::Quants(b[0], b[1]);
    w.d = PairF16(&b[0].d, &b[1].d);
    if constexpr (kAffine) w.m = _mm512_maskz_mov_ps(0x0101, PairF16(&b[0].m, &b[1].m));
    return w;
  }
  static void Acc(__m512& acc, const W& w, const X& x) {
    const __m512i dot = _mm512_dpbusd_epi32(x.bias, w.q, x.q);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(w.d, x.d), acc);
    if constexpr (kAffine) acc = _mm512_fmadd_ps(w.m, x.s, acc);
  }
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

// 16-bit lane i of the result = lane (base + i / group) of the source.
// A constant table, so no call builds it with scalar stores (whose vector
// reload stalls on store forwarding).
template <int kBase, int kGroup>
struct SpreadTable {
  alignas(64) uint16_t idx[32];
  constexpr SpreadTable() : idx{} {
    for (int i = 0; i < 32; ++i) idx[i] = static_cast<uint16_t>(kBase + i / kGroup);
  }
};
template <int kBase, int kGroup>
inline __m512i SpreadIndex() {
  alignas(64) static constexpr SpreadTable<kBase, kGroup> kTable;
  return _mm512_load_si512(kTable.idx);
}

// A K-quant super-block unpacked for the dot products: PrepW does the bit
// work once per weight step, so prefill (which caches unpacked tiles, see
// RowTileCached) pays it once per row instead of once per token.
struct UnpackedQ45K {
  __m512i q[4];      // 64 quants (0..31) a group, element order
  __m512i scale[4];  // each 16-bit lane: the scale of its 32 elements
  __m128i mins;      // the 8 mins, int16
  float d, dmin;
};
template <bool kHasHigh, typename BlockW>
inline UnpackedQ45K UnpackQ45K(const BlockW* w) {
  uint32_t sm[4];
  DecodeScalesK4(w->scales, sm);
  // 16-bit lanes 0..7: scales, 8..15: mins.
  const __m512i sm16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(Load128(sm)));
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m512i hbits;
  if constexpr (kHasHigh) hbits = _mm512_broadcast_i64x4(Load256(w->qh));
  const __m512i spread[4] = {SpreadIndex<0, 16>(), SpreadIndex<2, 16>(), SpreadIndex<4, 16>(),
                             SpreadIndex<6, 16>()};
  UnpackedQ45K u;
  for (int p = 0; p < 4; ++p) {
    const __m256i q = Load256(w->qs + 32 * p);
    __m512i v = Join(_mm256_and_si256(q, low4), _mm256_and_si256(_mm256_srli_epi16(q, 4), low4));
    if constexpr (kHasHigh) {
      const __m512i sel = Join(_mm256_set1_epi8(static_cast<char>(1 << (2 * p))),
                               _mm256_set1_epi8(static_cast<char>(1 << (2 * p + 1))));
      v = _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(hbits, sel), v, _mm512_set1_epi8(16));
    }
    u.q[p] = v;
    u.scale[p] = _mm512_permutexvar_epi16(spread[p], sm16);
  }
  u.mins = _mm256_extracti128_si256(_mm512_castsi512_si256(sm16), 1);
  u.d = F16(&w->d);
  u.dmin = F16(&w->dmin);
  return u;
}
inline void AccQ45K(__m512& acc, const UnpackedQ45K& w, const BlockQ8_K* x) {
  __m512i sumi = _mm512_setzero_si512();
  for (int p = 0; p < 4; ++p) {
    const __m512i p16 = _mm512_maddubs_epi16(w.q[p], Load512(x->qs + 64 * p));
    sumi = _mm512_dpwssd_epi32(sumi, p16, w.scale[p]);
  }
  // Mins against the activation sums of each 32 (pairs of bsums).
  const __m256i bsums = Load256(x->bsums);
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
  const __m128i mins = _mm_madd_epi16(w.mins, pairs);
  const float dx = LoadD(x);
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(dx * w.d), acc);
  acc = _mm512_fmadd_ps(_mm512_zextps128_ps512(_mm_cvtepi32_ps(mins)), _mm512_set1_ps(-dx * w.dmin), acc);
}
// Q4_K / Q5_K in the 16-row tiles: affine over 32-element sub-blocks,
// w = (d * scale) * q + (-dmin * min).
template <bool kHasHigh, typename BlockW, typename Derived>
struct Q45K : KQuant<BlockW> {
  using W = UnpackedQ45K;
  static W PrepW(const uint8_t* p) { return UnpackQ45K<kHasHigh>(reinterpret_cast<const BlockW*>(p)); }
  static void Acc(__m512& acc, const W& w, typename KQuant<BlockW>::X x) { AccQ45K(acc, w, x); }

  using XBlock = BlockQ8_K;
  static constexpr int kSub = 32;
  static constexpr int kBias = 0;
  static constexpr bool kAffine = true;
  static void MatmulRows(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
    MatmulTiles<Derived>(a, n_tokens, row_begin, row_end);
  }
  // Decode: a unit is a super-block.
  static void UnpackUnit(const uint8_t* row, int64_t e, int64_t, __m512i* q) {
    const UnpackedQ45K u = UnpackQ45K<kHasHigh>(reinterpret_cast<const BlockW*>(row) + e / kQK_K);
    for (int p = 0; p < 4; ++p) q[p] = u.q[p];
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

struct UnpackedQ6K {
  __m512i q[4];      // 64 quants (0..63) a group: elements 0-63, 64-127, 128-191, 192-255
  __m512i scale[4];  // each 16-bit lane: the scale of its 16 elements
  __m256i scales16;  // the 16 scales, int16 (for the -32 bias)
  float d;
};
struct Q6_K : KQuant<BlockQ6_K> {
  static constexpr DType kType = DType::kQ6_K;
  using W = UnpackedQ6K;
  static W PrepW(const uint8_t* p) {
    const auto* w = reinterpret_cast<const BlockQ6_K*>(p);
    UnpackedQ6K u;
    u.scales16 = _mm256_cvtepi8_epi16(Load128(w->scales));
    const __m512i scz = _mm512_castsi256_si512(u.scales16);
    const __m512i low4 = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi8(0x03);
    const __m512i shift_a = Join(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
    const __m512i shift_b = Join(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
    const __m512i spread[4] = {SpreadIndex<0, 8>(), SpreadIndex<4, 8>(), SpreadIndex<8, 8>(),
                               SpreadIndex<12, 8>()};
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = Load512(w->ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(Load256(w->qh + 32 * h));
      // Elements 0..63 of this half: low nibbles of ql, qh bits 0-1 / 2-3.
      const __m512i ha = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_a), two);
      u.q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16(ha, 4));
      // Elements 64..127: high nibbles, qh bits 4-5 / 6-7.
      const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_b), two);
      u.q[2 * h + 1] =
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_slli_epi16(hb, 4));
      u.scale[2 * h] = _mm512_permutexvar_epi16(spread[2 * h], scz);
      u.scale[2 * h + 1] = _mm512_permutexvar_epi16(spread[2 * h + 1], scz);
    }
    u.d = F16(&w->d);
    return u;
  }
  static void Acc(__m512& acc, const W& w, X x) {
    // The -32 of every q, folded in with the activation sums of each 16.
    const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(Load256(x->bsums), w.scales16), 5);
    __m512i sumi = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), bias));
    for (int h = 0; h < 2; ++h) {
      const __m512i pa = _mm512_maddubs_epi16(w.q[2 * h], Load512(x->qs + 128 * h));
      const __m512i pb = _mm512_maddubs_epi16(w.q[2 * h + 1], Load512(x->qs + 128 * h + 64));
      sumi = _mm512_dpwssd_epi32(sumi, pa, w.scale[2 * h]);
      sumi = _mm512_dpwssd_epi32(sumi, pb, w.scale[2 * h + 1]);
    }
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(LoadD(x) * w.d), acc);
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
    const UnpackedQ6K u = PrepW(row + e / kQK_K * sizeof(BlockQ6_K));
    for (int p = 0; p < 4; ++p) q[p] = u.q[p];
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

int64_t PackedBytes(DType wtype, int64_t n_rows, int64_t n_in) {
  if (n_in % kQK != 0) return 0;
  switch (wtype) {
    case DType::kQ4_0: return Packed<Q4_0>::Bytes(n_rows, n_in);
    case DType::kQ4_1: return Packed<Q4_1>::Bytes(n_rows, n_in);
    case DType::kQ8_0: return Packed<Q8_0>::Bytes(n_rows, n_in);
    default: return 0;
  }
}

void PackRowsFor(void* dst, const void* w, DType wtype, int64_t n_rows, int64_t n_in) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* src = static_cast<const uint8_t*>(w);
  switch (wtype) {
    case DType::kQ4_0: return PackRows<Q4_0, BlockQ4_0>(d, src, n_rows, n_in, RowBytes(wtype, n_in));
    case DType::kQ4_1: return PackRows<Q4_1, BlockQ4_1>(d, src, n_rows, n_in, RowBytes(wtype, n_in));
    case DType::kQ8_0: return PackRows<Q8_0, BlockQ8_0>(d, src, n_rows, n_in, RowBytes(wtype, n_in));
    default: ATRIUM_CHECK(false, "pack_rows: type %d has no packed form", static_cast<int>(wtype));
  }
}

void MatmulPackedFor(float* out, int64_t ldo, const void* packed, DType wtype, int64_t n_in, const void* x,
                     int64_t x_stride, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  const MatmulArgs a{out, ldo, static_cast<const uint8_t*>(packed), 0, static_cast<const uint8_t*>(x), x_stride,
                     n_in, wtype};
  switch (wtype) {
    case DType::kQ4_0: return MatmulPacked<Q4_0>(a, n_tokens, row_begin, row_end);
    case DType::kQ4_1: return MatmulPacked<Q4_1>(a, n_tokens, row_begin, row_end);
    case DType::kQ8_0: return MatmulPacked<Q8_0>(a, n_tokens, row_begin, row_end);
    default: ATRIUM_CHECK(false, "matmul_packed: type %d has no packed form", static_cast<int>(wtype));
  }
}

}  // namespace

void FillQuant(CpuKernels& t) {
  FillMatmul<Isa, F32, F16W, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K>(t);
  t.packed_bytes = PackedBytes;
  t.pack_rows = PackRowsFor;
  t.matmul_packed = MatmulPackedFor;
}

}  // namespace atrium::kernels::avx512

// Internal: the ISA-independent half of the SIMD quantized matmul (the tile
// loop, the walk over rows and tokens, the dispatch on the weight type),
// written once over an ISA interface I and the weight types of
// quant_avx2.cc and quant_avx512.cc, each compiled with its own ISA flags.
// Include only from those files.
//
// Everything here has internal linkage (anonymous namespace) for the reason
// float_simd.h gives: the AVX-512 instantiation must never be merged into the
// AVX2 table. That includes g_fallback_vec_dot, one per including file.
//
// I provides: Acc (the accumulator vector), Zero(), HSum(Acc), and
// kPrefillRows (weight rows per tile when there is more than one token), and
// kCachedRows x kCachedTokens (the tile when prefill reads unpacked weights
// from L1: more rows share each activation step, whose preparation is then
// the larger cost).
// A weight type T provides: kType (its DType); kBlock (elements per step);
// kWBytes, kXBytes (bytes of a weight row, of an activation row per step);
// X, PrepX (what an activation step contributes, loaded once per token);
// W, PrepW (what a weight step contributes, loaded once per row); and
// Acc(acc, w, x), which adds their dot product into acc.
#pragma once

#include <immintrin.h>

#include <type_traits>
#include <vector>

#include <cstring>
#include <string_view>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "runtime/status.h"

namespace atrium::kernels {
namespace {

using VecDotFn = float (*)(DType, const void*, const void*, int64_t);
// The table's vec_dot before the including file overrides it: used for the
// part of a row that is not a whole number of steps (the element tail of
// float rows; on AVX-512, an odd last 32-element block).
VecDotFn g_fallback_vec_dot = nullptr;

// The table's quantize_row before the including file overrides it: the
// types that file does not quantize itself. One per including file.
using QuantizeFn = void (*)(DType, void*, const float*, int64_t);
QuantizeFn g_fallback_quantize = nullptr;

inline void StoreF16(void* p, float f) {  // p may be misaligned
  const uint16_t h = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
  std::memcpy(p, &h, 2);
}
inline float HMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Q8_0 / Q8_1 activation rows, block by block, with an ISA's block
// quantizer: block(kSum, x, d, s, qs) with kSum a std::bool_constant (true
// for Q8_1, whose s it also writes). False for every other type.
template <typename BlockFn>
bool QuantizeQ8Rows(DType type, void* dst, const float* x, int64_t n, BlockFn&& block) {
  if (type != DType::kQ8_0 && type != DType::kQ8_1) return false;
  ATRIUM_CHECK(n % kQK == 0, "quantize_row: n=%lld", static_cast<long long>(n));
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i) {
    if (type == DType::kQ8_0) {
      auto* b = reinterpret_cast<BlockQ8_0*>(out + i * sizeof(BlockQ8_0));
      block(std::false_type{}, x + i * kQK, &b->d, nullptr, b->qs);
    } else {
      auto* b = reinterpret_cast<BlockQ8_1*>(out + i * sizeof(BlockQ8_1));
      block(std::true_type{}, x + i * kQK, &b->d, &b->s, b->qs);
    }
  }
  return true;
}

inline float F16(const void* p) {  // p may be misaligned (packed blocks)
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// K-quants: one step is a 256-element super-block, unpacked inside Acc (per
// token); the tile still reads it from memory once.
template <typename BlockW>
struct KQuant {
  static constexpr int64_t kBlock = kQK_K;
  static constexpr int64_t kWBytes = sizeof(BlockW);
  static constexpr int64_t kXBytes = sizeof(BlockQ8_K);
  using X = const BlockQ8_K*;
  using W = const BlockW*;
  static X PrepX(const uint8_t* p) { return reinterpret_cast<X>(p); }
  static W PrepW(const uint8_t* p) { return reinterpret_cast<W>(p); }
};
inline float LoadD(const BlockQ8_K* x) {
  float d;
  std::memcpy(&d, &x->d, 4);
  return d;
}
// The 12 packed bytes of Q4_K / Q5_K -> 8 scales (bytes 0..7) and 8 mins
// (bytes 8..15).
inline void DecodeScalesK4(const uint8_t* scales, uint32_t out[4]) {
  constexpr uint32_t kMask1 = 0x3f3f3f3f, kMask2 = 0x0f0f0f0f, kMask3 = 0x03030303;
  uint32_t u[3];
  std::memcpy(u, scales, 12);
  out[0] = u[0] & kMask1;
  out[1] = (u[2] & kMask2) | (((u[0] >> 6) & kMask3) << 4);
  out[2] = u[1] & kMask1;
  out[3] = ((u[2] >> 4) & kMask2) | (((u[1] >> 6) & kMask3) << 4);
}

struct MatmulArgs {
  float* out;
  int64_t ldo;
  const uint8_t* w;
  int64_t w_row_bytes;
  const uint8_t* x;
  int64_t x_stride;
  int64_t n_in;
  DType wtype;
};

// The tile: R weight rows x C tokens, every weight step loaded once and used
// against C activation steps. `weights(r, b)` gives row r's step b.
template <class I, typename T, int R, int C, typename WeightSource>
void TileFrom(const MatmulArgs& a, int64_t row0, int64_t tok0, const WeightSource& weights) {
  typename I::Acc acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = I::Zero();
  const uint8_t* wrow = a.w + row0 * a.w_row_bytes;
  const uint8_t* xrow = a.x + tok0 * a.x_stride;
  const int64_t nb = a.n_in / T::kBlock;
  for (int64_t b = 0; b < nb; ++b) {
    typename T::X xs[C];
    for (int c = 0; c < C; ++c) xs[c] = T::PrepX(xrow + c * a.x_stride + b * T::kXBytes);
    for (int r = 0; r < R; ++r) {
      const typename T::W ws = weights(r, b);
      for (int c = 0; c < C; ++c) T::Acc(acc[r][c], ws, xs[c]);
    }
  }
  const int64_t tail = a.n_in - nb * T::kBlock;
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      float v = I::HSum(acc[r][c]);
      if (tail != 0) {
        v += g_fallback_vec_dot(a.wtype, wrow + r * a.w_row_bytes + nb * T::kWBytes,
                                xrow + c * a.x_stride + nb * T::kXBytes, tail);
      }
      a.out[(tok0 + c) * a.ldo + row0 + r] = v;
    }
  }
}

// The tile reading its weights from memory.
template <class I, typename T, int R, int C>
void Tile(const MatmulArgs& a, int64_t row0, int64_t tok0) {
  const uint8_t* wrow = a.w + row0 * a.w_row_bytes;
  TileFrom<I, T, R, C>(a, row0, tok0, [&](int r, int64_t b) {
    // The following tiles' rows lie just after these: fetch two tiles ahead
    // (one tile ahead was 8% slower on SmolLM2, four no faster). Without this,
    // decode (R interleaved row streams a thread) stalls on DRAM. A prefetch
    // past the end of the matrix is harmless: it never faults.
    _mm_prefetch(reinterpret_cast<const char*>(wrow + (r + 2 * R) * a.w_row_bytes + b * T::kWBytes), _MM_HINT_T0);
    return T::PrepW(wrow + r * a.w_row_bytes + b * T::kWBytes);
  });
}

// Prefill of types whose unpacked weight step is a value (the 32-element
// quants, f16, bf16): a tile of rows is unpacked once into a thread-local
// buffer (a few KB, stays in L1) and then every group of tokens reads it, so
// bit-unpacking is paid once per row rather than once per 4 tokens.
template <typename T>
constexpr bool kCacheUnpacked = !std::is_pointer_v<typename T::W> && std::is_trivially_copyable_v<typename T::W>;

template <class I, typename T, int R, int C>
void RowTileCached(const MatmulArgs& a, int64_t row0, int64_t n_tokens) {
  const int64_t nb = a.n_in / T::kBlock;
  // A type local to this internal function, so that std::vector's members
  // are instantiated with internal linkage too (never shared across ISAs).
  struct Step {
    typename T::W w;
  };
  thread_local std::vector<Step> unpacked;
  unpacked.resize(static_cast<size_t>(nb * R));
  const uint8_t* wrow = a.w + row0 * a.w_row_bytes;
  for (int64_t b = 0; b < nb; ++b)
    for (int r = 0; r < R; ++r) unpacked[b * R + r].w = T::PrepW(wrow + r * a.w_row_bytes + b * T::kWBytes);
  const Step* w = unpacked.data();
  const auto from_cache = [w](int r, int64_t b) { return w[b * R + r].w; };
  int64_t t = 0;
  for (; t + C <= n_tokens; t += C) TileFrom<I, T, R, C>(a, row0, t, from_cache);
  for (; t < n_tokens; ++t) TileFrom<I, T, R, 1>(a, row0, t, from_cache);
}

// Row-major tiles. Rows outer (a tile of rows stays in L1 while every token
// passes), tokens inner in groups of 4 with I::kPrefillRows rows a tile, or
// (decode) 4 rows against the one token.
template <class I, typename T>
void RowMajor(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  int64_t r = row_begin;
  if (n_tokens == 1) {
    for (; r + 4 <= row_end; r += 4) Tile<I, T, 4, 1>(a, r, 0);
    for (; r < row_end; ++r) Tile<I, T, 1, 1>(a, r, 0);
    return;
  }
  if constexpr (kCacheUnpacked<T>) {
    if (n_tokens >= 8) {
      constexpr int kR = I::kCachedRows, kC = I::kCachedTokens;
      for (; r + kR <= row_end; r += kR) RowTileCached<I, T, kR, kC>(a, r, n_tokens);
      for (; r < row_end; ++r) RowTileCached<I, T, 1, kC>(a, r, n_tokens);
      return;
    }
  }
  auto tokens = [&](auto rows_tag, int64_t row) {
    constexpr int kR = decltype(rows_tag)::value;
    int64_t t = 0;
    for (; t + 4 <= n_tokens; t += 4) Tile<I, T, kR, 4>(a, row, t);
    for (; t + 2 <= n_tokens; t += 2) Tile<I, T, kR, 2>(a, row, t);
    for (; t < n_tokens; ++t) Tile<I, T, kR, 1>(a, row, t);
  };
  constexpr int kRows = I::kPrefillRows;
  for (; r + kRows <= row_end; r += kRows) tokens(std::integral_constant<int, kRows>{}, r);
  for (; r < row_end; ++r) tokens(std::integral_constant<int, 1>{}, r);
}

// A type with its own tiles (quant_avx512.cc's 16-row tiles, one
// arithmetic for every batch size) takes the whole call; the others run on
// the row-major tiles.
template <class I, typename T>
void Matmul(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  if constexpr (requires { T::MatmulRows(a, n_tokens, row_begin, row_end); }) {
    T::MatmulRows(a, n_tokens, row_begin, row_end);
  } else {
    RowMajor<I, T>(a, n_tokens, row_begin, row_end);
  }
}

template <class I, typename T>
void MatmulAs(float* out, int64_t ldo, const void* w, DType wtype, int64_t n_in, const void* x,
              int64_t x_stride, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  const MatmulArgs a{out, ldo, static_cast<const uint8_t*>(w), RowBytes(wtype, n_in),
                     static_cast<const uint8_t*>(x), x_stride, n_in, wtype};
  Matmul<I, T>(a, n_tokens, row_begin, row_end);
}

// matmul_rows over the weight types Ts: the one whose kType is wtype runs.
template <class I, typename... Ts>
void MatmulRowsT(float* out, int64_t ldo, const void* w, DType wtype, int64_t n_in, const void* x,
                 int64_t x_stride, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  // The type name is printed with %.*s rather than through a std::string,
  // whose inline members would be emitted here as weak symbols under this
  // file's ISA flags (see the top of this file).
  ATRIUM_CHECK(n_in % Info(wtype).block_size == 0, "matmul_rows: n_in=%lld not a multiple of the %.*s block",
               static_cast<long long>(n_in), static_cast<int>(DTypeName(wtype).size()), DTypeName(wtype).data());
  const bool supported =
      ((wtype == Ts::kType &&
        (MatmulAs<I, Ts>(out, ldo, w, wtype, n_in, x, x_stride, n_tokens, row_begin, row_end), true)) ||
       ...);
  ATRIUM_CHECK(supported, "matmul_rows: unsupported weight type %.*s", static_cast<int>(DTypeName(wtype).size()),
               DTypeName(wtype).data());
}

template <class I, typename... Ts>
float VecDotT(DType wtype, const void* w, const void* x, int64_t n) {
  float out = 0.0f;
  MatmulRowsT<I, Ts...>(&out, 1, w, wtype, n, x, 0, 1, 0, 1);
  return out;
}

// Sets vec_dot and matmul_rows of t to the ones over the weight types Ts,
// keeping t's vec_dot as the fallback.
template <class I, typename... Ts>
void FillMatmul(CpuKernels& t) {
  g_fallback_vec_dot = t.vec_dot;
  t.vec_dot = VecDotT<I, Ts...>;
  t.matmul_rows = MatmulRowsT<I, Ts...>;
}

}  // namespace
}  // namespace atrium::kernels

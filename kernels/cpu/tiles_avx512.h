// Internal part of quant_avx512.cc (included once, after its helpers): the
// quantized matmul over tiles of 16 weight rows, for decode and prefill.
//
// Why 16-row tiles. The row-major tiles paid the scale work of a block
// (convert, multiply the two scales, accumulate) for every row and token:
// four float ops per 64 weights, which bound Gemma 3's Q5_0 prefill. With 16
// rows in the 16 lanes of a register, that work runs once per 16 rows.
//
// Why one arithmetic for every batch size. A row's result must not depend on
// how many tokens share the call, or a request's greedy output would change
// with the traffic around it (continuous batching mixes one request's decode
// into steps of any size). So decode (one token) and prefill (many) compute
// exactly the same operations per (row, token):
//   for each sub-block j (the elements that share one scale: 32, or 16 for
//   Q6_K), in order: I = exact int32 sum of q * a over the sub-block, plus
//   the bias term; acc = fma(float(I), d_row_j * dx_j, acc); for affine
//   types then acc = fma(m_row_j, s_j, acc).
// Integer sums are exact in any order, so prefill may form them with one
// vpdpbusd per 4 elements of 16 rows (weights transposed into lines), and
// decode by reducing row-major vpdpbusd partial sums across lanes; the float
// chain is the same sequence of the same roundings.
//
// Every type reduces to one of two forms per sub-block, with quants q >= 0:
//   biased:  w = d * (q - kBias)  ->  d * dx * (sum(q a) - kBias * sum(a))
//   affine:  w = d * q + m        ->  d * dx * sum(q a) + m * dx * sum(a)
// A weight type U provides: XBlock (its activation block type), kSub, kBias
// (0 for affine types), kAffine; kBlock (elements of a unit: 64, or a
// 256-element super-block) and kWBytes (bytes of a unit in a row);
// UnpackUnit(row, e, n_in, q): the unit at element e as kBlock / 64
// registers of unsigned quants in element order; and UnitScales(w,
// row_bytes, offsets, n_valid, e, n_in, d, m): the unit's sub-block scales
// and offsets for 16 rows, row r in lane r. Decode and prefill both take
// scales from UnitScales, so they are the same floats.
#pragma once

constexpr int kTileRows = 16;
struct alignas(64) Line {
  uint8_t b[64];
};
// 16 weight rows prepared for prefill: quants transposed into lines,
// scales and offsets by sub-block with the 16 rows in a line.
struct RowTile {
  std::vector<Line> lines;  // [n_in / 4, rounded up to 16]: line j = elements 4j..4j+3 of rows 0..15
  std::vector<Line> d;      // [n_sub]: the 16 rows' sub-block scales, f32
  std::vector<Line> m;      // [n_sub]: the 16 rows' sub-block offsets, f32 (affine types)
};

// Per token and sub-block, what the activation contributes besides its
// quants: its scale dx, and either the bias term -kBias * sum(a) or, for
// affine types, s = dx * sum(a).
struct TokenBlocks {
  std::vector<float> d;       // [n_tokens * n_sub]
  std::vector<int32_t> bias;  // [n_tokens * n_sub] (biased types)
  std::vector<float> s;       // [n_tokens * n_sub] (affine types)
};

// Element e of an activation row: its block and place in the block.
template <typename BlockX>
inline const uint8_t* XQuantAt(const uint8_t* row, int64_t e) {
  constexpr int64_t kElems = std::is_same_v<BlockX, BlockQ8_K> ? kQK_K : kQK;
  return row + (e / kElems) * static_cast<int64_t>(sizeof(BlockX)) + offsetof(BlockX, qs) + e % kElems;
}

// The sum of a Q8_0 block's 32 quants: bias to unsigned, then vpsadbw.
inline int32_t SumQ8(const int8_t* qs) {
  const __m256i u = _mm256_xor_si256(Load256(qs), _mm256_set1_epi8(static_cast<char>(0x80)));
  const __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256());
  const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return static_cast<int32_t>(_mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1)) - kQK * 128;
}

template <typename U>
void PrepareTokenBlocks(const MatmulArgs& a, int64_t n_tokens, TokenBlocks& x) {
  using BlockX = typename U::XBlock;
  constexpr bool kQ8K = std::is_same_v<BlockX, BlockQ8_K>;
  constexpr int64_t kSubsPerBlock = (kQ8K ? kQK_K : kQK) / U::kSub;
  const int64_t n_sub = a.n_in / U::kSub, n_blocks = n_sub / kSubsPerBlock;
  const size_t n = static_cast<size_t>(n_tokens * n_sub);
  x.d.resize(n);
  if constexpr (U::kAffine) {
    x.s.resize(n);
  } else {
    x.bias.resize(n);
  }
  // Raw pointers: through the thread_local vectors the compiler would reload
  // every data pointer after each store.
  float* d = x.d.data();
  float* s = x.s.data();
  int32_t* bias = x.bias.data();
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto* blocks = reinterpret_cast<const BlockX*>(a.x + t * a.x_stride);
    for (int64_t b = 0; b < n_blocks; ++b) {
      const BlockX& blk = blocks[b];
      for (int64_t k = 0; k < kSubsPerBlock; ++k) {
        const int64_t i = t * n_sub + b * kSubsPerBlock + k;
        int32_t sum = 0;  // of the sub-block's activation quants
        if constexpr (kQ8K) {
          d[i] = LoadD(&blk);
          for (int h = 0; h < U::kSub / 16; ++h) sum += blk.bsums[k * (U::kSub / 16) + h];
        } else {
          d[i] = F16(&blk.d);
          if constexpr (!U::kAffine) sum = SumQ8(blk.qs);
        }
        if constexpr (!U::kAffine) {
          bias[i] = -U::kBias * sum;
        } else if constexpr (kQ8K) {
          s[i] = d[i] * static_cast<float>(sum);
        } else {
          s[i] = F16(&blk.s);  // Q8_1 stores d * sum
        }
      }
    }
  }
}

// The float step of one sub-block for one token: the chain every batch size
// shares. dw, mw: the 16 rows' scales and offsets; dx, sx: the token's.
template <bool kAffine>
inline __m512 ChainStep(__m512 acc, __m512i sum, __m512 dw, __m512 mw, float dx, float sx) {
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc);
  if constexpr (kAffine) acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(sx), acc);
  return acc;
}

inline void StoreRows(float* out, __m512 acc, int64_t n_valid) {
  _mm512_mask_storeu_ps(out, n_valid >= kTileRows ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n_valid) - 1), acc);
}

// ---- Prefill: the tile's quants transposed into lines once, then every
// token takes one vpdpbusd per line against four broadcast activation bytes.

// In place: r[i] lane l becomes r[l] lane i. Recursive block swaps: at
// distance d, rows i and i + d exchange their off-diagonal d x d blocks.
inline void Transpose16(__m512i r[16]) {
  // Index tables per distance d = 8, 4, 2, 1: lo[l] = l & d ? 16 + l - d : l,
  // hi[l] = l & d ? 16 + l : l + d. Constants: built at run time, their
  // scalar stores stalled the vector loads (store forwarding) on every call.
  alignas(64) static constexpr int32_t kIdx[4][2][16] = {
      {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}, {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
      {{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}, {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}},
      {{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}, {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}},
      {{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}, {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}},
  };
  for (int level = 0, d = 8; level < 4; ++level, d /= 2) {
    const __m512i ilo = _mm512_load_si512(kIdx[level][0]), ihi = _mm512_load_si512(kIdx[level][1]);
    for (int i = 0; i < 16; ++i) {
      if (i & d) continue;
      const __m512i a = r[i], b = r[i + d];
      r[i] = _mm512_permutex2var_epi32(a, ilo, b);
      r[i + d] = _mm512_permutex2var_epi32(a, ihi, b);
    }
  }
}

// Byte offsets of the 16 rows of a tile from its first; a last, partial
// tile repeats its last row (its results are dropped).
inline __m512i RowOffsets(int64_t row_bytes, int64_t n_valid, int32_t off[kTileRows]) {
  for (int r = 0; r < kTileRows; ++r) off[r] = static_cast<int32_t>((r < n_valid ? r : n_valid - 1) * row_bytes);
  return _mm512_loadu_si512(off);
}

// Unpacks 16 rows into lines: per 64 elements, the 16 rows' quant registers
// go through a 16 x 16 dword transpose.
template <typename U>
void PrepareTile(const MatmulArgs& a, int64_t row0, int64_t n_valid, RowTile& tile) {
  constexpr int kChunks = static_cast<int>(U::kBlock / 64);
  constexpr int kSubsPerUnit = static_cast<int>(U::kBlock / U::kSub);
  const int64_t n_sub = a.n_in / U::kSub;
  tile.lines.resize(static_cast<size_t>((a.n_in + 63) / 64 * 16));
  tile.d.resize(static_cast<size_t>(n_sub + kSubsPerUnit));
  tile.m.resize(U::kAffine ? static_cast<size_t>(n_sub + kSubsPerUnit) : 0);
  const uint8_t* w = a.w + row0 * a.w_row_bytes;
  int32_t off[kTileRows];
  const __m512i offsets = RowOffsets(a.w_row_bytes, n_valid, off);
  Line* lines = tile.lines.data();
  for (int64_t e = 0, u = 0; e < a.n_in; e += U::kBlock, ++u) {
    // The same unit of the next tile (as in DecodeTile): 16 row streams of
    // a few dozen bytes per unit are more than the hardware prefetcher follows.
    for (int r = 0; r < kTileRows; ++r) {
      for (int64_t b = 0; b < U::kWBytes; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(w + off[r] + kTileRows * a.w_row_bytes + u * U::kWBytes + b),
                     _MM_HINT_T0);
      }
    }
    if constexpr (requires { U::GatherLines(w, offsets, e, a.n_in, lines); }) {
      // The type builds its lines straight from the rows (vpgatherdd of
      // the same 4 bytes of 16 rows): no unpack in row order, no transpose.
      U::GatherLines(w, offsets, e, a.n_in, lines + e / 4);
    } else {
      __m512i q[kChunks][kTileRows];
      for (int r = 0; r < kTileRows; ++r) {
        __m512i unit[kChunks];
        U::UnpackUnit(w + off[r], e, a.n_in, unit);
        for (int c = 0; c < kChunks; ++c) q[c][r] = unit[c];
      }
      for (int c = 0; c < kChunks; ++c) {
        Transpose16(q[c]);
        for (int g = 0; g < 16; ++g) _mm512_store_si512(lines[(e + 64 * c) / 4 + g].b, q[c][g]);
      }
    }
    __m512 dw[kSubsPerUnit], mw[kSubsPerUnit];
    U::UnitScales(w, a.w_row_bytes, offsets, n_valid, e, a.n_in, dw, mw);
    for (int k = 0; k < kSubsPerUnit && e / U::kSub + k < n_sub; ++k) {
      _mm512_store_ps(tile.d[e / U::kSub + k].b, dw[k]);
      if constexpr (U::kAffine) _mm512_store_ps(tile.m[e / U::kSub + k].b, mw[k]);
    }
  }
}

// C tokens (tok0..) against the tile: out[t][row0 .. row0 + n_valid).
template <typename U, int C>
void TileTokens(const MatmulArgs& a, const RowTile& tile, const TokenBlocks& x, int64_t row0, int64_t n_valid,
                int64_t tok0) {
  constexpr int kLines = U::kSub / 4;
  const int64_t n_sub = a.n_in / U::kSub;
  __m512 acc[C];
  const uint8_t* xrow[C];
  for (int c = 0; c < C; ++c) {
    acc[c] = _mm512_setzero_ps();
    xrow[c] = a.x + (tok0 + c) * a.x_stride;
  }
  const Line* lines = tile.lines.data();
  for (int64_t j = 0; j < n_sub; ++j) {
    __m512i w[kLines];
    for (int g = 0; g < kLines; ++g) w[g] = _mm512_load_si512(lines[j * kLines + g].b);
    for (int c = 0; c < C; ++c) {
      const uint8_t* q = XQuantAt<typename U::XBlock>(xrow[c], j * U::kSub);
      const int64_t i = (tok0 + c) * n_sub + j;
      // Two partial sums halve the vpdpbusd dependency chain.
      __m512i s0 = U::kAffine ? _mm512_setzero_si512() : _mm512_set1_epi32(x.bias[i]);
      __m512i s1 = _mm512_setzero_si512();
      for (int g = 0; g < kLines; g += 2) {
        s0 = _mm512_dpbusd_epi32(s0, w[g], _mm512_set1_epi32(static_cast<int>(Load32(q + 4 * g))));
        s1 = _mm512_dpbusd_epi32(s1, w[g + 1], _mm512_set1_epi32(static_cast<int>(Load32(q + 4 * g + 4))));
      }
      acc[c] = ChainStep<U::kAffine>(acc[c], _mm512_add_epi32(s0, s1), _mm512_load_ps(tile.d[j].b),
                                     U::kAffine ? _mm512_load_ps(tile.m[j].b) : _mm512_setzero_ps(), x.d[i],
                                     U::kAffine ? x.s[i] : 0.0f);
    }
  }
  for (int c = 0; c < C; ++c) StoreRows(a.out + (tok0 + c) * a.ldo + row0, acc[c], n_valid);
}

// ---- Decode: one token, row-major weights. Per 64 elements, one vpdpbusd
// per row gives 16 partial sums of 4 elements; a reduction across the 16
// rows' registers turns them into, per sub-block, one register of 16 row sums.

// Sum of lanes 2k and 2k + 1 of a and b: lanes 0-7 from a, 8-15 from b.
inline __m512i PairSums(__m512i a, __m512i b) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_add_epi32(_mm512_permutex2var_epi32(a, even, b), _mm512_permutex2var_epi32(a, odd, b));
}

// p[r] (16 rows): lane l holds elements 4l..4l+3 of a 64-element chunk.
// Writes the chunk's 64 / kSub sub-block sums, each with row r in lane r.
template <int kSub>
inline void ReduceChunk(__m512i p[16], __m512i* sums) {
  __m512i e[8], f[4];
  for (int i = 0; i < 8; ++i) e[i] = PairSums(p[2 * i], p[2 * i + 1]);  // rows 2i, 2i+1: 8 sums of 8
  for (int i = 0; i < 4; ++i) f[i] = PairSums(e[2 * i], e[2 * i + 1]);  // rows 4i..4i+3: 4 sums of 16
  if constexpr (kSub == 32) {
    const __m512i g0 = PairSums(f[0], f[1]), g1 = PairSums(f[2], f[3]);  // rows 8i..8i+7: 2 sums of 32
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    sums[0] = _mm512_permutex2var_epi32(g0, even, g1);
    sums[1] = _mm512_permutex2var_epi32(g0, odd, g1);
  } else {
    static_assert(kSub == 16);
    // f[i] lane 4 * (r - 4i) + k: row r, sub-block k. Gather per k.
    const __m512i k01 = _mm512_set_epi32(29, 25, 21, 17, 13, 9, 5, 1, 28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i k23 = _mm512_set_epi32(31, 27, 23, 19, 15, 11, 7, 3, 30, 26, 22, 18, 14, 10, 6, 2);
    const __m512i lo = _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i hi = _mm512_set_epi32(31, 30, 29, 28, 27, 26, 25, 24, 15, 14, 13, 12, 11, 10, 9, 8);
    const __m512i a01 = _mm512_permutex2var_epi32(f[0], k01, f[1]);  // rows 0-7: k0 | k1
    const __m512i b01 = _mm512_permutex2var_epi32(f[2], k01, f[3]);  // rows 8-15: k0 | k1
    const __m512i a23 = _mm512_permutex2var_epi32(f[0], k23, f[1]);
    const __m512i b23 = _mm512_permutex2var_epi32(f[2], k23, f[3]);
    sums[0] = _mm512_permutex2var_epi32(a01, lo, b01);
    sums[1] = _mm512_permutex2var_epi32(a01, hi, b01);
    sums[2] = _mm512_permutex2var_epi32(a23, lo, b23);
    sums[3] = _mm512_permutex2var_epi32(a23, hi, b23);
  }
}

template <typename U>
void DecodeTile(const MatmulArgs& a, const TokenBlocks& x, int64_t row0, int64_t n_valid) {
  constexpr int kChunks = static_cast<int>(U::kBlock / 64);
  constexpr int kPerChunk = 64 / U::kSub;
  const uint8_t* w = a.w + row0 * a.w_row_bytes;
  const int64_t n_sub = a.n_in / U::kSub;
  int32_t off[kTileRows];
  const __m512i offsets = RowOffsets(a.w_row_bytes, n_valid, off);
  __m512 acc = _mm512_setzero_ps();
  __m512i p[kChunks][kTileRows];
  for (int64_t e = 0, unit = 0; e < a.n_in; e += U::kBlock, ++unit) {
    // The unit's activation quants; 32-element blocks keep their scale
    // between them, and an odd last block leaves the upper half zero.
    __m512i xq[kChunks];
    if constexpr (std::is_same_v<typename U::XBlock, BlockQ8_K>) {
      for (int c = 0; c < kChunks; ++c) xq[c] = _mm512_loadu_si512(XQuantAt<BlockQ8_K>(a.x, e + 64 * c));
    } else {
      const __m256i lo = Load256(XQuantAt<typename U::XBlock>(a.x, e));
      xq[0] = e + 64 <= a.n_in ? Join(lo, Load256(XQuantAt<typename U::XBlock>(a.x, e + 32)))
                               : _mm512_zextsi256_si512(lo);
    }
    for (int r = 0; r < kTileRows; ++r) {
      const uint8_t* row = w + off[r];
      // The same unit of the next tile, so decode does not wait on DRAM. A
      // prefetch past the matrix is harmless: it never faults.
      for (int64_t b = 0; b < U::kWBytes; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(row + kTileRows * a.w_row_bytes + unit * U::kWBytes + b), _MM_HINT_T0);
      }
      __m512i q[kChunks];
      U::UnpackUnit(row, e, a.n_in, q);
      for (int c = 0; c < kChunks; ++c) p[c][r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[c], xq[c]);
    }
    __m512 dw[kChunks * kPerChunk], mw[kChunks * kPerChunk];
    U::UnitScales(w, a.w_row_bytes, offsets, n_valid, e, a.n_in, dw, mw);
    for (int c = 0; c < kChunks; ++c) {
      __m512i sums[kPerChunk];
      ReduceChunk<U::kSub>(p[c], sums);
      for (int k = 0; k < kPerChunk; ++k) {
        const int64_t j = (e + 64 * c) / U::kSub + k;
        if (j >= n_sub) break;
        const __m512i sum = U::kAffine ? sums[k] : _mm512_add_epi32(sums[k], _mm512_set1_epi32(x.bias[j]));
        acc = ChainStep<U::kAffine>(acc, sum, dw[c * kPerChunk + k], mw[c * kPerChunk + k], x.d[j],
                                    U::kAffine ? x.s[j] : 0.0f);
      }
    }
  }
  StoreRows(a.out + row0, acc, n_valid);
}

// Calls fn(std::integral_constant<int, C>{}, t) over the tokens in groups
// of C = 4 from t = 0, then once for the 1-3 left.
template <typename Fn>
inline void ForTokenGroups(int64_t n_tokens, Fn&& fn) {
  int64_t t = 0;
  for (; t + 4 <= n_tokens; t += 4) fn(std::integral_constant<int, 4>{}, t);
  switch (n_tokens - t) {
    case 3: fn(std::integral_constant<int, 3>{}, t); break;
    case 2: fn(std::integral_constant<int, 2>{}, t); break;
    case 1: fn(std::integral_constant<int, 1>{}, t); break;
    default: break;
  }
}

// Rows [row_begin, row_end) for n_tokens tokens, in tiles of 16 rows.
template <typename U>
void MatmulTiles(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  thread_local RowTile tile;
  thread_local TokenBlocks x;
  PrepareTokenBlocks<U>(a, n_tokens, x);
  for (int64_t r = row_begin; r < row_end; r += kTileRows) {
    const int64_t n_valid = row_end - r < kTileRows ? row_end - r : kTileRows;
    if (n_tokens == 1) {
      DecodeTile<U>(a, x, r, n_valid);
      continue;
    }
    PrepareTile<U>(a, r, n_valid, tile);
    ForTokenGroups(n_tokens, [&](auto c, int64_t t) { TileTokens<U, decltype(c)::value>(a, tile, x, r, n_valid, t); });
  }
}

// ---- Weights packed once at load (Q4_0, Q4_1, Q8_0; a type opts in with
// kPackedBits). Per tile of 16 rows and per block, a record: the qs dwords
// of the 16 rows as gathered - four for the 4-bit types (lines g and g + 4
// are their low and high nibbles), eight for Q8_0 (signed; the line is the
// dword biased to unsigned) - then the 16 rows' d as f16, then (affine) their
// m. The same bytes as the GGUF blocks, so the same size, read as one
// sequential stream; and the lines and scales come out exactly as
// PrepareTile / UnitScales make them, so results are bit-identical to the
// unpacked tiles.
template <typename U>
struct Packed {
  static constexpr int kDwords = U::kPackedBits == 4 ? 4 : 8;
  static constexpr int64_t kScalesAt = 64 * kDwords;
  static constexpr int64_t kRecord = kScalesAt + 32 + (U::kAffine ? 32 : 0);
  static int64_t TileBytes(int64_t n_in) { return n_in / kQK * kRecord; }
  static int64_t Bytes(int64_t n_rows, int64_t n_in) { return (n_rows + kTileRows - 1) / kTileRows * TileBytes(n_in); }
};

template <typename U, typename BlockW>
void PackRows(uint8_t* dst, const uint8_t* w, int64_t n_rows, int64_t n_in, int64_t row_bytes) {
  const int64_t n_blocks = n_in / kQK;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kTileRows) {
    int32_t off[kTileRows];
    const __m512i offsets = RowOffsets(row_bytes, std::min<int64_t>(kTileRows, n_rows - r0), off);
    const uint8_t* tile_w = w + r0 * row_bytes;
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint8_t* rec = dst + b * Packed<U>::kRecord;
      const uint8_t* blk = tile_w + b * sizeof(BlockW);
      for (int g = 0; g < Packed<U>::kDwords; ++g) {
        _mm512_storeu_si512(rec + 64 * g, _mm512_i32gather_epi32(offsets, blk + offsetof(BlockW, qs) + 4 * g, 1));
      }
      const __m512i dm = _mm512_i32gather_epi32(offsets, blk, 1);  // d, then m for affine types
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(rec + Packed<U>::kScalesAt), _mm512_cvtepi32_epi16(dm));
      if constexpr (U::kAffine) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(rec + Packed<U>::kScalesAt + 32),
                            _mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
      }
    }
    dst += Packed<U>::TileBytes(n_in);
  }
}

// A record's 8 lines of unsigned quants, as PrepareTile makes them.
template <typename U>
inline void RecordLines(const uint8_t* rec, __m512i w[8]) {
  if constexpr (U::kPackedBits == 4) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int g = 0; g < 4; ++g) {
      const __m512i v = _mm512_loadu_si512(rec + 64 * g);
      w[g] = _mm512_and_si512(v, low4);
      w[g + 4] = _mm512_and_si512(_mm512_srli_epi32(v, 4), low4);
    }
  } else {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int g = 0; g < 8; ++g) w[g] = _mm512_xor_si512(_mm512_loadu_si512(rec + 64 * g), bias);
  }
}
template <typename U>
inline __m512 RecordScales(const uint8_t* rec, int which) {  // 0: d, 1: m
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + Packed<U>::kScalesAt + 32 * which)));
}

// C tokens against one packed tile; rows [lo, hi) of the tile are stored.
template <typename U, int C>
void PackedTokens(const MatmulArgs& a, const uint8_t* tile, const TokenBlocks& x, int64_t row0, int lo, int hi,
                  int64_t tok0) {
  const int64_t n_blocks = a.n_in / kQK;
  __m512 acc[C];
  const uint8_t* xrow[C];
  for (int c = 0; c < C; ++c) {
    acc[c] = _mm512_setzero_ps();
    xrow[c] = a.x + (tok0 + c) * a.x_stride;
  }
  for (int64_t j = 0; j < n_blocks; ++j) {
    const uint8_t* rec = tile + j * Packed<U>::kRecord;
    // The next tile's record, as DecodeTile fetches ahead.
    for (int b = 0; b < Packed<U>::kRecord; b += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(rec + Packed<U>::TileBytes(a.n_in) + b), _MM_HINT_T0);
    }
    __m512i w[8];
    RecordLines<U>(rec, w);
    const __m512 dw = RecordScales<U>(rec, 0);
    const __m512 mw = U::kAffine ? RecordScales<U>(rec, 1) : _mm512_setzero_ps();
    for (int c = 0; c < C; ++c) {
      const uint8_t* q = XQuantAt<typename U::XBlock>(xrow[c], j * kQK);
      const int64_t i = (tok0 + c) * n_blocks + j;
      __m512i s0 = U::kAffine ? _mm512_setzero_si512() : _mm512_set1_epi32(x.bias[i]);
      __m512i s1 = _mm512_setzero_si512();
      for (int g = 0; g < 8; g += 2) {
        s0 = _mm512_dpbusd_epi32(s0, w[g], _mm512_set1_epi32(static_cast<int>(Load32(q + 4 * g))));
        s1 = _mm512_dpbusd_epi32(s1, w[g + 1], _mm512_set1_epi32(static_cast<int>(Load32(q + 4 * g + 4))));
      }
      acc[c] = ChainStep<U::kAffine>(acc[c], _mm512_add_epi32(s0, s1), dw, mw, x.d[i], U::kAffine ? x.s[i] : 0.0f);
    }
  }
  const __mmask16 keep = static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
  for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(a.out + (tok0 + c) * a.ldo + row0, keep, acc[c]);
}

// A packed tile unpacked into lines and float scales once, for a long
// prefill whose token groups would otherwise each unpack it again.
template <typename U>
void UnpackPackedTile(const uint8_t* tile, int64_t n_in, RowTile& rt) {
  const int64_t n_blocks = n_in / kQK;
  rt.lines.resize(static_cast<size_t>(n_blocks * 8));
  rt.d.resize(static_cast<size_t>(n_blocks));
  rt.m.resize(U::kAffine ? static_cast<size_t>(n_blocks) : 0);
  for (int64_t j = 0; j < n_blocks; ++j) {
    const uint8_t* rec = tile + j * Packed<U>::kRecord;
    __m512i w[8];
    RecordLines<U>(rec, w);
    for (int g = 0; g < 8; ++g) _mm512_store_si512(rt.lines[j * 8 + g].b, w[g]);
    _mm512_store_ps(rt.d[j].b, RecordScales<U>(rec, 0));
    if constexpr (U::kAffine) _mm512_store_ps(rt.m[j].b, RecordScales<U>(rec, 1));
  }
}

// Rows [row_begin, row_end) of a packed matrix for n_tokens tokens, whose
// blocks are already in x.
template <typename U>
void PackedRows(const MatmulArgs& a, const TokenBlocks& x, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  thread_local RowTile rt;
  for (int64_t r0 = row_begin / kTileRows * kTileRows; r0 < row_end; r0 += kTileRows) {
    const uint8_t* tile = a.w + r0 / kTileRows * Packed<U>::TileBytes(a.n_in);
    const int lo = static_cast<int>(std::max<int64_t>(row_begin - r0, 0));
    const int hi = static_cast<int>(std::min<int64_t>(row_end - r0, kTileRows));
    if (n_tokens >= 32 && lo == 0) {
      // Long prefill: unpack once, then every token group reads the lines.
      UnpackPackedTile<U>(tile, a.n_in, rt);
      ForTokenGroups(n_tokens, [&](auto c, int64_t t) { TileTokens<U, decltype(c)::value>(a, rt, x, r0, hi, t); });
      continue;
    }
    ForTokenGroups(n_tokens,
                   [&](auto c, int64_t t) { PackedTokens<U, decltype(c)::value>(a, tile, x, r0, lo, hi, t); });
  }
}

// Rows [row_begin, row_end) of a packed matrix for n_tokens tokens.
template <typename U>
void MatmulPacked(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  thread_local TokenBlocks x;
  PrepareTokenBlocks<U>(a, n_tokens, x);
  PackedRows<U>(a, x, n_tokens, row_begin, row_end);
}

// What a thread's prepared activations were made from. A claimed call the
// caller marks as over the same activations keeps them when this matches
// too (same bytes, rows and partner type: the same preparation).
struct PreparedFrom {
  const uint8_t* x = nullptr;
  int64_t x_stride = 0, n_in = 0, n_tokens = 0;
  DType partner = DType::kF32;
  // Whether x needs preparing for this call; if so, records it as prepared.
  bool Stale(const MatmulArgs& a, int64_t rows, bool same_x) {
    const PreparedFrom now{a.x, a.x_stride, a.n_in, rows, DotPartner(a.wtype)};
    const bool stale = !same_x || now.x != x || now.x_stride != x_stride || now.n_in != n_in ||
                       now.n_tokens != n_tokens || now.partner != partner;
    *this = now;
    return stale;
  }
};

// All n_rows rows, this thread's share taken from claims.
template <typename U>
void MatmulPackedClaimed(const MatmulArgs& a, int64_t n_tokens, int64_t n_rows, WorkClaims& claims, bool same_x) {
  thread_local TokenBlocks x;
  thread_local PreparedFrom from;
  if (from.Stale(a, n_tokens, same_x)) PrepareTokenBlocks<U>(a, n_tokens, x);
  for (WorkClaims::Range r = claims.Next(); !r.empty(); r = claims.Next()) {
    PackedRows<U>(a, x, n_tokens, r.begin * kTileRows, std::min(r.end * kTileRows, n_rows));
  }
}

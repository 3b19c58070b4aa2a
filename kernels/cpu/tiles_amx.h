// Internal part of quant_avx512.cc (included after tiles_avx512.h and the
// packed types): the packed matmul on AMX tiles, for batches of tokens.
//
// Why. With 16 or more tokens a step is bound by the int8 dot products:
// vpdpbusd does 64 multiply-adds per instruction, one AMX tile multiply
// (tdpbusd) 16 x 16 x 32 = 8,192. What is left per (16 rows, token, block)
// is the float chain every batch size shares (tiles_avx512.h): convert,
// scale, fma.
//
// Bit-identical to the vpdpbusd tiles. Per block and token, the chain needs
// the exact int32 I = sum over the block of w * a, with w the weight's
// integer quant (q - kBias for biased types) and a the token's int8 quant.
// AMX multiplies signed or unsigned bytes on either side, so the tokens are
// A as they are (signed) and the weights B as they are: Q4_1's unsigned
// nibbles (tdpbsud), Q4_0's q - 8 and Q8_0's own quants (tdpbssd). C starts
// at zero and ends as I itself, the same int32 the vpdpbusd tiles form, and
// the chain after it is the same floats in the same order.
//
// Layouts. B of a 16-row tile and a block is exactly the packed record's
// eight lines (line g: dword g of rows 0..15, the VNNI layout AMX reads),
// so C comes out as one register per token with row r in lane r, the shape
// the chain runs on. A is 16 tokens x the block's 32 quants.
#pragma once

constexpr int kAmxTokens = 16;      // A rows: tokens per tile multiply
constexpr int kAmxAhead = 3;       // blocks multiplied ahead of the float chain
constexpr int kAmxMinTokens = 12;   // below, vpdpbusd is faster (8 tokens: 35 vs 43 us, 1536 x 576 Q4_1)

// Tile registers: tmm0 C (16 tokens x 16 rows, int32), tmm1 A (16 tokens
// x 32 bytes), tmm2 B (8 dwords x 16 rows); tmm3-5 a second set, so one
// block's multiply overlaps the previous block's chain. (The intrinsics
// take the register numbers as literals.)

struct alignas(64) AmxPalette {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tile configuration is per thread; it stays loaded until the thread ends.
inline void ConfigureAmxTiles() {
  thread_local bool configured = false;
  if (configured) return;
  AmxPalette p;
  for (int set : {0, 3}) {
    p.rows[set + 0] = kAmxTokens;
    p.colsb[set + 0] = 64;
    p.rows[set + 1] = kAmxTokens;
    p.colsb[set + 1] = kQK;
    p.rows[set + 2] = kQK / 4;
    p.colsb[set + 2] = 64;
  }
  // GCC does not count ldtilecfg as a read of the palette and may drop the
  // stores above as dead: inlined into another caller it did, leaving every
  // tile unconfigured (SIGILL at the first tile instruction). The empty asm
  // makes the palette's memory used.
  asm volatile("" : : "r"(&p) : "memory");
  _tile_loadconfig(&p);
  configured = true;
}

// The tokens as AMX wants them, in one pass over their blocks: the quants
// as A tiles, [token group][block] -> 16 tokens x 32 bytes (eight Lines);
// and their scales dx (and, affine, s = dx * sum) by
// [group][block][token], so the chain reads a group's sixteen at constant
// offsets. The same floats PrepareTokenBlocks takes (the activation
// block's f16 fields); AMX needs no bias term. Padding tokens past the end
// of the last group are zeros; their results are never stored.
struct AmxTokenTiles {
  std::vector<Line> a;          // [n_groups * n_blocks * 8]
  std::vector<float> d, s;      // [n_groups * n_blocks * 16] (s: affine types)
};

template <typename U>
void PrepareAmxTokens(const MatmulArgs& a, int64_t n_tokens, AmxTokenTiles& x) {
  using BlockX = typename U::XBlock;
  const int64_t n_blocks = a.n_in / kQK;
  const int64_t n_groups = (n_tokens + kAmxTokens - 1) / kAmxTokens;
  x.a.resize(static_cast<size_t>(n_groups * n_blocks * 8));
  x.d.assign(static_cast<size_t>(n_groups * n_blocks * kAmxTokens), 0.0f);
  x.s.assign(U::kAffine ? x.d.size() : 0, 0.0f);
  for (int64_t t = 0; t < n_groups * kAmxTokens; ++t) {
    const int64_t g = t / kAmxTokens, c = t % kAmxTokens;
    const auto* blocks = reinterpret_cast<const BlockX*>(a.x + t * a.x_stride);
    for (int64_t j = 0; j < n_blocks; ++j) {
      auto* dst = reinterpret_cast<__m256i*>(x.a[static_cast<size_t>((g * n_blocks + j) * 8)].b + 32 * c);
      if (t >= n_tokens) {
        _mm256_store_si256(dst, _mm256_setzero_si256());
        continue;
      }
      _mm256_store_si256(dst, Load256(blocks[j].qs));
      const size_t at = static_cast<size_t>((g * n_blocks + j) * kAmxTokens + c);
      x.d[at] = F16(&blocks[j].d);
      if constexpr (U::kAffine) x.s[at] = F16(&blocks[j].s);  // Q8_1 stores d * sum
    }
  }
}

// One packed 16-row tile made ready for AMX: per block its B (the
// record's lines as the weights' integer quants) and the scales. Q8_0's
// records hold its signed quants, so its B is read in place; 4-bit types
// unpack their nibbles (Q4_0's less its bias of 8).
//
// A long row (over 3 * kAmxChunk blocks) of a 4-bit type with one group
// of tokens (decode) is made ready kAmxChunk blocks at a time, into a ring
// of two chunks, as the multiplies reach them. Whole, the B lines of a
// 1,536-long row (24 KiB) and the tokens' A tiles (24 KiB) overflowed L1,
// and the multiply ran 17% slower per block than at 768; with the ring,
// 1,536 and 2,304 run as fast as 768 (matmul_bench, the same work at each
// length). Several token groups (prefill) share one whole preparation.
constexpr int64_t kAmxChunk = 8;
static_assert(kAmxChunk > kAmxAhead, "a chunk is made ready before the multiplies ahead of the chain reach it");
struct AmxRowTile {
  std::vector<Line> b;        // B of the blocks made ready (4-bit types)
  const uint8_t* b_base;      // block j's B: 8 lines, 64 bytes apart, at b_base + Slot(j) * b_step
  int64_t b_step;
  std::vector<Line> d, m;     // per slot: f32 per row (m: affine types)
  int64_t ring = 0;           // 0: every block has its slot; else slots in turn, block j at j % ring
  const uint8_t* tile = nullptr;  // the packed tile, for the chunks still to make ready
  int64_t Slot(int64_t j) const { return ring == 0 ? j : j % ring; }
  const Line* B(int64_t j) const { return reinterpret_cast<const Line*>(b_base + Slot(j) * b_step); }
};

// Whether a type's B bytes are signed (tdpbssd) or unsigned (tdpbsud).
template <typename U>
constexpr bool kAmxSignedB = U::kPackedBits == 8 || U::kBias != 0;

// Makes blocks [j0, j1) of rt's tile ready, into their slots.
template <typename U>
void PrepareAmxBlocks(AmxRowTile& rt, int64_t j0, int64_t j1) {
  constexpr bool kInPlace = U::kPackedBits == 8;
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(U::kBias));
  for (int64_t j = j0; j < j1; ++j) {
    const uint8_t* rec = rt.tile + j * Packed<U>::kRecord;
    const size_t slot = static_cast<size_t>(rt.Slot(j));
    if constexpr (!kInPlace) {
      __m512i w[8];
      RecordLines<U>(rec, w);
      for (int g = 0; g < 8; ++g) {
        _mm512_store_si512(rt.b[slot * 8 + g].b, U::kBias != 0 ? _mm512_sub_epi8(w[g], bias) : w[g]);
      }
    }
    _mm512_store_ps(rt.d[slot].b, RecordScales<U>(rec, 0));
    if constexpr (U::kAffine) _mm512_store_ps(rt.m[slot].b, RecordScales<U>(rec, 1));
  }
}

// The tile made ready for n_tokens tokens: whole, or its first chunk.
template <typename U>
void PrepareAmxRowTile(const uint8_t* tile, int64_t n_in, int64_t n_tokens, AmxRowTile& rt) {
  constexpr bool kInPlace = U::kPackedBits == 8;
  const int64_t n_blocks = n_in / kQK;
  rt.tile = tile;
  rt.ring = !kInPlace && n_tokens <= kAmxTokens && n_blocks > 3 * kAmxChunk ? 2 * kAmxChunk : 0;
  const int64_t slots = rt.ring == 0 ? n_blocks : rt.ring;
  if constexpr (kInPlace) {
    rt.b_base = tile;
    rt.b_step = Packed<U>::kRecord;
  } else {
    rt.b.resize(static_cast<size_t>(slots * 8));
    rt.b_base = rt.b[0].b;
    rt.b_step = 8 * sizeof(Line);
  }
  rt.d.resize(static_cast<size_t>(slots));
  rt.m.resize(U::kAffine ? static_cast<size_t>(slots) : 0);
  PrepareAmxBlocks<U>(rt, 0, rt.ring == 0 ? n_blocks : kAmxChunk);
}

// Block j's tile multiply into C set `set` (0 or 3), stored to c_out.
template <bool kSignedB>
inline void AmxBlock(int set, const Line* a_tile, const Line* b_tile, int32_t* c_out) {
  if (set == 0) {
    _tile_zero(0);
    _tile_loadd(1, a_tile, kQK);
    _tile_loadd(2, b_tile, 64);
    if constexpr (kSignedB) {
      _tile_dpbssd(0, 1, 2);
    } else {
      _tile_dpbsud(0, 1, 2);
    }
    _tile_stored(0, c_out, 64);
  } else {
    _tile_zero(3);
    _tile_loadd(4, a_tile, kQK);
    _tile_loadd(5, b_tile, 64);
    if constexpr (kSignedB) {
      _tile_dpbssd(3, 4, 5);
    } else {
      _tile_dpbsud(3, 4, 5);
    }
    _tile_stored(3, c_out, 64);
  }
}

// C tokens (tok0.., C a multiple of 4, at most 16) against one prepared row
// tile; rows [lo, hi) of the tile and tokens below n_tokens are stored.
template <typename U, int C>
void AmxTokens(const MatmulArgs& a, AmxRowTile& rt, const Line* a_tiles, const float* xd, const float* xs,
               int64_t row0, int lo, int hi, int64_t tok0, int64_t n_tokens, const uint8_t* next_tile) {
  const int64_t n_blocks = a.n_in / kQK;
  // A ring of C buffers, kAmxAhead blocks ahead of the chain: a tile store
  // reaches the chain's loads only once it retires, so the multiply of a
  // block is issued a few blocks before its chain step.
  alignas(64) int32_t c_buf[kAmxAhead + 1][kAmxTokens * 16];
  // Fully unrolled, so that acc stays in registers (a rolled loop keeps
  // the array on the stack: a store per token and block).
  __m512 acc[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < kAmxAhead && j < n_blocks; ++j) {
    AmxBlock<kAmxSignedB<U>>(j % 2 == 0 ? 0 : 3, a_tiles + j * 8, rt.B(j), c_buf[j]);
  }
  for (int64_t j = 0; j < n_blocks; ++j) {
    // The next tile's record j: its preparation would otherwise wait on
    // memory (a prefetch past the matrix is harmless). Into L2, not L1: a
    // core has ~16 L1 fill buffers but ~48 L2 misses in flight, and with
    // DRAM shared (this VM) the L1 buffers capped what one thread streamed.
    if (next_tile != nullptr) {
      for (int b = 0; b < Packed<U>::kRecord; b += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(next_tile + j * Packed<U>::kRecord + b), _MM_HINT_T1);
      }
    }
    const int32_t* sums = c_buf[j % (kAmxAhead + 1)];
    const size_t slot = static_cast<size_t>(rt.Slot(j));
    const __m512 dw = _mm512_load_ps(rt.d[slot].b);
    const __m512 mw = U::kAffine ? _mm512_load_ps(rt.m[slot].b) : _mm512_setzero_ps();
    const float* dx = xd + j * kAmxTokens;  // the tokens' scales at constant offsets: no pointer per token
    const float* sx = U::kAffine ? xs + j * kAmxTokens : nullptr;
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      acc[c] = ChainStep<U::kAffine>(acc[c], _mm512_load_si512(sums + 16 * c), dw, mw, dx[c], U::kAffine ? sx[c] : 0.0f);
    }
    // The multiply kAmxAhead blocks on, issued after this block's chain:
    // its tile store then waits behind the chain's loads, not before them.
    const int64_t ahead = j + kAmxAhead;
    // A ring's next chunk, over the one two chunks back: the chain is past
    // it, and so are its multiplies.
    if (rt.ring != 0 && ahead % kAmxChunk == 0 && ahead < n_blocks) {
      PrepareAmxBlocks<U>(rt, ahead, std::min(ahead + kAmxChunk, n_blocks));
    }
    if (ahead < n_blocks) {
      AmxBlock<kAmxSignedB<U>>(ahead % 2 == 0 ? 0 : 3, a_tiles + ahead * 8, rt.B(ahead), c_buf[ahead % (kAmxAhead + 1)]);
    }
  }
  const __mmask16 keep = static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    if (tok0 + c < n_tokens) _mm512_mask_storeu_ps(a.out + (tok0 + c) * a.ldo + row0, keep, acc[c]);
  }
}

// One prepared row tile (rows r0 + [lo, hi)) for every token group. next:
// the tile this thread multiplies after it, fetched during the first group
// (null: none).
template <typename U>
void AmxTileTokens(const MatmulArgs& a, const AmxTokenTiles& x, AmxRowTile& rt, int64_t n_tokens, int64_t r0,
                   int lo, int hi, const uint8_t* next) {
  const int64_t n_blocks = a.n_in / kQK;
  for (int64_t t = 0; t < n_tokens; t += kAmxTokens) {
    const Line* group = x.a.data() + t / kAmxTokens * n_blocks * 8;
    const float* gd = x.d.data() + t / kAmxTokens * n_blocks * kAmxTokens;
    const float* gs = U::kAffine ? x.s.data() + t / kAmxTokens * n_blocks * kAmxTokens : nullptr;
    const uint8_t* fetch = t == 0 ? next : nullptr;
    switch ((std::min<int64_t>(n_tokens - t, kAmxTokens) + 3) / 4) {
      case 1: AmxTokens<U, 4>(a, rt, group, gd, gs, r0, lo, hi, t, n_tokens, fetch); break;
      case 2: AmxTokens<U, 8>(a, rt, group, gd, gs, r0, lo, hi, t, n_tokens, fetch); break;
      case 3: AmxTokens<U, 12>(a, rt, group, gd, gs, r0, lo, hi, t, n_tokens, fetch); break;
      default: AmxTokens<U, 16>(a, rt, group, gd, gs, r0, lo, hi, t, n_tokens, fetch); break;
    }
  }
}

template <typename U>
const uint8_t* PackedTile(const MatmulArgs& a, int64_t tile) {
  return a.w + tile * Packed<U>::TileBytes(a.n_in);
}

// Rows [row_begin, row_end) of a packed matrix for n_tokens tokens; small
// batches stay on the vpdpbusd tiles (the same results, bit for bit).
template <typename U>
void MatmulPackedAmx(const MatmulArgs& a, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  if (n_tokens < kAmxMinTokens) return MatmulPacked<U>(a, n_tokens, row_begin, row_end);
  ConfigureAmxTiles();
  thread_local AmxTokenTiles x;
  thread_local AmxRowTile rt;
  PrepareAmxTokens<U>(a, n_tokens, x);
  for (int64_t r0 = row_begin / kTileRows * kTileRows; r0 < row_end; r0 += kTileRows) {
    const int lo = static_cast<int>(std::max<int64_t>(row_begin - r0, 0));
    const int hi = static_cast<int>(std::min<int64_t>(row_end - r0, kTileRows));
    PrepareAmxRowTile<U>(PackedTile<U>(a, r0 / kTileRows), a.n_in, n_tokens, rt);
    // The next tile in memory: a prefetch past the matrix is harmless.
    AmxTileTokens<U>(a, x, rt, n_tokens, r0, lo, hi, PackedTile<U>(a, r0 / kTileRows + 1));
  }
}

// All n_rows rows, this thread's share taken from claims. A thread claims
// its next chunk as it starts the last tile of the current one, so that
// chunk's first tile is fetched while this one multiplies.
template <typename U>
void MatmulPackedAmxClaimed(const MatmulArgs& a, int64_t n_tokens, int64_t n_rows, WorkClaims& claims,
                            bool same_x) {
  if (n_tokens < kAmxMinTokens) return MatmulPackedClaimed<U>(a, n_tokens, n_rows, claims, same_x);
  ConfigureAmxTiles();
  thread_local AmxTokenTiles x;
  thread_local PreparedFrom from;
  thread_local AmxRowTile rt;
  if (from.Stale(a, n_tokens, same_x)) PrepareAmxTokens<U>(a, n_tokens, x);
  for (WorkClaims::Range cur = claims.Next(), next; !cur.empty(); cur = next) {
    next = {};
    for (int64_t i = cur.begin; i < cur.end; ++i) {
      if (i + 1 == cur.end) next = claims.Next();
      const int64_t after = i + 1 < cur.end ? i + 1 : next.begin;
      const int64_t r0 = i * kTileRows;
      PrepareAmxRowTile<U>(PackedTile<U>(a, i), a.n_in, n_tokens, rt);
      AmxTileTokens<U>(a, x, rt, n_tokens, r0, 0, static_cast<int>(std::min<int64_t>(n_rows - r0, kTileRows)),
                       i + 1 < cur.end || !next.empty() ? PackedTile<U>(a, after) : nullptr);
    }
  }
}

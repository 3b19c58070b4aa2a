// Whether AMX tile instructions overlap AVX-512 float arithmetic on this
// core. The 16-token matmul (kernels/cpu/tiles_amx.h) runs both per block:
// a tile multiply, its loads and store, then the float chain (convert,
// scale, two fmas per token). If they overlapped, a block would cost the
// larger of the two; measured, it costs their sum.
//
//   build/bench/amx_overlap_bench
//
// Each iteration does one unit of each kind of work the benchmark names:
//   Tile       one tdpbsud (16 x 16 x 32), alternating between two C tiles
//   TileLoads  the two tile loads of a block (A: 16 x 32 B, B: 8 x 64 B)
//   TileStore  the store of one C tile (16 x 64 B)
//   Fma        32 independent 512-bit fmas (a 16-token chain step's count)
//   Scalar     48 dependent-free integer ops, no vector or memory work
// and the pairs run both in one loop. 2026-11-29, this VM: Tile 4.6 ns,
// Fma 4.4, Tile+Fma 9.0 (the sum); TileLoads 3.6, TileLoads+Fma 8.8;
// TileStore 4.4, TileStore+Fma 10.2; but Tile+Scalar 4.6 (the larger of
// 4.6 and 4.2). A whole block's tile work 8.8, with the fmas 14.0. So the
// tile unit holds the vector ports: what tiles_amx.h saves must come off
// the sum of its tile instructions and its float chain.
// Skipped where the CPU or the OS gives no AMX.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace {

enum Work : int { kTile = 1, kTileLoads = 2, kTileStore = 4, kFma = 8, kScalar = 16 };

alignas(64) int8_t g_a[16 * 32];
alignas(64) int8_t g_b[8 * 64];
alignas(64) int32_t g_c[2][16 * 16];

bool ConfigureTiles() {
  if (atrium::kernels::CpuFor(atrium::kernels::Isa::kAmx) == nullptr) return false;  // also asks the OS
  // The 64-byte tile configuration (palette 1): bytes per row of tile i at
  // 16 + 2i, rows at 48 + i. Tiles 0-2 and 3-5: C 16 x 64 B, A 16 x 32 B,
  // B 8 x 64 B, as kernels/cpu/tiles_amx.h configures them.
  alignas(64) uint8_t config[64] = {1};
  const int shape[3][2] = {{16, 64}, {16, 32}, {8, 64}};  // rows, bytes per row
  for (int tile = 0; tile < 6; ++tile) {
    config[16 + 2 * tile] = static_cast<uint8_t>(shape[tile % 3][1]);
    config[48 + tile] = static_cast<uint8_t>(shape[tile % 3][0]);
  }
  asm volatile("" : : "r"(config) : "memory");
  _tile_loadconfig(config);
  std::memset(g_a, 1, sizeof(g_a));
  std::memset(g_b, 1, sizeof(g_b));
  _tile_loadd(1, g_a, 32);
  _tile_loadd(2, g_b, 64);
  _tile_loadd(4, g_a, 32);
  _tile_loadd(5, g_b, 64);
  _tile_zero(0);
  _tile_zero(3);
  return true;
}

template <int kWork>
void Run(benchmark::State& state) {
  if (!ConfigureTiles()) {
    state.SkipWithError("no AMX here");
    return;
  }
  __m512 v[8];
  for (int k = 0; k < 8; ++k) v[k] = _mm512_set1_ps(1.0f + static_cast<float>(k));
  const __m512 m = _mm512_set1_ps(0.999f), add = _mm512_set1_ps(1e-3f);
  uint64_t s0 = 1, s1 = 2, s2 = 3;
  int64_t i = 0;
  for (auto _ : state) {
    const bool odd = (i++ & 1) != 0;
    if constexpr ((kWork & kTileLoads) != 0) {
      if (odd) {
        _tile_loadd(4, g_a, 32);
        _tile_loadd(5, g_b, 64);
      } else {
        _tile_loadd(1, g_a, 32);
        _tile_loadd(2, g_b, 64);
      }
    }
    if constexpr ((kWork & kTile) != 0) {
      if (odd) {
        _tile_dpbsud(3, 4, 5);
      } else {
        _tile_dpbsud(0, 1, 2);
      }
    }
    if constexpr ((kWork & kTileStore) != 0) {
      if (odd) {
        _tile_stored(3, g_c[1], 64);
      } else {
        _tile_stored(0, g_c[0], 64);
      }
    }
    if constexpr ((kWork & kFma) != 0) {
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
#pragma GCC unroll 8
        for (int k = 0; k < 8; ++k) v[k] = _mm512_fmadd_ps(v[k], m, add);
      }
    }
    if constexpr ((kWork & kScalar) != 0) {
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        s0 = s0 * 3 + 1;
        s1 ^= s0 >> 3;
        s2 += s1;
      }
      asm volatile("" : "+r"(s0), "+r"(s1), "+r"(s2));
    }
  }
  benchmark::DoNotOptimize(v);
  benchmark::DoNotOptimize(s2);
}

}  // namespace

BENCHMARK(Run<kTile>)->Name("Tile");
BENCHMARK(Run<kTileLoads>)->Name("TileLoads");
BENCHMARK(Run<kTileStore>)->Name("TileStore");
BENCHMARK(Run<kFma>)->Name("Fma");
BENCHMARK(Run<kScalar>)->Name("Scalar");
BENCHMARK(Run<kTile | kFma>)->Name("Tile+Fma");
BENCHMARK(Run<kTileLoads | kFma>)->Name("TileLoads+Fma");
BENCHMARK(Run<kTileStore | kFma>)->Name("TileStore+Fma");
BENCHMARK(Run<kTile | kScalar>)->Name("Tile+Scalar");
BENCHMARK(Run<kTile | kTileLoads | kTileStore>)->Name("TileBlock");
BENCHMARK(Run<kTile | kTileLoads | kTileStore | kFma>)->Name("TileBlock+Fma");
BENCHMARK_MAIN();

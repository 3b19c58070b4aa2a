// Decode attention, one query token per sequence, on SmolLM2's shape (9
// query heads over 3 kv heads of 64, f16 paged cache of 16-token pages):
// the kernel a 16-stream decode step spends about a fifth of its time in.
//
//   build/bench/attention_bench
//
// Counters: ns per (query head, key) and K/V bytes per second. "Hot" re-reads
// one layer of one sequence (its cache sits in L2); "Cold" walks 16
// sequences x 30 layers of caches, as a decode step does, so it reads from L3
// or DRAM. The arithmetic floor is 8 FMAs of 16 lanes per (head, key): 4
// cycles at two FMAs a cycle.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <algorithm>
#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace {

using atrium::DType;

constexpr int64_t kHeads = 9, kKvHeads = 3, kHeadDim = 64, kPage = 16, kKvDim = kKvHeads * kHeadDim;
constexpr int64_t kGroup = kHeads / kKvHeads;  // query heads per kv head: one call each

// One layer's paged K and V of `caches` sequences of n_kv keys each, pages
// shuffled the way a pool hands them out.
struct Caches {
  std::vector<uint16_t> k, v;
  std::vector<std::vector<int32_t>> blocks;
  Caches(int64_t caches, int64_t n_kv) {
    const int64_t pages = (n_kv + kPage - 1) / kPage;
    std::vector<float> row(kKvDim);
    std::mt19937 rng(7);
    std::normal_distribution<float> dist;
    k.resize(caches * pages * kPage * kKvDim);
    v.resize(k.size());
    const auto& cpu = atrium::kernels::Cpu();
    for (int64_t r = 0; r < caches * pages * kPage; ++r) {
      for (float& x : row) x = dist(rng);
      cpu.quantize_row(DType::kF16, k.data() + r * kKvDim, row.data(), kKvDim);
      for (float& x : row) x = dist(rng);
      cpu.quantize_row(DType::kF16, v.data() + r * kKvDim, row.data(), kKvDim);
    }
    std::vector<int32_t> order(caches * pages);
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t c = 0; c < caches; ++c) blocks.emplace_back(order.begin() + c * pages, order.begin() + (c + 1) * pages);
  }
};

void Run(benchmark::State& state, int64_t n_caches) {
  const int64_t n_kv = state.range(0);
  std::vector<Caches> layers;
  const int64_t n_layers = n_caches == 1 ? 1 : 30;
  for (int64_t l = 0; l < n_layers; ++l) layers.emplace_back(n_caches, n_kv);
  std::vector<float> q(kHeads * kHeadDim, 0.1f), out(q.size()), scratch(n_kv);
  const auto& cpu = atrium::kernels::Cpu();
  int64_t calls = 0;
  for (auto _ : state) {
    for (const Caches& c : layers) {
      for (int64_t s = 0; s < n_caches; ++s) {
        for (int64_t g = 0; g < kKvHeads; ++g) {
          // As ops::Attention calls it: one call per (sequence, kv head),
          // each told where the next one starts reading.
          const int64_t ns = g + 1 < kKvHeads ? s : s + 1, ng = g + 1 < kKvHeads ? g + 1 : 0;
          const atrium::kernels::AttentionNext next{c.k.data() + ng * kHeadDim, c.v.data() + ng * kHeadDim,
                                                    c.blocks[ns % n_caches].data(), n_kv - 1,
                                                    ns < n_caches ? n_kv : 0};
          cpu.attention(out.data(), kHeads * kHeadDim, q.data(), kHeads * kHeadDim, c.k.data(), c.v.data(),
                        DType::kF16, kKvDim, c.blocks[s].data(), kPage, 1, n_kv - 1, n_kv, kHeads, kKvHeads,
                        kHeadDim, 0.125f, 0.0f, 0, g * kGroup, (g + 1) * kGroup, scratch.data(), &next);
        }
        ++calls;
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  const double pairs = static_cast<double>(calls) * kHeads * n_kv;
  state.counters["ns/pair"] = benchmark::Counter(pairs, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["kv_bytes/s"] =
      benchmark::Counter(static_cast<double>(calls) * n_kv * kKvDim * 2 * 2, benchmark::Counter::kIsRate);
}

void BM_DecodeAttentionHot(benchmark::State& state) { Run(state, 1); }
void BM_DecodeAttentionCold(benchmark::State& state) { Run(state, 16); }

}  // namespace

BENCHMARK(BM_DecodeAttentionHot)->Arg(128)->Arg(512);
BENCHMARK(BM_DecodeAttentionCold)->Arg(128)->Arg(512);
BENCHMARK_MAIN();

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
// cycles at two FMAs a cycle. The Q8 cases read the same keys from a q8_0
// cache (kernels/kv_q8.h's layout, --kv-type q8_0).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <algorithm>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/kv_q8.h"

namespace {

using atrium::DType;

constexpr int64_t kHeads = 9, kKvHeads = 3, kHeadDim = 64, kPage = 16, kKvDim = kKvHeads * kHeadDim;
constexpr int64_t kGroup = kHeads / kKvHeads;  // query heads per kv head: one call each

// One layer's paged K and V of `caches` sequences of n_kv keys each, pages
// shuffled the way a pool hands them out, as f16 rows and as q8_0.
struct Caches {
  std::vector<uint16_t> k, v;
  std::vector<uint8_t> k8, v8;
  std::vector<std::vector<int32_t>> blocks;
  Caches(int64_t caches, int64_t n_kv) {
    const int64_t pages = (n_kv + kPage - 1) / kPage;
    std::vector<float> row(kKvDim);
    std::mt19937 rng(7);
    std::normal_distribution<float> dist;
    using atrium::kernels::KvSide;
    k.resize(caches * pages * kPage * kKvDim);
    v.resize(k.size());
    k8.resize(caches * pages * atrium::kernels::KvQ8GroupBytes(KvSide::kKeys, kKvDim));
    v8.resize(caches * pages * atrium::kernels::KvQ8GroupBytes(KvSide::kValues, kKvDim));
    const auto& cpu = atrium::kernels::Cpu();
    for (int64_t r = 0; r < caches * pages * kPage; ++r) {
      for (float& x : row) x = dist(rng);
      cpu.quantize_row(DType::kF16, k.data() + r * kKvDim, row.data(), kKvDim);
      atrium::kernels::KvQ8StoreRow(KvSide::kKeys, k8.data(), kKvDim, r, 0, row.data(), kKvDim);
      for (float& x : row) x = dist(rng);
      cpu.quantize_row(DType::kF16, v.data() + r * kKvDim, row.data(), kKvDim);
      atrium::kernels::KvQ8StoreRow(KvSide::kValues, v8.data(), kKvDim, r, 0, row.data(), kKvDim);
    }
    std::vector<int32_t> order(caches * pages);
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t c = 0; c < caches; ++c) blocks.emplace_back(order.begin() + c * pages, order.begin() + (c + 1) * pages);
  }
};

void Run(benchmark::State& state, int64_t n_caches, DType kv) {
  const int64_t n_kv = state.range(0);
  std::vector<Caches> layers;
  const int64_t n_layers = n_caches == 1 ? 1 : 30;
  for (int64_t l = 0; l < n_layers; ++l) layers.emplace_back(n_caches, n_kv);
  std::vector<float> q(kHeads * kHeadDim), out(q.size()), scratch(n_kv);
  std::mt19937 rng(11);
  std::normal_distribution<float> dist;
  for (float& x : q) x = dist(rng);
  const auto& cpu = atrium::kernels::Cpu();
  int64_t calls = 0;
  for (auto _ : state) {
    for (const Caches& c : layers) {
      const void* k = kv == DType::kQ8_0 ? static_cast<const void*>(c.k8.data()) : c.k.data();
      const void* v = kv == DType::kQ8_0 ? static_cast<const void*>(c.v8.data()) : c.v.data();
      for (int64_t s = 0; s < n_caches; ++s) {
        for (int64_t g = 0; g < kKvHeads; ++g) {
          // As ops::Attention calls it: one call per (sequence, kv head),
          // each told where the next one starts reading.
          const int64_t ns = g + 1 < kKvHeads ? s : s + 1, ng = g + 1 < kKvHeads ? g + 1 : 0;
          const atrium::kernels::AttentionNext next{k, v, c.blocks[ns % n_caches].data(), n_kv - 1,
                                                    ns < n_caches ? n_kv : 0, ng};
          cpu.attention(out.data(), kHeads * kHeadDim, q.data(), kHeads * kHeadDim, k, v, kv, kKvDim,
                        c.blocks[s].data(), kPage, 1, n_kv - 1, n_kv, kHeads, kKvHeads,
                        kHeadDim, 0.125f, 0.0f, 0, g * kGroup, (g + 1) * kGroup, scratch.data(), &next);
        }
        ++calls;
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  const double pairs = static_cast<double>(calls) * kHeads * n_kv;
  state.counters["ns/pair"] = benchmark::Counter(pairs, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  using atrium::kernels::KvSide;
  const double key_bytes = kv == DType::kQ8_0 ? static_cast<double>(atrium::kernels::KvQ8GroupBytes(KvSide::kKeys, kKvDim) +
                                                                    atrium::kernels::KvQ8GroupBytes(KvSide::kValues, kKvDim)) /
                                                    kPage
                                              : kKvDim * 2 * 2;
  state.counters["kv_bytes/s"] = benchmark::Counter(static_cast<double>(calls) * n_kv * key_bytes, benchmark::Counter::kIsRate);
}

void BM_DecodeAttentionHot(benchmark::State& state) { Run(state, 1, DType::kF16); }
void BM_DecodeAttentionCold(benchmark::State& state) { Run(state, 16, DType::kF16); }
void BM_DecodeAttentionQ8Hot(benchmark::State& state) { Run(state, 1, DType::kQ8_0); }
void BM_DecodeAttentionQ8Cold(benchmark::State& state) { Run(state, 16, DType::kQ8_0); }

}  // namespace

BENCHMARK(BM_DecodeAttentionHot)->Arg(128)->Arg(512);
BENCHMARK(BM_DecodeAttentionCold)->Arg(128)->Arg(512);
BENCHMARK(BM_DecodeAttentionQ8Hot)->Arg(128)->Arg(512);
BENCHMARK(BM_DecodeAttentionQ8Cold)->Arg(128)->Arg(512);
BENCHMARK_MAIN();

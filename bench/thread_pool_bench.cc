// The cost of handing work to the thread pool: a decode step hands out work
// about 150 times (5 parallel regions per layer), so this round trip is paid
// per region. Measures, with the pool's threads already spinning:
//   BM_RunRoundTrip        Run() of an empty job on every thread and back
//   BM_ParallelForChunks   ParallelFor over 64 units (chunks claimed with an atomic)
//   BM_SerialBaseline      the same loop body run by one thread, for scale
// Run: build/bench/thread_pool_bench   (Google Benchmark flags apply)
#include <benchmark/benchmark.h>

#include <atomic>

#include "runtime/thread_pool.h"

namespace atrium {
namespace {

void BM_RunRoundTrip(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) pool.Run([](int) {});
  state.SetLabel(std::to_string(pool.size()) + " threads");
}
BENCHMARK(BM_RunRoundTrip)->Arg(2)->UseRealTime();

void BM_ParallelForChunks(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  std::atomic<int64_t> sink{0};
  for (auto _ : state) {
    pool.ParallelFor(64, 1, [&](int64_t b, int64_t e, int) { sink.fetch_add(e - b, std::memory_order_relaxed); });
  }
  benchmark::DoNotOptimize(sink.load());
}
BENCHMARK(BM_ParallelForChunks)->Arg(2)->UseRealTime();

void BM_SerialBaseline(benchmark::State& state) {
  std::atomic<int64_t> sink{0};
  for (auto _ : state) {
    for (int i = 0; i < 64; ++i) sink.fetch_add(1, std::memory_order_relaxed);
  }
  benchmark::DoNotOptimize(sink.load());
}
BENCHMARK(BM_SerialBaseline);

}  // namespace
}  // namespace atrium

BENCHMARK_MAIN();

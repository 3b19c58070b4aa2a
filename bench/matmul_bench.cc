// The packed quantized matmul of a decode step with 1 and 16 tokens, on
// SmolLM2's shapes: the FFN's 1536 x 576 Q4_1 and the 49152 x 576 Q8_0
// output head. What a 16-stream step spends most of its time in.
//
//   build/bench/matmul_bench
//
// Counters: ns per token and the weight bytes read a second. With one token
// a matmul reads every weight for one row of output; with 16 the same reads
// serve 16 tokens, and the per-token cost is the arithmetic after them (the
// AMX tile multiplies and the float chain of tiles_avx512.h), unless the
// weights come from DRAM ("Cold"): then one token reads at DRAM speed and
// 16 tokens pay the reads and the arithmetic, only partly overlapped.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/dtype.h"

namespace {

using atrium::DType;

// On 2 MiB pages, as a loaded model's packed weights are (models/model.cc).
struct Packed {
  static constexpr size_t kHuge = size_t{2} << 20;
  uint8_t* p;
  explicit Packed(int64_t bytes) : p(static_cast<uint8_t*>(::operator new(Rounded(bytes), std::align_val_t{kHuge}))) {
    ::madvise(p, Rounded(bytes), MADV_HUGEPAGE);
  }
  ~Packed() { ::operator delete(p, std::align_val_t{kHuge}); }
  static size_t Rounded(int64_t bytes) { return (static_cast<size_t>(bytes) + kHuge - 1) / kHuge * kHuge; }
};

void Matmul(benchmark::State& state, DType wtype, int64_t rows, int64_t n_in, int64_t copies = 1) {
  const int64_t n_tokens = state.range(0);
  const auto& k = atrium::kernels::Cpu();
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  // Weights: random floats quantized by the scalar reference.
  const int64_t w_row = atrium::RowBytes(wtype, n_in);
  std::vector<uint8_t> w(static_cast<size_t>(rows * w_row));
  std::vector<float> f(n_in);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : f) v = dist(rng);
    k.quantize_row(wtype, w.data() + r * w_row, f.data(), n_in);
  }
  // Copies of the matrix, taken in turn. "Cold" takes 256 (141 MB, past
  // the ~100 MB of L3 this VM gets: bench/membw), so the weights stream
  // from DRAM, as a 16-stream step's do once its KV cache has grown.
  const int64_t bytes = k.packed_bytes(wtype, rows, n_in);
  Packed packed(bytes * copies);
  for (int64_t c = 0; c < copies; ++c) k.pack_rows(packed.p + c * bytes, w.data(), wtype, rows, n_in);
  const DType partner = atrium::kernels::DotPartner(wtype);
  const int64_t x_stride = atrium::RowBytes(partner, n_in);
  std::vector<uint8_t> x(static_cast<size_t>(x_stride * n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (float& v : f) v = dist(rng);
    k.quantize_row(partner, x.data() + t * x_stride, f.data(), n_in);
  }
  std::vector<float> out(static_cast<size_t>(rows * n_tokens));
  int64_t next = 0;
  for (auto _ : state) {
    k.matmul_packed(out.data(), rows, packed.p + next * bytes, wtype, n_in, x.data(), x_stride, n_tokens, 0, rows);
    next = (next + 1) % copies;
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ns/token"] = benchmark::Counter(static_cast<double>(state.iterations() * n_tokens),
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * rows * w_row), benchmark::Counter::kIsRate);
}

void BM_FfnQ4_1(benchmark::State& state) { Matmul(state, DType::kQ4_1, 1536, 576); }
void BM_FfnQ4_1Cold(benchmark::State& state) { Matmul(state, DType::kQ4_1, 1536, 576, 256); }
void BM_HeadQ8_0(benchmark::State& state) { Matmul(state, DType::kQ8_0, 49152, 576); }

}  // namespace

BENCHMARK(BM_FfnQ4_1)->Arg(1)->Arg(16);
BENCHMARK(BM_FfnQ4_1Cold)->Arg(1)->Arg(16);
BENCHMARK(BM_HeadQ8_0)->Arg(1)->Arg(16);
BENCHMARK_MAIN();

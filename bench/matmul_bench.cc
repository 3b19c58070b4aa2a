// The packed quantized matmul of a decode step with 1 and 16 tokens, on
// SmolLM2's shapes: the FFN's 1536 x 576 Q4_1 and the 49152 x 576 Q8_0
// output head. What a 16-stream step spends most of its time in.
//
//   build/bench/matmul_bench
//
// Counters: ns per token and the weight bytes read a second. With one token
// a matmul reads every weight for one row of output; with 16 the same reads
// serve 16 tokens, and the per-token cost is the arithmetic after them (the
// AMX tile multiplies and the float chain of tiles_avx512.h).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/dtype.h"

namespace {

using atrium::DType;

struct Packed {
  uint8_t* p;
  explicit Packed(int64_t bytes) : p(static_cast<uint8_t*>(::operator new(bytes, std::align_val_t{64}))) {}
  ~Packed() { ::operator delete(p, std::align_val_t{64}); }
};

void Matmul(benchmark::State& state, DType wtype, int64_t rows, int64_t n_in) {
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
  Packed packed(k.packed_bytes(wtype, rows, n_in));
  k.pack_rows(packed.p, w.data(), wtype, rows, n_in);
  const DType partner = atrium::kernels::DotPartner(wtype);
  const int64_t x_stride = atrium::RowBytes(partner, n_in);
  std::vector<uint8_t> x(static_cast<size_t>(x_stride * n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (float& v : f) v = dist(rng);
    k.quantize_row(partner, x.data() + t * x_stride, f.data(), n_in);
  }
  std::vector<float> out(static_cast<size_t>(rows * n_tokens));
  for (auto _ : state) {
    k.matmul_packed(out.data(), rows, packed.p, wtype, n_in, x.data(), x_stride, n_tokens, 0, rows);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ns/token"] = benchmark::Counter(static_cast<double>(state.iterations() * n_tokens),
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * rows * w_row), benchmark::Counter::kIsRate);
}

void BM_FfnQ4_1(benchmark::State& state) { Matmul(state, DType::kQ4_1, 1536, 576); }
void BM_HeadQ8_0(benchmark::State& state) { Matmul(state, DType::kQ8_0, 49152, 576); }

}  // namespace

BENCHMARK(BM_FfnQ4_1)->Arg(1)->Arg(16);
BENCHMARK(BM_HeadQ8_0)->Arg(1)->Arg(16);
BENCHMARK_MAIN();

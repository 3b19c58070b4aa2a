// STREAM-like read bandwidth: the floor under decode speed. Decoding one token
// reads every weight once, so no engine can decode faster than
// (bytes/s the cores can read) / (weight bytes per token).
//
// Built and run by bench/compare.py:
//   g++ -O3 -march=native -pthread bench/membw.cc -o membw
//   membw [--mib 1024] [--threads 1,2] [--passes 10]
// Prints one JSON object: {"buffer_bytes": ..., "gbps": {"1": ..., "2": ...}}.
//
// Only reads are timed (a decode step writes almost nothing), each thread
// streams its own contiguous slice with the widest loads the CPU has and
// several independent accumulators (so the loop is bound by loads, not by
// the add latency), and the best of several passes is kept: the machine is
// shared, and the best pass is the one least disturbed by other work.
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// XOR-reduces [begin, end) with 4 independent accumulators. The result is
// returned (and printed in aggregate) so the compiler cannot drop the loads.
uint64_t ReadSlice(const uint8_t* begin, const uint8_t* end) {
#if defined(__AVX512F__)
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (const uint8_t* p = begin; p + 256 <= end; p += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + 192));
  }
  const __m512i a = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, a);
#elif defined(__AVX2__)
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (const uint8_t* p = begin; p + 128 <= end; p += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 96)));
  }
  const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a);
#else
  uint64_t lanes[4] = {0, 0, 0, 0};
  for (const uint8_t* p = begin; p + 32 <= end; p += 32) {
    for (int i = 0; i < 4; ++i) {
      uint64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      lanes[i] ^= v;
    }
  }
#endif
  uint64_t r = 0;
  for (uint64_t v : lanes) r ^= v;
  return r;
}

// Seconds for n_threads threads to read the whole buffer once. Threads are
// started first and released together, so thread creation is not timed.
double TimedPass(const uint8_t* buf, size_t bytes, int n_threads, uint64_t* sink) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<uint64_t> results(n_threads);
  std::vector<std::thread> threads;
  const size_t slice = bytes / n_threads / 256 * 256;
  for (int t = 0; t < n_threads; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      results[t] = ReadSlice(buf + t * slice, buf + (t + 1) * slice);
    });
  }
  while (ready.load() < n_threads) {
  }
  const auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (uint64_t r : results) *sink ^= r;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024;
  int passes = 10;
  std::vector<int> thread_counts = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--mib") {
      mib = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--passes") {
      passes = std::atoi(argv[i + 1]);
    } else if (flag == "--threads") {
      thread_counts.clear();
      for (char* s = argv[i + 1]; *s;) {
        thread_counts.push_back(static_cast<int>(std::strtol(s, &s, 10)));
        if (*s == ',') ++s;
      }
    } else {
      std::fprintf(stderr, "usage: membw [--mib 1024] [--threads 1,2] [--passes 10]\n");
      return 2;
    }
  }
  const size_t bytes = mib << 20;
  // On 2 MiB pages, as Atrium's packed weights and KV pool are: with 4 KiB
  // pages a VM's reads pay a two-level page walk every 64 lines, and the
  // "floor" would be the TLB's, not the memory's.
  constexpr size_t kHuge = size_t{2} << 20;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(kHuge, (bytes + kHuge - 1) / kHuge * kHuge));
  if (buf == nullptr) return std::fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib), 1;
  ::madvise(buf, bytes, MADV_HUGEPAGE);
  // Touch every page with non-zero data first: untouched pages all map the
  // kernel's one zero page, and reading it would measure cache, not memory.
  for (size_t i = 0; i < bytes; ++i) buf[i] = static_cast<uint8_t>(i * 131 + 7);

  uint64_t sink = 0;
  std::printf("{\"buffer_bytes\": %zu, \"passes\": %d, \"gbps\": {", bytes, passes);
  for (size_t k = 0; k < thread_counts.size(); ++k) {
    const int n = std::max(1, thread_counts[k]);
    const size_t read_bytes = bytes / n / 256 * 256 * n;
    double best = 1e30;
    for (int p = 0; p < passes; ++p) best = std::min(best, TimedPass(buf, bytes, n, &sink));
    std::printf("%s\"%d\": %.3f", k ? ", " : "", n, read_bytes / best / 1e9);
  }
  std::printf("}, \"checksum\": %llu}\n", static_cast<unsigned long long>(sink & 0xff));
  std::free(buf);
  return 0;
}

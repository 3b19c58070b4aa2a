// Units of work [0, n_units) handed out to the threads of one pool call as
// each comes free, in guided chunks: a 2 * n_threads-th of what is left,
// at least one unit. A thread that starts late or runs slow takes less, and
// the shrinking chunks end within about one unit of each other.
//
// Why not fixed shares. With halves fixed in advance, the two threads of a
// 16-token decode step waited 28% of the matmuls' time for each other: on
// this VM a half now and then takes 100-200 us longer than its twin (its
// memory, not its thread or its rows), and a worker that wakes late holds
// the caller at the barrier. Guided chunks cost ~2 log2(n_units) claims of
// one atomic each.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace atrium {

class WorkClaims {
 public:
  WorkClaims(int64_t n_units, int n_threads) : n_units_(n_units), divisor_(2 * std::max(n_threads, 1)) {}
  WorkClaims(const WorkClaims&) = delete;
  WorkClaims& operator=(const WorkClaims&) = delete;

  struct Range {
    int64_t begin = 0, end = 0;  // units; empty when none are left
    bool empty() const { return begin >= end; }
  };

  Range Next() {
    int64_t at = next_.load(std::memory_order_relaxed);
    for (;;) {
      if (at >= n_units_) return {};
      const int64_t take = std::max<int64_t>(1, (n_units_ - at) / divisor_);
      if (next_.compare_exchange_weak(at, at + take, std::memory_order_relaxed)) return {at, at + take};
    }
  }

 private:
  alignas(64) std::atomic<int64_t> next_{0};
  int64_t n_units_;
  int divisor_;
};

}  // namespace atrium

#include "runtime/work_claims.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace atrium {
namespace {

// Threads that race for the units get each exactly once, in contiguous
// chunks that never grow.
TEST(WorkClaimsTest, EveryUnitOnceUnderRacingThreads) {
  for (int64_t n_units : {1, 2, 5, 36, 96, 3072}) {
    for (int n_threads : {1, 2, 4}) {
      for (int round = 0; round < 20; ++round) {
        WorkClaims claims(n_units, n_threads);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n_units));
        std::vector<std::thread> threads;
        std::atomic<bool> grew{false};
        for (int i = 0; i < n_threads; ++i) {
          threads.emplace_back([&] {
            int64_t last = n_units + 1;
            for (WorkClaims::Range r = claims.Next(); !r.empty(); r = claims.Next()) {
              if (r.end - r.begin > last) grew = true;
              last = r.end - r.begin;
              for (int64_t u = r.begin; u < r.end; ++u) hits[static_cast<size_t>(u)].fetch_add(1);
            }
          });
        }
        for (std::thread& t : threads) t.join();
        EXPECT_FALSE(grew) << n_units << " units, " << n_threads << " threads";
        for (int64_t u = 0; u < n_units; ++u) {
          ASSERT_EQ(hits[static_cast<size_t>(u)].load(), 1) << "unit " << u << " of " << n_units << ", " << n_threads
                                                            << " threads";
        }
        EXPECT_TRUE(claims.Next().empty());
      }
    }
  }
}

// Guided: the first chunk is a 2 * n_threads-th of the work, the chunks
// shrink to single units, and one thread alone takes ~2 log2(n) of them.
TEST(WorkClaimsTest, ChunksShrinkToSingleUnits) {
  WorkClaims claims(96, 2);
  std::vector<int64_t> sizes;
  for (WorkClaims::Range r = claims.Next(); !r.empty(); r = claims.Next()) sizes.push_back(r.end - r.begin);
  ASSERT_FALSE(sizes.empty());
  EXPECT_EQ(sizes.front(), 24);
  EXPECT_EQ(sizes.back(), 1);
  EXPECT_LE(sizes.size(), 20u);
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  EXPECT_EQ(total, 96);
}

}  // namespace
}  // namespace atrium

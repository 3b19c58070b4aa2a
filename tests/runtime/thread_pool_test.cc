#include "runtime/thread_pool.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

namespace atrium {
namespace {

TEST(ThreadPoolTest, RunCallsEveryThreadOnce) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> calls(4);
  for (int round = 0; round < 1000; ++round) pool.Run([&](int t) { calls[t].fetch_add(1); });
  for (auto& c : calls) EXPECT_EQ(c.load(), 1000);
}

TEST(ThreadPoolTest, ParallelForCoversEachIndexExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 3, 7, 64, 1000, 1537}) {
    for (int64_t grain : {1, 16, 64}) {
      std::vector<int> hits(n, 0);
      pool.ParallelFor(n, grain, [&](int64_t b, int64_t e, int) {
        EXPECT_LT(b, e);
        if (e != n) {
          EXPECT_EQ(e % grain, 0);
        }
        for (int64_t i = b; i < e; ++i) ++hits[i];
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n=" << n << " grain=" << grain << " i=" << i;
    }
  }
}

TEST(ThreadPoolTest, SingleThreadRunsInline) {
  ThreadPool pool(1);
  int calls = 0;
  pool.Run([&](int t) {
    EXPECT_EQ(t, 0);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPoolTest, DefaultSizeIsTheCoreCount) {
  ThreadPool pool;
  EXPECT_EQ(pool.size(), ThreadPool::DefaultThreads());
}

}  // namespace
}  // namespace atrium

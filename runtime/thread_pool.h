// One persistent pool of worker threads sized to the cores. The calling
// thread takes part as worker 0, so a pool of N threads starts N - 1 workers
// and never oversubscribes. Work is handed out by a generation counter that
// workers spin on briefly, then sleep on (C++20 atomic wait = futex).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace atrium {

class ThreadPool {
 public:
  // n_threads <= 0 means one per online core.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index) on every thread of the pool, the caller included,
  // and returns when all have finished. Not reentrant: one Run at a time.
  void Run(const std::function<void(int thread)>& fn);

  // Splits [0, n) into units of `grain` (the last takes the tail) and calls
  // fn(begin, end, thread) on contiguous runs of them that the threads
  // claim as they come free (WorkClaims: guided chunks, shrinking to one
  // unit), so one that starts late or runs slow (a VM's stolen time, a busy
  // sibling) does less instead of holding every other thread at the
  // barrier. A caller whose chunks carry a set-up cost passes a larger grain.
  void ParallelFor(int64_t n, int64_t grain,
                   const std::function<void(int64_t begin, int64_t end, int thread)>& fn);
  static int DefaultThreads();

 private:
  void WorkerLoop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace atrium

// Counts the inference calls in flight and closes for a drain: after
// Close(), Enter() refuses (the call gets UNAVAILABLE), and WaitIdle()
// returns once the calls admitted before have all left, or at a deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace atrium::gateway {

class CallGate {
 public:
  // False once closed; a true Enter must be paired with one Leave.
  bool Enter() {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    ++in_flight_;
    return true;
  }
  void Leave() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--in_flight_ == 0) idle_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  int64_t in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_;
  }
  // True when no call is in flight by `deadline`.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return idle_.wait_until(lock, deadline, [this] { return in_flight_ == 0; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable idle_;
  int64_t in_flight_ = 0;
  bool closed_ = false;
};

}  // namespace atrium::gateway

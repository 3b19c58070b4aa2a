// A progress bar on stderr for long work (loading, later fine-tuning and
// evaluation). It appears only when the work outlasts `delay` and stderr is
// a terminal, so quick runs and scripts see nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace atrium::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::string unit, double unit_scale,
              std::chrono::milliseconds delay = std::chrono::milliseconds(300));
  ~ProgressBar();
  void Update(uint64_t done, uint64_t total);
  void Finish();

 private:
  std::string label_;
  std::string unit_;
  double unit_scale_;
  std::chrono::milliseconds delay_;
  std::chrono::steady_clock::time_point start_;
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::duration last_draw_{};
  bool finished_ = false;
};

}  // namespace atrium::cli

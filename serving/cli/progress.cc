#include "serving/cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace atrium::cli {

ProgressBar::ProgressBar(std::string label, std::string unit, double unit_scale,
                         std::chrono::milliseconds delay)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      unit_scale_(unit_scale),
      delay_(delay),
      start_(std::chrono::steady_clock::now()),
      tty_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Update(uint64_t done, uint64_t total) {
  if (!tty_ || finished_ || total == 0) return;
  const auto elapsed = std::chrono::steady_clock::now() - start_;
  if (!shown_ && elapsed < delay_) return;
  // Redraw at most every 100 ms, and always at the end.
  if (shown_ && done < total && elapsed - last_draw_ < std::chrono::milliseconds(100)) return;
  shown_ = true;
  last_draw_ = elapsed;
  constexpr int kWidth = 30;
  const double frac = static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  const double seconds = std::chrono::duration<double>(elapsed).count();
  std::fprintf(stderr, "\r%s [%s] %3.0f%%  %.0f/%.0f %s  %.1fs", label_.c_str(), bar.c_str(), frac * 100,
               done / unit_scale_, total / unit_scale_, unit_.c_str(), seconds);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (finished_) return;
  finished_ = true;
  if (shown_) std::fprintf(stderr, "\n");
}

}  // namespace atrium::cli

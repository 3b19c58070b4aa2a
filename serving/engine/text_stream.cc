#include "serving/engine/text_stream.h"

#include <algorithm>
#include <string_view>

namespace atrium {
namespace {

// Length of the longest suffix of `text` that is a proper prefix of a stop
// string: that much must be held back, it may yet become a stop.
size_t HeldBack(std::string_view text, const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const std::string& s : stops) {
    for (size_t len = std::min(text.size(), s.size() - 1); len > held; --len) {
      if (text.substr(text.size() - len) == std::string_view(s).substr(0, len)) {
        held = len;
        break;
      }
    }
  }
  return held;
}

}  // namespace

std::string TextStream::Push(int32_t token) {
  if (stopped_) return {};
  pending_ += decoder_.Push(token);
  size_t stop_at = std::string::npos;
  for (const std::string& s : stops_) stop_at = std::min(stop_at, pending_.find(s));
  size_t n;
  if (stop_at != std::string::npos) {
    stopped_ = true;
    n = stop_at;
  } else {
    n = pending_.size() - HeldBack(pending_, stops_);
  }
  std::string out = pending_.substr(0, n);
  pending_.erase(0, stopped_ ? pending_.size() : n);
  return out;
}

std::string TextStream::Flush() {
  if (stopped_) return {};
  pending_ += decoder_.Flush();
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace atrium

// Request states as the scheduler sees them (counts only: no tokens, no
// callbacks), and the bounded queue that holds requests waiting for
// admission. The engine keeps the full request (prompt, options, output
// stream) and builds these views for each step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>

#include "runtime/status.h"

namespace atrium {

// A sequence admitted to the batch: it holds KV blocks.
struct RunningSequence {
  int64_t id = 0;
  int64_t n_computed = 0;  // tokens whose keys and values are in its blocks
  // Prompt + generated tokens so far. The last generated token is not yet
  // computed, so a decoding sequence has n_known == n_computed + 1; more
  // pending tokens mean a prefill (a prompt, or a recompute after preemption).
  int64_t n_known = 0;
  int32_t blocks_held = 0;  // BlockTable::blocks.size()
  // Of blocks_held, those preempting it would make free or evictable (shared
  // with no other sequence): PrefixCache::ReleasableBlocks. Equal to
  // blocks_held when nothing is shared.
  int32_t releasable_blocks = 0;

  int64_t n_pending() const { return n_known - n_computed; }
  bool decoding() const { return n_pending() == 1; }
};

// A request waiting for admission.
struct WaitingRequest {
  int64_t id = 0;
  // Tokens to run before it can sample: its prompt, or prompt + generated
  // tokens for a preempted request (recomputed from scratch).
  int64_t n_tokens = 0;
  // Leading tokens the prefix cache already holds (PrefixCache::Peek on all
  // but the last token): a multiple of block_tokens, below n_tokens.
  int64_t n_cached_tokens = 0;
  // Of those cached blocks, the ones counted in SchedulerInput::free_blocks
  // because only the cache holds them (PrefixPeek::evictable_blocks).
  int32_t cached_evictable_blocks = 0;
  // Preempted before. The queue order already puts such requests first; the
  // flag is for metrics and messages.
  bool preempted = false;
};

// The FIFO of waiting requests, preempted ones back at the front. Unbounded:
// the engine refuses a flood at Submit (EngineOptions::max_queue), before a
// request reaches it, and a preempted request must never be lost.
template <typename T>
class RequestQueue {
 public:
  void Push(std::unique_ptr<T> r) { items_.push_back(std::move(r)); }
  void PushFront(std::unique_ptr<T> r) { items_.push_front(std::move(r)); }
  std::unique_ptr<T> PopFront() {
    ATRIUM_CHECK(!items_.empty(), "PopFront on an empty request queue");
    std::unique_ptr<T> r = std::move(items_.front());
    items_.pop_front();
    return r;
  }
  // Removes the request at index i (a cancelled one) and returns it.
  std::unique_ptr<T> Take(size_t i) {
    ATRIUM_CHECK(i < items_.size(), "request queue index %zu out of range", i);
    std::unique_ptr<T> r = std::move(items_[i]);
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(i));
    return r;
  }

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  T& operator[](size_t i) { return *items_[i]; }
  const T& operator[](size_t i) const { return *items_[i]; }

 private:
  std::deque<std::unique_ptr<T>> items_;
};

}  // namespace atrium

#include "serving/engine/scheduler.h"

#include <algorithm>

#include "runtime/kv_pool.h"

namespace atrium {
namespace {

enum class State { kIdle, kScheduled, kPreempted, kRejected };

}  // namespace

Status SchedulerConfig::Validate() const {
  if (max_step_tokens <= 0 || max_running <= 0 || prefill_chunk <= 0) {
    return InvalidArgument(StrFormat("scheduler: max_step_tokens, max_running and prefill_chunk must be > 0, "
                                     "got %lld, %d, %lld",
                                     static_cast<long long>(max_step_tokens), max_running,
                                     static_cast<long long>(prefill_chunk)));
  }
  if (max_step_tokens < max_running) {
    return InvalidArgument(StrFormat("scheduler: max_step_tokens (%lld) must be >= max_running (%d) so that "
                                     "every running sequence can decode in each step",
                                     static_cast<long long>(max_step_tokens), max_running));
  }
  return OkStatus();
}

StepPlan Schedule(const SchedulerInput& input, const SchedulerConfig& config) {
  ATRIUM_CHECK(config.Validate().ok(), "invalid scheduler config: %s", config.Validate().ToString().c_str());
  ATRIUM_CHECK(input.block_tokens > 0 && input.free_blocks >= 0 && input.total_blocks >= 0,
               "bad scheduler input: block_tokens %d, free_blocks %d, total_blocks %d", input.block_tokens,
               input.free_blocks, input.total_blocks);
  const int32_t B = input.block_tokens;
  const std::vector<RunningSequence>& running = input.running;
  const int n = static_cast<int>(running.size());

  StepPlan plan;
  int64_t budget = config.max_step_tokens;
  int64_t free = input.free_blocks;
  std::vector<State> state(n, State::kIdle);

  auto never_fits = [&](int64_t n_tokens) { return KvPool::BlocksFor(n_tokens, B) > input.total_blocks; };
  auto reject = [&](int64_t id, int64_t n_tokens) {
    plan.reject.push_back(
        {id, ResourceExhausted(StrFormat("a sequence of %lld tokens needs %lld KV blocks of %d tokens; the "
                                         "whole pool has %d",
                                         static_cast<long long>(n_tokens),
                                         static_cast<long long>(KvPool::BlocksFor(n_tokens, B)), B, input.total_blocks))});
  };
  // The most recently admitted sequence at index >= from that is neither
  // scheduled nor gone, or -1.
  auto newest_idle = [&](int from) {
    for (int j = n - 1; j >= from; --j) {
      if (state[j] == State::kIdle) return j;
    }
    return -1;
  };
  auto preempt = [&](int j) {
    state[j] = State::kPreempted;
    free += running[j].releasable_blocks;
    plan.preempt.push_back(running[j].id);
  };
  auto add = [&](std::vector<ScheduledChunk>& list, int64_t id, int64_t start, int64_t n_tokens, int64_t new_blocks,
                 bool samples) {
    list.push_back({id, start, n_tokens, static_cast<int32_t>(new_blocks), samples});
    free -= new_blocks;
    budget -= n_tokens;
    plan.n_tokens += n_tokens;
    plan.n_new_blocks += static_cast<int32_t>(new_blocks);
  };

  for (int i = 0; i < n; ++i) {
    const RunningSequence& r = running[i];
    ATRIUM_CHECK(r.n_computed >= 0 && r.n_pending() >= 1, "running sequence %lld has %lld computed of %lld known",
                 static_cast<long long>(r.id), static_cast<long long>(r.n_computed),
                 static_cast<long long>(r.n_known));
    ATRIUM_CHECK(r.blocks_held >= KvPool::BlocksFor(r.n_computed, B) && r.releasable_blocks >= 0 &&
                     r.releasable_blocks <= r.blocks_held,
                 "running sequence %lld holds %d blocks (%d releasable) for %lld tokens",
                 static_cast<long long>(r.id), r.blocks_held, r.releasable_blocks,
                 static_cast<long long>(r.n_computed));
    if (never_fits(r.n_known)) {
      reject(r.id, r.n_known);
      state[i] = State::kRejected;
      free += r.releasable_blocks;
    }
  }

  // Decodes, oldest first. A decode that needs a block takes it from the
  // newest sequence not yet scheduled, which may be itself.
  for (int i = 0; i < n && budget > 0; ++i) {
    const RunningSequence& r = running[i];
    if (state[i] != State::kIdle || !r.decoding()) continue;
    const int64_t need = std::max<int64_t>(0, KvPool::BlocksFor(r.n_computed + 1, B) - r.blocks_held);
    while (need > free) {
      const int j = newest_idle(i);  // i itself is idle, so j >= i
      preempt(j);
      if (j == i) break;
    }
    if (state[i] != State::kIdle) continue;
    state[i] = State::kScheduled;
    add(plan.decode, r.id, r.n_computed, 1, need, true);
  }

  // In-flight prefills, oldest first. A prefill takes blocks from newer
  // sequences not yet scheduled to fit its chunk; with none left it runs what
  // fits, or waits (keeping its blocks) when nothing does.
  for (int i = 0; i < n && budget > 0; ++i) {
    const RunningSequence& r = running[i];
    if (state[i] != State::kIdle || r.decoding()) continue;
    const int64_t want = std::min({r.n_pending(), config.prefill_chunk, budget});
    auto fits = [&] { return (r.blocks_held + free) * B - r.n_computed; };
    while (fits() < want) {
      const int j = newest_idle(i + 1);
      if (j < 0) break;
      preempt(j);
    }
    const int64_t n_tokens = std::min(want, fits());
    if (n_tokens < 1) continue;
    state[i] = State::kScheduled;
    const int64_t need = std::max<int64_t>(0, KvPool::BlocksFor(r.n_computed + n_tokens, B) - r.blocks_held);
    add(plan.prefill, r.id, r.n_computed, n_tokens, need, n_tokens == r.n_pending());
  }

  // Admissions in queue order. A request that does not fit stops admission
  // (the ones behind it do not overtake it), and nothing is admitted in a
  // step that preempts: the preempted go first once memory is back. Nor in
  // a step that drops a running sequence: blocks it releases may be the
  // very cached blocks an admission would pin, which would count them twice.
  int64_t n_active = 0;
  bool dropped = false;
  for (State s : state) {
    n_active += (s == State::kIdle || s == State::kScheduled) ? 1 : 0;
    dropped |= s == State::kPreempted || s == State::kRejected;
  }
  bool admitting = !dropped;
  for (const WaitingRequest& w : input.waiting) {
    ATRIUM_CHECK(w.n_tokens >= 1 && w.n_cached_tokens >= 0 && w.n_cached_tokens < w.n_tokens &&
                     w.n_cached_tokens % B == 0 && w.cached_evictable_blocks >= 0 &&
                     w.cached_evictable_blocks <= w.n_cached_tokens / B,
                 "waiting request %lld: %lld tokens, %lld cached (%d evictable blocks)",
                 static_cast<long long>(w.id), static_cast<long long>(w.n_tokens),
                 static_cast<long long>(w.n_cached_tokens), w.cached_evictable_blocks);
    if (never_fits(w.n_tokens)) {
      reject(w.id, w.n_tokens);
      continue;
    }
    if (!admitting) continue;  // still looking for requests to reject
    if (n_active >= config.max_running || budget == 0) {
      admitting = false;
      continue;
    }
    const int64_t n_tokens = std::min({w.n_tokens - w.n_cached_tokens, config.prefill_chunk, budget});
    const int64_t new_blocks = KvPool::BlocksFor(w.n_cached_tokens + n_tokens, B) - w.n_cached_tokens / B;
    // Taking the cached blocks pins them: they stop being evictable.
    if (new_blocks + w.cached_evictable_blocks > free) {
      admitting = false;
      continue;
    }
    free -= w.cached_evictable_blocks;
    ++n_active;
    add(plan.admit, w.id, w.n_cached_tokens, n_tokens, new_blocks, w.n_cached_tokens + n_tokens == w.n_tokens);
  }
  return plan;
}

}  // namespace atrium

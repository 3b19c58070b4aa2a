// The capacity scheduler: a pure function from (running sequences, waiting
// queue, free KV blocks) to the plan of one engine step. No threads, no I/O,
// no state between calls, so every decision can be tested in a table.
//
// Order of the step: decodes first (one token each, they are cheap and keep
// the inter-token latency low), then the next chunk of each in-flight
// prefill, then new requests admitted in queue order while the token budget,
// the sequence limit and the free blocks allow. When a running sequence needs
// a block and none is free, the most recently admitted sequence that is not
// yet scheduled this step is preempted (recompute: its blocks are released
// and it returns to the front of the queue). Nothing is admitted in a step
// that preempts (or rejects a running sequence), so preempted requests are
// readmitted before anyone else. A
// sequence that could never fit in the whole pool is rejected, not kept
// waiting forever.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/status.h"
#include "serving/engine/request.h"

namespace atrium {

struct SchedulerConfig {
  int64_t max_step_tokens = 512;  // tokens computed per step, all sequences together
  int32_t max_running = 64;       // sequences holding KV blocks at once
  int64_t prefill_chunk = 512;    // prompt tokens of one sequence per step

  // INVALID_ARGUMENT for values <= 0, or max_step_tokens < max_running
  // (then some decodes would have to skip steps).
  Status Validate() const;
};

struct SchedulerInput {
  std::vector<RunningSequence> running;  // admission order, oldest first
  std::vector<WaitingRequest> waiting;   // queue order, front first
  // Blocks the step may take: KvPool::free_blocks() + PrefixCache::EvictableBlocks().
  int32_t free_blocks = 0;
  int32_t total_blocks = 0;  // KvPool::total_blocks()
  int32_t block_tokens = 16;
};

// Work for one sequence in this step: positions [start, start + n_tokens).
struct ScheduledChunk {
  int64_t id = 0;
  int64_t start = 0;     // n_computed; for an admission, the tokens taken from the prefix cache
  int64_t n_tokens = 0;  // 1 for a decode
  // Blocks to reserve before the forward: KvPool::Reserve(table, n_tokens)
  // allocates exactly this many when no block at or after `start` is shared.
  int32_t new_blocks = 0;
  bool samples = false;  // the chunk reaches the last known token: sample from its logits
};

struct Rejection {
  int64_t id = 0;
  Status status;  // RESOURCE_EXHAUSTED with the sizes
};

struct StepPlan {
  std::vector<ScheduledChunk> decode;   // running, admission order
  std::vector<ScheduledChunk> prefill;  // running in-flight prefills, admission order
  std::vector<ScheduledChunk> admit;    // from the waiting queue, queue order
  // Running sequences to preempt, newest first. Release each one's blocks
  // and push it to the front of the queue in this order, which leaves the
  // oldest at the very front.
  std::vector<int64_t> preempt;
  // Running or waiting sequences that can never fit in the pool: finish them
  // with the status (release a running one's blocks).
  std::vector<Rejection> reject;
  int64_t n_tokens = 0;  // all chunks together, <= max_step_tokens
  // All chunks together. It fits in free_blocks, plus the releasable blocks
  // of preempted and rejected sequences, minus the evictable cached blocks
  // the admissions take from the prefix cache.
  int32_t n_new_blocks = 0;
};

StepPlan Schedule(const SchedulerInput& input, const SchedulerConfig& config);

}  // namespace atrium

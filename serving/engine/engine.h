// The batching engine of one model: many concurrent generation requests,
// continuous (iteration-level) batching over a paged KV cache with a prefix
// cache. Each Step asks the scheduler (a pure function) for a plan, runs one
// ragged Forward over every scheduled sequence (weights read once for all),
// then samples, streams and finishes. Submit and Cancel may be called from
// any thread; Step from one thread at a time (a StepLoop).
//
// Lifecycle of a request: queued -> prefill (in chunks) -> decode ->
// finished (stop, length, context) / cancelled / deadline exceeded / failed.
// A preempted request goes back to the front of the queue and is recomputed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "models/model.h"
#include "models/tokenizer/tokenizer.h"
#include "runtime/kv_pool.h"
#include "serving/engine/prefix_cache.h"
#include "serving/engine/request.h"
#include "serving/engine/scheduler.h"
#include "serving/engine/session.h"

namespace atrium {

struct EngineOptions {
  int32_t block_tokens = 16;
  int64_t kv_budget_bytes = int64_t{256} << 20;  // the paged KV pool
  // Commit the pool's memory when the engine starts (KvPool::Commit); off,
  // pages are committed as blocks first fill, and a page fault lands in
  // some decode step.
  bool kv_commit = true;
  // f16 (llama.cpp's default) holds twice the tokens and halves attention's
  // reads; f32 is exact to the single-request path (Session, atrium generate);
  // q8_0 (llama.cpp's --cache-type-k/v q8_0) holds 1.8x f16's tokens and
  // reads about half its bytes, at a small cost in precision.
  DType kv_dtype = DType::kF16;
  size_t max_queue = 1024;                       // waiting requests; beyond, Submit refuses
  SchedulerConfig scheduler;
  bool prefix_cache = true;
  int64_t context = 0;  // tokens per sequence at most (0: the model's context length)
};

// The KV cache types a user may choose (--kv-type), by name: f16, q8_0, f32;
// INVALID_ARGUMENT naming the choices for any other name.
StatusOr<DType> KvTypeFromName(std::string_view name);
// KvTypeFromName's message for a bad name, "" for a good one: a flag
// parser's check (CLI11's ->check).
std::string KvTypeNameError(const std::string& name);
// The --kv-type flag's help, the same in every command that takes it.
inline constexpr const char* kKvTypeHelp =
    "KV cache element type: f16, q8_0 (about half f16's memory and attention reads: ~1.8x the tokens per "
    "--kv-mib, as llama.cpp's -ctk/-ctv q8_0) or f32";

// What one step gives a request. Spans are valid during the callback only.
struct StreamDelta {
  std::string_view text;                 // newly final text (never a split UTF-8 character)
  std::span<const int32_t> tokens;       // newly generated tokens
  std::span<const TokenLogprob> logprobs;  // one per new token, when asked for
};

struct EngineRequest {
  // The prefix cache's namespace: everything besides the tokens that decides
  // the keys and values, and the isolation boundary (tenant). The same
  // tokens under another namespace never share cached blocks.
  std::string ns;
  std::vector<int32_t> prompt;
  GenerationOptions options;
  int32_t logprobs = -1;  // < 0: none; k >= 0: each generated token's logprob and its k best alternatives
  bool echo = false;      // logprobs of the prompt tokens too (scoring text); bypasses the prefix cache
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Called from the step thread. Returning false cancels the request.
  std::function<bool(const StreamDelta&)> on_delta;
  // Called exactly once, from the step thread (or from ~Engine): OK with a
  // finish_reason of "stop", "length" or "context"; CANCELLED,
  // DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (can never fit) or an internal
  // error otherwise, with what was generated until then.
  std::function<void(const Status&, const GenerationResult&)> on_done;
};

struct EngineStats {
  int64_t waiting = 0;
  int64_t running = 0;
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_used = 0;    // held by sequences or by the prefix cache
  int64_t kv_blocks_cached = 0;  // held by the prefix cache
  int64_t steps = 0;
  // Steps that only decoded (no prompt tokens in the batch): how many, the
  // tokens they generated and their time (schedule, forward, sampling). Their
  // tokens / seconds is the decode throughput llama.cpp's batched-bench
  // reports as S_TG, free of the prefill that shares other steps.
  int64_t decode_steps = 0;
  int64_t decode_tokens = 0;
  double decode_seconds = 0;
  int64_t preemptions = 0;
  int64_t finished = 0;
  PrefixCacheStats prefix;
};

class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Create(Model& model, const Tokenizer& tokenizer,
                                                  const EngineOptions& options);
  // Requests still queued or running end with UNAVAILABLE.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Takes the request on success and returns its id. INVALID_ARGUMENT for a
  // bad request, RESOURCE_EXHAUSTED at once when the queue is full; then the
  // request stays with the caller and its callbacks are never called.
  StatusOr<int64_t> Submit(std::unique_ptr<EngineRequest>& request);
  // Ends the request at the next step (its blocks return to the pool then).
  void Cancel(int64_t id);

  // One iteration: schedule, forward, sample, stream, finish. Returns false
  // when there was nothing to do.
  bool Step(ops::Context& ctx);
  // Whether a Step would find work (requests queued or running). Like
  // stats(), it settles at the end of a step: inside on_done the finishing
  // request may still count as running.
  bool HasWork() const;
  EngineStats stats() const;
  const Model& model() const { return model_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  struct Sequence;
  Engine(Model& model, const Tokenizer& tokenizer, const EngineOptions& options, std::unique_ptr<KvPool> pool);

  // Under mu_: inbox and cancellations into the engine's own state.
  void TakeArrivals();
  void ExpireAndCancel();
  // Takes waiting_[i] out of the queue, ends it and forgets its id.
  void DropWaiting(size_t i, const Status& status);
  SchedulerInput BuildInput() const;
  // Whether every token of s, its prompt included, is in the cache (after a
  // forward: else its prefill goes on next step).
  static bool PromptComputed(const Sequence& s);
  // Whether s draws a token from this step's logits: its prompt is
  // computed and it may still generate.
  static bool WillSample(const Sequence& s);
  // Samples from one logit row (drawn >= 0: the token already drawn from
  // it, on the pool); false when the sequence finished.
  bool SampleNext(Sequence& s, float* logits, int32_t drawn = -1);
  void ScorePrompt(Sequence& s, int64_t start, int64_t n_rows, const float* logits);
  // Ends a running (or, with running = false, a dropped) sequence.
  void Finish(Sequence& s, const Status& status, const std::string& reason);
  void RemoveFinished();
  void Count(int64_t EngineStats::*counter);  // one more, under mu_

  Model& model_;
  const Tokenizer& tokenizer_;
  EngineOptions options_;
  int64_t context_;
  std::unique_ptr<KvPool> pool_;
  std::unique_ptr<PrefixCache> cache_;

  mutable std::mutex mu_;  // guards inbox_, cancelled_, n_waiting_, n_running_, stats_
  std::vector<std::unique_ptr<Sequence>> inbox_;
  std::unordered_set<int64_t> cancelled_;
  int64_t next_id_ = 1;
  int64_t n_waiting_ = 0;  // inbox + queue, for Submit's bound
  int64_t n_running_ = 0;

  // Step-thread state.
  RequestQueue<Sequence> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // admission order
  std::unordered_map<int64_t, Sequence*> by_id_;
  Tensor logits_;
  std::vector<float> raw_logits_;  // SampleNext's copy of one row, for logprobs
  // Per step, reused: each batch entry's first logit row, the entries
  // drawn on the pool and their tokens (-1: drawn on the step thread).
  std::vector<float*> row_at_;
  std::vector<size_t> draw_;
  std::vector<int32_t> drawn_;
  EngineStats stats_;
};

}  // namespace atrium

#include "serving/engine/engine.h"

#include <algorithm>
#include <cmath>

#include "serving/engine/text_stream.h"

namespace atrium {

StatusOr<DType> KvTypeFromName(std::string_view name) {
  if (name == "f16") return DType::kF16;
  if (name == "q8_0") return DType::kQ8_0;
  if (name == "f32") return DType::kF32;
  return InvalidArgument(StrFormat("KV cache type '%.*s': choose f16 (the default), q8_0 or f32",
                                   static_cast<int>(name.size()), name.data()));
}

std::string KvTypeNameError(const std::string& name) {
  const StatusOr<DType> type = KvTypeFromName(name);
  return type.ok() ? std::string() : std::string(type.status().message());
}
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// log p of every vocabulary entry is logits - logsumexp(logits).
double LogSumExp(const float* logits, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  return max + std::log(sum);
}

TokenLogprob Score(const float* logits, int64_t n_vocab, int32_t token, int32_t top_k) {
  const double lse = LogSumExp(logits, n_vocab);
  TokenLogprob lp;
  lp.token = token;
  lp.logprob = static_cast<float>(logits[token] - lse);
  if (top_k > 0) {
    // A min-heap of the best k (ties: the lower id wins), then sorted.
    auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    std::vector<std::pair<float, int32_t>> best;
    best.reserve(static_cast<size_t>(top_k) + 1);
    for (int32_t i = 0; i < n_vocab; ++i) {
      const std::pair<float, int32_t> c{logits[i], i};
      if (static_cast<int32_t>(best.size()) < top_k) {
        best.push_back(c);
        std::push_heap(best.begin(), best.end(), better);
      } else if (better(c, best.front())) {
        std::pop_heap(best.begin(), best.end(), better);
        best.back() = c;
        std::push_heap(best.begin(), best.end(), better);
      }
    }
    std::sort(best.begin(), best.end(), better);
    for (auto [logit, id] : best) lp.top.emplace_back(id, static_cast<float>(logit - lse));
  }
  return lp;
}

}  // namespace

struct Engine::Sequence {
  int64_t id = 0;
  std::unique_ptr<EngineRequest> req;
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t n_prompt = 0;
  BlockTable table;
  Sampler sampler;
  TextStream text;
  GenerationResult result;
  Clock::time_point t_submit;
  Clock::time_point t_first_forward;
  bool started = false;   // has run a forward
  bool inserted = false;  // its prompt blocks are in the prefix cache
  bool done = false;

  Sequence(std::unique_ptr<EngineRequest> r, const Tokenizer& tokenizer)
      : req(std::move(r)), sampler(req->options.sampling), text(tokenizer, req->options.stop) {}
  int32_t n_generated() const { return static_cast<int32_t>(tokens.size() - static_cast<size_t>(n_prompt)); }
};

StatusOr<std::unique_ptr<Engine>> Engine::Create(Model& model, const Tokenizer& tokenizer,
                                                 const EngineOptions& options) {
  RETURN_IF_ERROR(options.scheduler.Validate());
  if (options.max_queue == 0) return InvalidArgument("engine: max_queue must be at least 1");
  ASSIGN_OR_RETURN(std::unique_ptr<KvPool> pool,
                   model.NewKvPool(options.block_tokens, options.kv_budget_bytes, options.kv_dtype));
  if (options.kv_commit) RETURN_IF_ERROR(pool->Commit());
  return std::unique_ptr<Engine>(new Engine(model, tokenizer, options, std::move(pool)));
}

Engine::Engine(Model& model, const Tokenizer& tokenizer, const EngineOptions& options, std::unique_ptr<KvPool> pool)
    : model_(model),
      tokenizer_(tokenizer),
      options_(options),
      context_(options.context > 0 ? std::min(options.context, model.config().context_length)
                                   : model.config().context_length),
      pool_(std::move(pool)) {
  if (options_.prefix_cache) cache_ = std::make_unique<PrefixCache>(*pool_);
  stats_.kv_blocks_total = pool_->total_blocks();
}

Engine::~Engine() {
  const Status gone = Unavailable("the engine shut down before the request finished");
  TakeArrivals();
  for (auto& s : running_) Finish(*s, gone, "cancelled");
  while (!waiting_.empty()) {
    std::unique_ptr<Sequence> s = waiting_.PopFront();
    Finish(*s, gone, "cancelled");
  }
  running_.clear();
  cache_.reset();  // drops its references before the pool goes
}

StatusOr<int64_t> Engine::Submit(std::unique_ptr<EngineRequest>& request) {
  EngineRequest& r = *request;
  RETURN_IF_ERROR(r.options.Validate());
  if (r.prompt.empty()) return InvalidArgument("the prompt has no tokens");
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] < 0 || r.prompt[i] >= model_.config().n_vocab) {
      return InvalidArgument(StrFormat("prompt token #%zu has id %d, outside the vocabulary [0, %lld)", i,
                                       r.prompt[i], static_cast<long long>(model_.config().n_vocab)));
    }
  }
  if (static_cast<int64_t>(r.prompt.size()) >= context_) {
    return InvalidArgument(StrFormat("the prompt has %zu tokens; the context holds %lld", r.prompt.size(),
                                     static_cast<long long>(context_)));
  }
  if (r.logprobs > 20) return InvalidArgument(StrFormat("logprobs must be at most 20, got %d", r.logprobs));
  std::lock_guard<std::mutex> lock(mu_);
  if (n_waiting_ >= static_cast<int64_t>(options_.max_queue)) {
    return ResourceExhausted(StrFormat("the request queue is full (%lld waiting); retry later",
                                       static_cast<long long>(n_waiting_)));
  }
  auto s = std::make_unique<Sequence>(std::move(request), tokenizer_);
  s->id = next_id_++;
  s->tokens = s->req->prompt;
  s->n_prompt = static_cast<int64_t>(s->tokens.size());
  s->result.prompt_tokens = s->n_prompt;
  s->t_submit = Clock::now();
  for (int32_t t : s->tokens) s->sampler.Accept(t);
  const int64_t id = s->id;
  inbox_.push_back(std::move(s));
  ++n_waiting_;
  return id;
}

void Engine::Cancel(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.insert(id);
}

void Engine::Count(int64_t EngineStats::*counter) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(stats_.*counter);
}

bool Engine::HasWork() const {
  std::lock_guard<std::mutex> lock(mu_);
  return n_waiting_ > 0 || n_running_ > 0;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats s = stats_;
  s.waiting = n_waiting_;
  s.running = n_running_;
  return s;
}

void Engine::TakeArrivals() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : inbox_) {
    by_id_[s->id] = s.get();
    waiting_.Push(std::move(s));
  }
  inbox_.clear();
}

void Engine::ExpireAndCancel() {
  std::unordered_set<int64_t> cancelled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled.swap(cancelled_);
  }
  const Clock::time_point now = Clock::now();
  auto verdict = [&](const Sequence& s, Status* status) {
    if (cancelled.count(s.id) != 0) {
      *status = Cancelled("the request was cancelled");
      return true;
    }
    if (now >= s.req->deadline) {
      *status = DeadlineExceeded(StrFormat("the deadline passed after %zu generated tokens",
                                           s.result.tokens.size()));
      return true;
    }
    return false;
  };
  Status status;
  for (auto& s : running_) {
    if (!s->done && verdict(*s, &status)) Finish(*s, status, "cancelled");
  }
  for (size_t i = 0; i < waiting_.size();) {
    if (verdict(waiting_[i], &status)) {
      DropWaiting(i, status);
    } else {
      ++i;
    }
  }
}

void Engine::DropWaiting(size_t i, const Status& status) {
  std::unique_ptr<Sequence> s = waiting_.Take(i);
  Finish(*s, status, "cancelled");
  by_id_.erase(s->id);  // the sequence dies here
}

SchedulerInput Engine::BuildInput() const {
  SchedulerInput in;
  in.block_tokens = pool_->block_tokens();
  in.total_blocks = pool_->total_blocks();
  in.free_blocks = pool_->free_blocks() + (cache_ ? cache_->EvictableBlocks() : 0);
  for (const auto& s : running_) {
    RunningSequence r;
    r.id = s->id;
    r.n_computed = s->table.n_tokens;
    r.n_known = static_cast<int64_t>(s->tokens.size());
    r.blocks_held = static_cast<int32_t>(s->table.blocks.size());
    r.releasable_blocks = cache_ ? cache_->ReleasableBlocks(s->table) : r.blocks_held;
    in.running.push_back(r);
  }
  // The front of the queue is all a step can admit; peeking further would
  // cost time for nothing.
  const size_t n_waiting = std::min(waiting_.size(), static_cast<size_t>(options_.scheduler.max_running));
  for (size_t i = 0; i < n_waiting; ++i) {
    const Sequence& s = waiting_[i];
    WaitingRequest w;
    w.id = s.id;
    w.n_tokens = static_cast<int64_t>(s.tokens.size());
    w.preempted = s.result.preemptions > 0;
    if (cache_ && !s.req->echo) {
      const PrefixPeek peek =
          cache_->Peek(s.req->ns, std::span<const int32_t>(s.tokens.data(), s.tokens.size() - 1));
      w.n_cached_tokens = peek.n_tokens;
      w.cached_evictable_blocks = peek.evictable_blocks;
    }
    in.waiting.push_back(w);
  }
  return in;
}

bool Engine::Step(ops::Context& ctx) {
  const Clock::time_point t_step = Clock::now();
  TakeArrivals();
  ExpireAndCancel();
  RemoveFinished();
  if (running_.empty() && waiting_.empty()) return false;

  const StepPlan plan = Schedule(BuildInput(), options_.scheduler);
  for (const Rejection& r : plan.reject) {
    size_t i = 0;
    while (i < waiting_.size() && waiting_[i].id != r.id) ++i;
    if (i < waiting_.size()) {
      DropWaiting(i, r.status);
    } else {
      // A running sequence is rejected only when it outgrew the whole pool:
      // it ends like one that reached its context.
      Finish(*by_id_.at(r.id), OkStatus(), "context");
    }
  }
  // Preempted sequences drop their blocks and wait at the front, newest
  // first, so the oldest ends up at the very front.
  for (int64_t id : plan.preempt) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](auto& s) { return s->id == id; });
    ATRIUM_CHECK(it != running_.end(), "preempting unknown sequence %lld", static_cast<long long>(id));
    std::unique_ptr<Sequence> s = std::move(*it);
    running_.erase(it);
    pool_->Release(s->table);
    ++s->result.preemptions;
    Count(&EngineStats::preemptions);
    waiting_.PushFront(std::move(s));
  }
  RemoveFinished();
  // Admissions, in queue order from the front: take their cached prefix
  // first (the references protect it from the evictions below).
  for (const ScheduledChunk& c : plan.admit) {
    std::unique_ptr<Sequence> s = waiting_.PopFront();
    ATRIUM_CHECK(s->id == c.id, "admission order: queue front %lld, plan %lld", static_cast<long long>(s->id),
                 static_cast<long long>(c.id));
    if (c.start > 0) {
      PrefixHit hit =
          cache_->Lookup(s->req->ns, std::span<const int32_t>(s->tokens.data(), static_cast<size_t>(c.start)));
      ATRIUM_CHECK(hit.n_tokens == c.start, "prefix cache served %lld tokens, the plan expected %lld",
                   static_cast<long long>(hit.n_tokens), static_cast<long long>(c.start));
      s->table.blocks = std::move(hit.blocks);
      s->table.n_tokens = hit.n_tokens;
    }
    running_.push_back(std::move(s));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    n_waiting_ = static_cast<int64_t>(waiting_.size() + inbox_.size());
    n_running_ = static_cast<int64_t>(running_.size());
  }

  // Blocks for every chunk, evicting cached blocks only when the pool runs short.
  std::vector<ForwardSeq> batch;
  std::vector<Sequence*> batch_seqs;
  auto add = [&](const ScheduledChunk& c) {
    Sequence* s = by_id_.at(c.id);
    if (s->done) return;
    ATRIUM_CHECK(s->table.n_tokens == c.start, "sequence %lld computed %lld, the plan starts at %lld",
                 static_cast<long long>(c.id), static_cast<long long>(s->table.n_tokens),
                 static_cast<long long>(c.start));
    const int32_t needed = pool_->BlocksNeeded(s->table, c.n_tokens);
    if (needed > pool_->free_blocks() && cache_) cache_->EvictUntilFree(needed);
    if (Status st = pool_->Reserve(s->table, c.n_tokens); !st.ok()) {
      Finish(*s, st, "cancelled");
      return;
    }
    const bool scoring = s->req->echo && c.start < s->n_prompt;
    batch.push_back(ForwardSeq{s->tokens.data() + c.start, c.n_tokens, &s->table, scoring});
    batch_seqs.push_back(s);
    if (!s->started) {
      // Prompt tokens the model runs (the rest came from the prefix cache);
      // a recompute after preemption does not count again.
      s->started = true;
      s->t_first_forward = Clock::now();
      s->result.prefilled_tokens = s->n_prompt - c.start;
    }
  };
  for (const ScheduledChunk& c : plan.decode) add(c);
  for (const ScheduledChunk& c : plan.prefill) add(c);
  for (const ScheduledChunk& c : plan.admit) add(c);
  if (batch.empty()) {
    RemoveFinished();
    return !plan.reject.empty() || !plan.preempt.empty();
  }

  const int64_t n_vocab = model_.config().n_vocab;
  const int64_t rows = Model::LogitRows(batch);
  if (!logits_.defined() || logits_.rows() < rows) logits_ = Tensor::Empty(DType::kF32, {rows, n_vocab});
  Tensor logits = logits_.Rows(0, rows);
  if (Status st = model_.Forward(ctx, batch, *pool_, logits); !st.ok()) {
    for (Sequence* s : batch_seqs) Finish(*s, st.WithContext("forward"), "cancelled");
    RemoveFinished();
    return true;
  }
  Count(&EngineStats::steps);

  // Each entry's logit rows: every token's when it scores its prompt chunk,
  // else its last token's.
  auto n_rows = [&](size_t i) { return batch[i].all_logits ? batch[i].n_tokens : int64_t{1}; };
  row_at_.resize(batch.size());
  for (size_t i = 0, at = 0; i < batch.size(); at += static_cast<size_t>(n_rows(i)), ++i) {
    row_at_[i] = logits.mutable_data<float>() + static_cast<int64_t>(at) * n_vocab;
  }
  auto last_row = [&](size_t i) { return row_at_[i] + (n_rows(i) - 1) * n_vocab; };

  // The next tokens of the sequences that sample this step, drawn on the
  // pool, a sequence per unit: over SmolLM2's 49,152-token vocabulary a
  // top-k draw took ~80 us (32 with TopK) and greedy argmax reads 200 KB,
  // and done one by one on this thread they were a serial stretch of every
  // step (-17% for 16 streams at temperature 0.8). The rest (stops, text,
  // callbacks) stays here, in batch order. Rows that echo the prompt, and
  // requests that want logprobs (of the raw logits, which sampling
  // filters in place), draw below as before.
  drawn_.assign(batch.size(), -1);
  draw_.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    const Sequence& s = *batch_seqs[i];
    if (!batch[i].all_logits && s.req->logprobs < 0 && WillSample(s)) draw_.push_back(i);
  }
  ctx.pool().ParallelFor(static_cast<int64_t>(draw_.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t j = b; j < e; ++j) {
      const size_t i = draw_[static_cast<size_t>(j)];
      drawn_[i] = batch_seqs[i]->sampler.Sample(last_row(i), static_cast<int32_t>(n_vocab));
    }
  });

  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence& s = *batch_seqs[i];
    // Forward advanced the table past the chunk.
    if (batch[i].all_logits) ScorePrompt(s, s.table.n_tokens - batch[i].n_tokens, n_rows(i), row_at_[i]);
    if (!PromptComputed(s)) continue;  // prefill goes on next step
    // The prompt is computed: its full blocks serve later requests.
    if (cache_ && !s.inserted) {
      cache_->Insert(s.req->ns, std::span<const int32_t>(s.tokens.data(), static_cast<size_t>(s.n_prompt)),
                     s.table);
      s.inserted = true;
    }
    SampleNext(s, last_row(i), drawn_[i]);
  }
  RemoveFinished();
  if (plan.prefill.empty() && plan.admit.empty()) {
    const double seconds = Since(t_step);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.decode_steps;
    stats_.decode_tokens += static_cast<int64_t>(batch.size());
    stats_.decode_seconds += seconds;
  }
  return true;
}

void Engine::ScorePrompt(Sequence& s, int64_t start, int64_t n_rows, const float* logits) {
  const int64_t n_vocab = model_.config().n_vocab;
  const int32_t top = std::max(s.req->logprobs, 0);
  if (start == 0) s.result.prompt_logprobs.push_back(TokenLogprob{s.tokens[0], 0.0f, {}});
  // Row r predicts the token at start + r + 1.
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t next = start + r + 1;
    if (next >= s.n_prompt) break;
    s.result.prompt_logprobs.push_back(Score(logits + r * n_vocab, n_vocab, s.tokens[next], top));
  }
}

bool Engine::PromptComputed(const Sequence& s) {
  return s.table.n_tokens >= static_cast<int64_t>(s.tokens.size());
}

bool Engine::WillSample(const Sequence& s) {
  return PromptComputed(s) && s.n_generated() < s.req->options.max_tokens;
}

bool Engine::SampleNext(Sequence& s, float* logits, int32_t drawn) {
  const GenerationOptions& o = s.req->options;
  if (s.n_generated() >= o.max_tokens) {
    Finish(s, OkStatus(), "length");
    return false;
  }
  const int32_t n_vocab = static_cast<int32_t>(model_.config().n_vocab);
  // Sample filters logits in place; logprobs are of the raw ones.
  if (s.req->logprobs >= 0) raw_logits_.assign(logits, logits + n_vocab);
  const int32_t token = drawn >= 0 ? drawn : s.sampler.Sample(logits, n_vocab);
  const bool stop_token = std::find(o.stop_tokens.begin(), o.stop_tokens.end(), token) != o.stop_tokens.end();
  if (stop_token || (!o.ignore_eos && tokenizer_.IsEndOfGeneration(token))) {
    Finish(s, OkStatus(), "stop");
    return false;
  }
  s.sampler.Accept(token);
  s.tokens.push_back(token);
  s.result.tokens.push_back(token);
  TokenLogprob lp;
  if (s.req->logprobs >= 0) {
    lp = Score(raw_logits_.data(), n_vocab, token, s.req->logprobs);
    s.result.logprobs.push_back(lp);
  }
  const std::string text = s.text.Push(token);
  if (!text.empty() && s.result.text.empty()) s.result.first_token_seconds = Since(s.t_submit);
  s.result.text += text;
  StreamDelta delta;
  delta.text = text;
  delta.tokens = std::span<const int32_t>(&s.tokens.back(), 1);
  if (s.req->logprobs >= 0) delta.logprobs = std::span<const TokenLogprob>(&lp, 1);
  const bool keep = !s.req->on_delta || s.req->on_delta(delta);
  if (s.text.stopped()) {
    Finish(s, OkStatus(), "stop");
    return false;
  }
  if (!keep) {
    Finish(s, Cancelled("the client stopped reading the stream"), "cancelled");
    return false;
  }
  if (s.n_generated() >= o.max_tokens) {
    Finish(s, OkStatus(), "length");
    return false;
  }
  if (static_cast<int64_t>(s.tokens.size()) >= context_) {
    Finish(s, OkStatus(), "context");
    return false;
  }
  return true;
}

void Engine::Finish(Sequence& s, const Status& status, const std::string& reason) {
  if (s.done) return;
  s.done = true;
  if (status.ok()) {
    // Whatever was held back (a possible stop prefix, a cut UTF-8 tail) is final.
    const std::string tail = s.text.Flush();
    if (!tail.empty()) {
      if (s.result.text.empty()) s.result.first_token_seconds = Since(s.t_submit);
      s.result.text += tail;
      StreamDelta delta;
      delta.text = tail;
      if (s.req->on_delta) s.req->on_delta(delta);
    }
  }
  s.result.finish_reason = reason;
  if (s.started) {
    s.result.prefill_seconds = std::chrono::duration<double>(s.t_first_forward - s.t_submit).count();
    s.result.decode_seconds = Since(s.t_first_forward);
  }
  pool_->Release(s.table);
  Count(&EngineStats::finished);
  if (s.req->on_done) s.req->on_done(status, s.result);
}

void Engine::RemoveFinished() {
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->done) {
      by_id_.erase((*it)->id);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  n_waiting_ = static_cast<int64_t>(waiting_.size() + inbox_.size());
  n_running_ = static_cast<int64_t>(running_.size());
  stats_.kv_blocks_used = pool_->used_blocks();
  stats_.kv_blocks_cached = cache_ ? cache_->cached_blocks() : 0;
  if (cache_) stats_.prefix = cache_->stats();
}

}  // namespace atrium

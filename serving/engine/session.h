// One sequence generating on one model: its KV cache, its token history and
// the loop prefill -> (forward -> sample -> emit)*. A later prompt that
// extends the history (the next chat turn) reuses the cached prefix. The
// batching engine (many sequences per step) builds on the same pieces.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "models/model.h"
#include "models/tokenizer/tokenizer.h"
#include "runtime/sampler.h"

namespace atrium {

struct GenerationOptions {
  SamplingParams sampling;
  int32_t max_tokens = 256;         // new tokens at most
  std::vector<std::string> stop;     // generation ends before any of these texts
  std::vector<int32_t> stop_tokens;  // extra token ids that end generation
  bool ignore_eos = false;           // keep going past end-of-generation tokens (benchmarks)

  Status Validate() const;
};

// A token's log-probability under the model (from the raw logits, before
// any sampling filter), with the most likely alternatives at that position.
struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // (token, logprob), most likely first
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (without a stop token)
  std::string text;             // emitted text (stop string excluded)
  std::string finish_reason;    // "stop" (EOS or stop text/token), "length", "context", "cancelled"
  int64_t prompt_tokens = 0;    // tokens of the prompt
  int64_t prefilled_tokens = 0; // of those, run through the model (the rest came from the cache)
  double prefill_seconds = 0;
  double decode_seconds = 0;
  double first_token_seconds = 0;  // from the call to the first emitted token
  std::vector<TokenLogprob> logprobs;         // per generated token, when asked for
  std::vector<TokenLogprob> prompt_logprobs;  // echo: per prompt token (the first has none: logprob 0)
  int64_t preemptions = 0;                    // times the engine recomputed it to free KV blocks
};

class Session {
 public:
  // context: the KV capacity in tokens (0 = the model's context length).
  Session(Model& model, const Tokenizer& tokenizer, ops::Context& ctx, int64_t context = 0);

  // Generates after `prompt` (token ids). on_text receives text deltas as
  // they become final (never a split UTF-8 character, never part of a stop
  // string); returning false cancels.
  StatusOr<GenerationResult> Generate(const std::vector<int32_t>& prompt, const GenerationOptions& options,
                                      const std::function<bool(std::string_view)>& on_text = {});

  // Forgets the history (the next call prefills from scratch).
  void Reset();
  const std::vector<int32_t>& history() const { return history_; }
  int64_t context() const { return kv_->capacity(); }

 private:
  Model& model_;
  const Tokenizer& tokenizer_;
  ops::Context& ctx_;
  std::unique_ptr<KvCache> kv_;
  std::vector<int32_t> history_;  // tokens whose K/V are in kv_
  Tensor logits_;                 // [1, n_vocab]
};

}  // namespace atrium

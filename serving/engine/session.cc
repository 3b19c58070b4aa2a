#include "serving/engine/session.h"

#include "serving/engine/text_stream.h"

#include <algorithm>
#include <chrono>

namespace atrium {
namespace {

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Status GenerationOptions::Validate() const {
  RETURN_IF_ERROR(sampling.Validate());
  if (max_tokens < 0) return InvalidArgument(StrFormat("max_tokens must be >= 0, got %d", max_tokens));
  for (const std::string& s : stop) {
    if (s.empty()) return InvalidArgument("a stop string must not be empty");
  }
  return OkStatus();
}

Session::Session(Model& model, const Tokenizer& tokenizer, ops::Context& ctx, int64_t context)
    : model_(model), tokenizer_(tokenizer), ctx_(ctx) {
  const int64_t n_ctx = context > 0 ? std::min(context, model.config().context_length) : model.config().context_length;
  kv_ = model.NewKvCache(n_ctx);
  logits_ = Tensor::Empty(DType::kF32, {1, model.config().n_vocab});
}

void Session::Reset() {
  history_.clear();
  kv_->Clear();
}

StatusOr<GenerationResult> Session::Generate(const std::vector<int32_t>& prompt, const GenerationOptions& options,
                                             const std::function<bool(std::string_view)>& on_text) {
  RETURN_IF_ERROR(options.Validate());
  if (prompt.empty()) return InvalidArgument("the prompt has no tokens");
  if (static_cast<int64_t>(prompt.size()) >= kv_->capacity()) {
    return InvalidArgument(StrFormat("the prompt has %zu tokens; the context holds %lld", prompt.size(),
                                     static_cast<long long>(kv_->capacity())));
  }
  const auto t0 = std::chrono::steady_clock::now();
  GenerationResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());

  // Reuse the cached prefix; at least the last prompt token is run again to
  // get fresh logits.
  size_t common = 0;
  while (common < history_.size() && common < prompt.size() && history_[common] == prompt[common]) ++common;
  common = std::min(common, prompt.size() - 1);
  history_.resize(common);
  kv_->set_size(static_cast<int64_t>(common));

  Sampler sampler(options.sampling);
  for (int32_t t : prompt) sampler.Accept(t);

  const int64_t n_new = static_cast<int64_t>(prompt.size() - common);
  RETURN_IF_ERROR(model_.Forward(ctx_, prompt.data() + common, n_new, *kv_, logits_, false));
  history_.assign(prompt.begin(), prompt.end());
  r.prefilled_tokens = n_new;
  r.prefill_seconds = Since(t0);

  TextStream text(tokenizer_, options.stop);
  bool cancelled = false;
  auto emit = [&](const std::string& delta) {
    if (delta.empty()) return;
    if (r.text.empty()) r.first_token_seconds = Since(t0);
    r.text += delta;
    if (on_text && !on_text(delta)) cancelled = true;
  };

  const auto t_decode = std::chrono::steady_clock::now();
  r.finish_reason = "length";
  const int32_t n_vocab = static_cast<int32_t>(model_.config().n_vocab);
  for (int32_t i = 0; i < options.max_tokens; ++i) {
    const int32_t token = sampler.Sample(logits_.mutable_data<float>(), n_vocab);
    const bool stop_token =
        std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) != options.stop_tokens.end();
    if (stop_token || (!options.ignore_eos && tokenizer_.IsEndOfGeneration(token))) {
      r.finish_reason = "stop";
      break;
    }
    sampler.Accept(token);
    r.tokens.push_back(token);
    emit(text.Push(token));
    if (text.stopped()) {
      r.finish_reason = "stop";
      break;
    }
    if (cancelled) {
      r.finish_reason = "cancelled";
      break;
    }
    if (i + 1 == options.max_tokens) break;  // no forward for a token never sampled
    if (kv_->size() + 1 > kv_->capacity()) {
      r.finish_reason = "context";
      break;
    }
    RETURN_IF_ERROR(model_.Forward(ctx_, &token, 1, *kv_, logits_, false));
    history_.push_back(token);
  }
  emit(text.Flush());
  r.decode_seconds = Since(t_decode);
  return r;
}

}  // namespace atrium

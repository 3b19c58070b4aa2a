#include "serving/worker/request.h"

#include <optional>
#include <random>
#include <string_view>

namespace atrium::worker {
namespace {

rpc::ApiError Bad(const char* field, const std::string& message) {
  return rpc::BadField(std::string("config.") + field, message, "INVALID_GENERATION_CONFIG");
}

}  // namespace

rpc::ApiError ApplyConfig(const v1::GenerationConfig& c, EngineRequest* out) {
  GenerationOptions& o = out->options;
  SamplingParams& s = o.sampling;
  if (c.has_temperature()) s.temperature = c.temperature();
  if (c.has_top_p()) s.top_p = c.top_p();
  if (c.has_top_k()) {
    if (c.top_k() < 0) return Bad("top_k", StrFormat("must be >= 0 (0 = off), got %d", c.top_k()));
    s.top_k = c.top_k();
  }
  if (c.has_min_p()) s.min_p = c.min_p();
  if (c.has_repetition_penalty()) s.repeat_penalty = c.repetition_penalty();
  if (c.has_repetition_last_n()) s.repeat_last_n = c.repetition_last_n();
  if (c.has_presence_penalty()) s.presence_penalty = c.presence_penalty();
  if (c.has_frequency_penalty()) s.frequency_penalty = c.frequency_penalty();
  // The engine's ranges, under the API's names for the two penalties.
  if (const std::optional<SamplingParams::Violation> v = s.FirstViolation()) {
    const std::string_view field = v->field;
    const char* name = field == "repeat_penalty"  ? "repetition_penalty"
                       : field == "repeat_last_n" ? "repetition_last_n"
                                                  : v->field;
    return Bad(name, StrFormat("must be %s, got %g", v->rule, v->value));
  }
  // A random seed is still reported, so any output can be reproduced.
  s.seed = c.has_seed() ? c.seed() : std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  if (c.has_max_tokens()) {
    if (c.max_tokens() < 0) return Bad("max_tokens", StrFormat("must be >= 0, got %d", c.max_tokens()));
    o.max_tokens = c.max_tokens();
  }
  if (c.stop_size() > kMaxStopStrings) {
    return Bad("stop", StrFormat("at most %d stop strings, got %d", kMaxStopStrings, c.stop_size()));
  }
  o.stop.clear();
  for (int i = 0; i < c.stop_size(); ++i) {
    const std::string& stop = c.stop(i);
    const std::string field = StrFormat("stop[%d]", i);
    if (stop.empty()) return Bad(field.c_str(), "a stop string must not be empty");
    if (stop.size() > kMaxStopBytes) {
      return Bad(field.c_str(), StrFormat("at most %zu bytes, got %zu", kMaxStopBytes, stop.size()));
    }
    o.stop.push_back(stop);
  }
  if (c.top_logprobs() < 0 || c.top_logprobs() > kMaxTopLogprobs) {
    return Bad("top_logprobs", StrFormat("must be in [0, %d], got %d", kMaxTopLogprobs, c.top_logprobs()));
  }
  if (c.top_logprobs() > 0 && !c.logprobs()) return Bad("top_logprobs", "needs logprobs = true");
  out->logprobs = c.logprobs() ? c.top_logprobs() : -1;
  out->echo = c.echo();
  if (o.max_tokens == 0 && !out->echo) {
    return Bad("max_tokens", "0 generates nothing; it is only useful with echo (scoring the prompt)");
  }
  o.ignore_eos = c.ignore_eos();
  // The engine's own check, in case its rules are stricter than the above.
  if (Status st = o.Validate(); !st.ok()) return rpc::WithReason(st, "INVALID_GENERATION_CONFIG");
  return rpc::Ok();
}

}  // namespace atrium::worker

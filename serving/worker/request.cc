#include "serving/worker/request.h"

#include <cmath>
#include <random>

namespace atrium::worker {
namespace {

rpc::ApiError Bad(const char* field, const std::string& message) {
  return rpc::BadField(std::string("config.") + field, message, "INVALID_GENERATION_CONFIG");
}

// NaN and infinities are refused for every float field; the ranges follow
// SamplingParams::Validate, checked here to name the public field.
rpc::ApiError CheckFloat(const char* field, float v, float lo, bool lo_open, float hi, bool hi_open) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (ok) return rpc::Ok();
  const std::string range = std::isinf(hi) ? StrFormat("%s %g", lo_open ? ">" : ">=", lo)
                                           : StrFormat("in %s%g, %g%s", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
  return Bad(field, StrFormat("must be a finite number %s, got %g", range.c_str(), v));
}

}  // namespace

rpc::ApiError ApplyConfig(const v1::GenerationConfig& c, EngineRequest* out) {
  constexpr float kInf = INFINITY;
  GenerationOptions& o = out->options;
  SamplingParams& s = o.sampling;
  rpc::ApiError e;
  if (c.has_temperature()) {
    if (!(e = CheckFloat("temperature", c.temperature(), 0, false, kInf, false)).ok()) return e;
    s.temperature = c.temperature();
  }
  if (c.has_top_p()) {
    if (!(e = CheckFloat("top_p", c.top_p(), 0, true, 1, false)).ok()) return e;
    s.top_p = c.top_p();
  }
  if (c.has_top_k()) {
    if (c.top_k() < 0) return Bad("top_k", StrFormat("must be >= 0 (0 = off), got %d", c.top_k()));
    s.top_k = c.top_k();
  }
  if (c.has_min_p()) {
    if (!(e = CheckFloat("min_p", c.min_p(), 0, false, 1, false)).ok()) return e;
    s.min_p = c.min_p();
  }
  if (c.has_repetition_penalty()) {
    if (!(e = CheckFloat("repetition_penalty", c.repetition_penalty(), 0, true, kInf, false)).ok()) return e;
    s.repeat_penalty = c.repetition_penalty();
  }
  if (c.has_repetition_last_n()) {
    if (c.repetition_last_n() < -1) {
      return Bad("repetition_last_n", StrFormat("must be >= -1 (-1 = all tokens so far), got %d", c.repetition_last_n()));
    }
    s.repeat_last_n = c.repetition_last_n();
  }
  if (c.has_presence_penalty()) {
    if (!std::isfinite(c.presence_penalty())) {
      return Bad("presence_penalty", StrFormat("must be a finite number, got %g", c.presence_penalty()));
    }
    s.presence_penalty = c.presence_penalty();
  }
  if (c.has_frequency_penalty()) {
    if (!std::isfinite(c.frequency_penalty())) {
      return Bad("frequency_penalty", StrFormat("must be a finite number, got %g", c.frequency_penalty()));
    }
    s.frequency_penalty = c.frequency_penalty();
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

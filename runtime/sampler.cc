#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace atrium {

std::optional<SamplingParams::Violation> SamplingParams::FirstViolation() const {
  auto finite = [](float v) { return std::isfinite(v); };
  if (!finite(temperature) || temperature < 0) return Violation{"temperature", "a finite number >= 0", temperature};
  if (!finite(top_p) || top_p <= 0 || top_p > 1) return Violation{"top_p", "a finite number in (0, 1]", top_p};
  if (!finite(min_p) || min_p < 0 || min_p > 1) return Violation{"min_p", "a finite number in [0, 1]", min_p};
  if (!finite(repeat_penalty) || repeat_penalty <= 0) {
    return Violation{"repeat_penalty", "a finite number > 0", repeat_penalty};
  }
  if (repeat_last_n < -1) {
    return Violation{"repeat_last_n", ">= -1 (-1 = all tokens so far)", static_cast<double>(repeat_last_n)};
  }
  if (!finite(presence_penalty)) return Violation{"presence_penalty", "a finite number", presence_penalty};
  if (!finite(frequency_penalty)) return Violation{"frequency_penalty", "a finite number", frequency_penalty};
  return std::nullopt;
}

Status SamplingParams::Validate() const {
  if (const std::optional<Violation> v = FirstViolation()) {
    return InvalidArgument(StrFormat("sampling: %s must be %s, got %g", v->field, v->rule, v->value));
  }
  return OkStatus();
}

// Compiled for AVX-512, AVX2 and plain x86-64, chosen at load (ifunc).
// Sixteen running (max, first index) pairs in GCC vectors: the vectorizer
// leaves a scalar scan alone at -O2.
__attribute__((target_clones("avx512f", "avx2", "default"))) int32_t Argmax(const float* x, int32_t n) {
  if (n <= 0) return 0;
  using Lanes = float __attribute__((vector_size(64)));
  using Index = int32_t __attribute__((vector_size(64)));
  constexpr int32_t kLanes = 16;
  Lanes lane_max;
  Index lane_at, at;
  for (int32_t k = 0; k < kLanes; ++k) {
    lane_max[k] = x[0];
    lane_at[k] = 0;
    at[k] = k;
  }
  int32_t i = 0;
  for (; i + kLanes <= n; i += kLanes, at += kLanes) {
    Lanes v;
    std::memcpy(&v, x + i, sizeof(v));
    const Index greater = v > lane_max;  // strictly: a lane keeps its first maximum
    lane_max = greater ? v : lane_max;
    lane_at = greater ? at : lane_at;
  }
  float best = x[0];
  int32_t best_at = 0;
  for (int32_t k = 0; k < kLanes; ++k) {
    if (lane_max[k] > best || (lane_max[k] == best && lane_at[k] < best_at)) {
      best = lane_max[k];
      best_at = lane_at[k];
    }
  }
  for (; i < n; ++i) {
    if (x[i] > best) {
      best = x[i];
      best_at = i;
    }
  }
  return best_at;
}

namespace {
// Better first: the higher logit, then the lower id (llama.cpp's order).
bool ByLogit(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}
}  // namespace

void TopK(const float* logits, int32_t n, int32_t k, std::vector<std::pair<float, int32_t>>& out) {
  out.clear();
  if (k <= 0) return;
  if (k < n) {
    // Candidates are what beats the k-th best so far. A later token that
    // only ties it has a higher id, so it loses the tie: > is exact.
    const size_t cap = std::max<size_t>(4 * static_cast<size_t>(k), 256);
    float threshold = -INFINITY;
    auto keep_best = [&] {
      std::nth_element(out.begin(), out.begin() + (k - 1), out.end(), ByLogit);
      out.resize(static_cast<size_t>(k));
      threshold = out.back().first;
    };
    for (int32_t i = 0; i < n; ++i) {
      if (logits[i] > threshold) {
        out.emplace_back(logits[i], i);
        if (out.size() >= cap) keep_best();
      }
    }
    if (out.size() >= static_cast<size_t>(k)) {
      if (out.size() > static_cast<size_t>(k)) keep_best();
      std::sort(out.begin(), out.end(), ByLogit);
      return;
    }
    out.clear();  // fewer than k logits above -inf: rank them all
  }
  for (int32_t i = 0; i < n; ++i) {
    if (!std::isnan(logits[i])) out.emplace_back(logits[i], i);  // NaN has no rank
  }
  const size_t keep = std::min(static_cast<size_t>(k), out.size());
  if (keep == out.size()) {
    std::sort(out.begin(), out.end(), ByLogit);
  } else {
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(), ByLogit);
    out.resize(keep);
  }
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

void Sampler::Accept(int32_t token) {
  if (params_.repeat_last_n == 0) return;
  recent_.push_back(token);
  if (params_.repeat_last_n > 0 && static_cast<int32_t>(recent_.size()) > params_.repeat_last_n) {
    recent_.pop_front();
  }
}

void Sampler::ApplyPenalties(float* logits, int32_t n_vocab) const {
  const bool any = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                   params_.frequency_penalty != 0.0f;
  if (!any || recent_.empty()) return;
  std::unordered_map<int32_t, int> counts;
  for (int32_t t : recent_) {
    if (t >= 0 && t < n_vocab) ++counts[t];
  }
  for (const auto& [t, count] : counts) {
    float& l = logits[t];
    l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    l -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
  }
}

int32_t Sampler::Sample(float* logits, int32_t n_vocab) {
  ApplyPenalties(logits, n_vocab);
  if (params_.temperature <= 0.0f) {
    // Greedy; ties go to the lowest id, as in llama.cpp.
    return Argmax(logits, n_vocab);
  }
  TopK(logits, n_vocab, params_.top_k > 0 ? std::min(params_.top_k, n_vocab) : n_vocab, candidates_);
  // Probabilities at temperature 1 for the top-p and min-p filters (llama.cpp
  // applies them before temperature scaling), into probs_.
  auto softmax = [&](float temp) {
    probs_.resize(candidates_.size());
    double sum = 0;
    for (size_t i = 0; i < probs_.size(); ++i) {
      probs_[i] = std::exp(static_cast<double>(candidates_[i].first - candidates_[0].first) / temp);
      sum += probs_[i];
    }
    for (double& x : probs_) x /= sum;
  };
  if (params_.top_p < 1.0f) {
    softmax(1.0f);
    double cum = 0;
    size_t n = probs_.size();
    for (size_t i = 0; i < probs_.size(); ++i) {
      cum += probs_[i];
      if (cum >= params_.top_p) {
        n = i + 1;
        break;
      }
    }
    candidates_.resize(std::max<size_t>(n, 1));
  }
  if (params_.min_p > 0.0f) {
    softmax(1.0f);
    size_t n = 1;
    while (n < probs_.size() && probs_[n] >= params_.min_p * probs_[0]) ++n;
    candidates_.resize(n);
  }
  softmax(params_.temperature);
  // Inverse-CDF draw: one uniform number, no distribution object to build.
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double cum = 0;
  for (size_t i = 0; i < probs_.size(); ++i) {
    cum += probs_[i];
    if (u < cum) return candidates_[i].second;
  }
  return candidates_.back().second;
}

}  // namespace atrium

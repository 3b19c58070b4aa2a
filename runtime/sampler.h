// Logits -> token. The order follows llama.cpp's default chain so the same
// flags mean the same thing: penalties, top-k, top-p, min-p, temperature,
// then a draw from the seeded generator. temperature == 0 is greedy.
#pragma once

#include <cstdint>
#include <random>
#include <deque>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/status.h"

namespace atrium {

struct SamplingParams {
  float temperature = 0.8f;        // 0 = greedy (argmax)
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // 1 = off; divides positive logits of recent tokens
  int32_t repeat_last_n = 64;      // window of the penalties (0 = off, -1 = whole history)
  float presence_penalty = 0.0f;   // subtracted once from every recent token
  float frequency_penalty = 0.0f;  // subtracted per occurrence
  uint64_t seed = 0xA77D1u;        // same seed, same output

  // A parameter out of its range (NaN and infinities included): its name
  // here, the rule it breaks ("a finite number in (0, 1]") and its value.
  struct Violation {
    const char* field;
    const char* rule;
    double value;
  };
  // The first parameter out of range, if any. The one statement of the
  // ranges: Validate words it for the engine, the worker for its API.
  std::optional<Violation> FirstViolation() const;
  // INVALID_ARGUMENT naming the field for NaN, negative or out-of-range values.
  Status Validate() const;
};

// The index of the largest of x[0 .. n), the lowest on ties (as
// std::max_element, NaN never chosen unless x[0] is one), in one vectorized
// pass: greedy decoding takes it over the whole vocabulary every token.
int32_t Argmax(const float* x, int32_t n);

// The k best (logit, id) pairs of logits [n], sorted: higher logit first,
// the lower id on ties (llama.cpp's order); all n when k >= n. NaN logits
// are left out. One pass that
// keeps only what beats the k-th best seen so far, which after the first
// few thousand tokens is almost nothing: ~20 us for k = 40 over a
// 49,152-token vocabulary, where a partial_sort of every pair took ~150.
void TopK(const float* logits, int32_t n, int32_t k, std::vector<std::pair<float, int32_t>>& out);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token from logits [n_vocab]; logits are modified (penalties,
  // filters). Does not record it: call Accept.
  int32_t Sample(float* logits, int32_t n_vocab);
  // Records a token (prompt or generated) for the penalties.
  void Accept(int32_t token);
  const SamplingParams& params() const { return params_; }

 private:
  void ApplyPenalties(float* logits, int32_t n_vocab) const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  // Reused across calls: no allocation per token once warm.
  std::vector<std::pair<float, int32_t>> candidates_;
  std::vector<double> probs_;
};

}  // namespace atrium

#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace atrium {
namespace {

std::vector<float> Logits() { return {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f}; }

int32_t SampleOnce(SamplingParams p, std::vector<float> logits, const std::vector<int32_t>& history = {}) {
  Sampler s(p);
  for (int32_t t : history) s.Accept(t);
  return s.Sample(logits.data(), static_cast<int32_t>(logits.size()));
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(SampleOnce(p, Logits()), 1);
}

// Argmax equals std::max_element (first of the largest) for every length
// around the vector width, ties, negative and infinite values, and NaN.
TEST(SamplerTest, ArgmaxEqualsMaxElement) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-3, 3);  // many ties
  for (int32_t n = 1; n <= 70; ++n) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float& v : x) v = static_cast<float>(small(rng)) - 10.0f;
      if (trial % 5 == 1) x[static_cast<size_t>(rng() % n)] = INFINITY;
      if (trial % 5 == 2) x[static_cast<size_t>(rng() % n)] = NAN;
      if (trial % 5 == 3) x[static_cast<size_t>(rng() % n)] = -0.0f;
      const int32_t want = static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
      ASSERT_EQ(Argmax(x.data(), n), want) << "n=" << n << " trial " << trial;
    }
  }
  std::vector<float> all_nan(33, NAN);
  EXPECT_EQ(Argmax(all_nan.data(), 33), 0);
}

// The one-pass top-k gives what ranking every (logit, id) pair gives: the
// same pairs in the same order, ties to the lower id, on rows with many
// ties, an ascending row (every token beats the threshold), -inf and NaN
// entries, and k from 1 to past the row.
TEST(SamplerTest, TopKEqualsRankingEveryToken) {
  std::mt19937 rng(5);
  auto reference = [](const std::vector<float>& x, int32_t k) {
    std::vector<std::pair<float, int32_t>> all;
    for (int32_t i = 0; i < static_cast<int32_t>(x.size()); ++i) {
      if (!std::isnan(x[i])) all.emplace_back(x[i], i);
    }
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    all.resize(std::min(all.size(), static_cast<size_t>(k)));
    return all;
  };
  for (int32_t n : {1, 7, 300, 5000, 49152}) {
    for (int shape = 0; shape < 4; ++shape) {
      std::vector<float> x(static_cast<size_t>(n));
      std::uniform_int_distribution<int> few(0, 12);
      std::normal_distribution<float> normal(0.0f, 3.0f);
      for (int32_t i = 0; i < n; ++i) {
        x[static_cast<size_t>(i)] = shape == 0   ? static_cast<float>(few(rng))  // ties everywhere
                                    : shape == 1 ? static_cast<float>(i)      // each beats the last
                                                 : normal(rng);
      }
      if (shape == 3 && n > 10) {
        x[3] = -INFINITY;
        x[9] = INFINITY;
        x[5] = NAN;
      }
      for (int32_t k : {1, 2, 40, 257, n, n + 5}) {
        std::vector<std::pair<float, int32_t>> got;
        TopK(x.data(), n, k, got);
        ASSERT_EQ(got, reference(x, k)) << "n=" << n << " shape=" << shape << " k=" << k;
      }
    }
  }
}

TEST(SamplerTest, RepeatPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p;
  p.temperature = 0;
  p.repeat_penalty = 2.0f;
  // Token 1 (3.0) and 3 (3.0) seen -> 1.5 each; token 2 (2.0) wins.
  EXPECT_EQ(SampleOnce(p, Logits(), {1, 3}), 2);
}

TEST(SamplerTest, PresenceAndFrequencyPenalties) {
  SamplingParams p;
  p.temperature = 0;
  p.frequency_penalty = 0.6f;
  // Token 1 seen twice: 3.0 - 1.2 = 1.8 < token 3's 3.0.
  EXPECT_EQ(SampleOnce(p, Logits(), {1, 1}), 3);
  p.frequency_penalty = 0;
  p.presence_penalty = 1.5f;
  // Tokens 1 and 3 seen: 1.5 each, token 2 (2.0) wins.
  EXPECT_EQ(SampleOnce(p, Logits(), {1, 3, 3}), 2);
}

TEST(SamplerTest, RepeatWindowForgetsOldTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 10;
  p.repeat_last_n = 2;
  // Token 1 fell out of the window of the last 2 tokens.
  EXPECT_EQ(SampleOnce(p, Logits(), {1, 4, 5}), 1);
}

TEST(SamplerTest, TopKOneIsGreedy) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 1;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    p.seed = seed;
    EXPECT_EQ(SampleOnce(p, Logits()), 1);
  }
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keeps tokens with p >= 0.5 * p(top): logits 3, 3 only (2.0 is e^-1 = 0.37)
  for (uint64_t seed = 0; seed < 50; ++seed) {
    p.seed = seed;
    const int32_t t = SampleOnce(p, Logits());
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(SamplerTest, TopPKeepsSmallestNucleus) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.min_p = 0;
  p.top_p = 0.5f;  // the two 3.0 tokens hold ~0.6 of the mass; the first alone 0.3
  std::map<int32_t, int> seen;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    p.seed = seed;
    ++seen[SampleOnce(p, Logits())];
  }
  for (const auto& [t, n] : seen) EXPECT_TRUE(t == 1 || t == 3) << t;
  EXPECT_EQ(seen.size(), 2u);
}

TEST(SamplerTest, SameSeedSameSequence) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  p.seed = 42;
  std::vector<float> base(100);
  for (int i = 0; i < 100; ++i) base[i] = std::sin(i * 0.37f);
  auto run = [&] {
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> l = base;
      out.push_back(s.Sample(l.data(), 100));
      s.Accept(out.back());
    }
    return out;
  };
  EXPECT_EQ(run(), run());
  p.seed = 43;
  const std::vector<int32_t> other = run();
  p.seed = 42;
  EXPECT_NE(run(), other);
}

TEST(SamplerTest, HighTemperatureSpreadsLowTemperatureConcentrates) {
  SamplingParams p;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  auto count_top = [&](float temp) {
    p.temperature = temp;
    int top = 0;
    for (uint64_t seed = 0; seed < 300; ++seed) {
      p.seed = seed;
      const int32_t t = SampleOnce(p, Logits());
      top += (t == 1 || t == 3);
    }
    return top;
  };
  EXPECT_GT(count_top(0.1f), 295);
  EXPECT_LT(count_top(5.0f), 200);
}

TEST(SamplerTest, ValidateRejectsBadValues) {
  SamplingParams p;
  p.temperature = NAN;
  EXPECT_EQ(p.Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.Validate().message().find("temperature"), std::string::npos);
  p = SamplingParams();
  p.top_p = 0;
  EXPECT_FALSE(p.Validate().ok());
  p = SamplingParams();
  p.repeat_penalty = -1;
  EXPECT_FALSE(p.Validate().ok());
  p = SamplingParams();
  p.min_p = 2;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_TRUE(SamplingParams().Validate().ok());
}

}  // namespace
}  // namespace atrium

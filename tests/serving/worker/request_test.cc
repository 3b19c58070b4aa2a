// Public GenerationConfig -> engine options: defaults, every field, and
// INVALID_ARGUMENT naming the field for each bad value.
#include "serving/worker/request.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace atrium::worker {
namespace {

// The field an error names, or "" when the config is accepted.
std::string BadFieldOf(const v1::GenerationConfig& c) {
  EngineRequest r;
  const rpc::ApiError e = ApplyConfig(c, &r);
  if (e.ok()) return "";
  EXPECT_EQ(e.status.code(), StatusCode::kInvalidArgument) << e.status.ToString();
  EXPECT_EQ(e.status.message().rfind(e.field + ": ", 0), 0u) << "the message starts with the field";
  return e.field;
}

TEST(ApplyConfigTest, UnsetFieldsKeepTheEngineDefaults) {
  EngineRequest r;
  ASSERT_TRUE(ApplyConfig(v1::GenerationConfig(), &r).ok());
  const GenerationOptions defaults;
  EXPECT_EQ(r.options.sampling.temperature, defaults.sampling.temperature);
  EXPECT_EQ(r.options.sampling.top_k, defaults.sampling.top_k);
  EXPECT_EQ(r.options.sampling.top_p, defaults.sampling.top_p);
  EXPECT_EQ(r.options.max_tokens, defaults.max_tokens);
  EXPECT_EQ(r.logprobs, -1);
  EXPECT_FALSE(r.echo);
}

TEST(ApplyConfigTest, EveryFieldReachesTheEngine) {
  v1::GenerationConfig c;
  c.set_temperature(0);
  c.set_top_p(0.5f);
  c.set_top_k(7);
  c.set_min_p(0.1f);
  c.set_repetition_penalty(1.2f);
  c.set_repetition_last_n(-1);
  c.set_presence_penalty(0.5f);
  c.set_frequency_penalty(-0.25f);
  c.set_seed(42);
  c.set_max_tokens(9);
  c.add_stop("\n\n");
  c.set_logprobs(true);
  c.set_top_logprobs(3);
  c.set_echo(true);
  c.set_ignore_eos(true);
  EngineRequest r;
  ASSERT_TRUE(ApplyConfig(c, &r).ok());
  const SamplingParams& s = r.options.sampling;
  EXPECT_EQ(s.temperature, 0);
  EXPECT_EQ(s.top_p, 0.5f);
  EXPECT_EQ(s.top_k, 7);
  EXPECT_EQ(s.min_p, 0.1f);
  EXPECT_EQ(s.repeat_penalty, 1.2f);
  EXPECT_EQ(s.repeat_last_n, -1);
  EXPECT_EQ(s.presence_penalty, 0.5f);
  EXPECT_EQ(s.frequency_penalty, -0.25f);
  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(r.options.max_tokens, 9);
  ASSERT_EQ(r.options.stop.size(), 1u);
  EXPECT_EQ(r.options.stop[0], "\n\n");
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_TRUE(r.echo);
  EXPECT_TRUE(r.options.ignore_eos);
}

TEST(ApplyConfigTest, AnUnsetSeedIsDrawnAndDiffers) {
  EngineRequest a, b;
  ASSERT_TRUE(ApplyConfig(v1::GenerationConfig(), &a).ok());
  ASSERT_TRUE(ApplyConfig(v1::GenerationConfig(), &b).ok());
  EXPECT_NE(a.options.sampling.seed, b.options.sampling.seed);
}

TEST(ApplyConfigTest, BadValuesNameTheirField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  v1::GenerationConfig c;
  c.set_temperature(nan);
  EXPECT_EQ(BadFieldOf(c), "config.temperature");
  c.set_temperature(-1);
  EXPECT_EQ(BadFieldOf(c), "config.temperature");
  c.set_temperature(inf);
  EXPECT_EQ(BadFieldOf(c), "config.temperature");
  c.Clear();
  c.set_top_p(0);
  EXPECT_EQ(BadFieldOf(c), "config.top_p");
  c.set_top_p(1.5f);
  EXPECT_EQ(BadFieldOf(c), "config.top_p");
  c.Clear();
  c.set_top_k(-1);
  EXPECT_EQ(BadFieldOf(c), "config.top_k");
  c.Clear();
  c.set_min_p(2);
  EXPECT_EQ(BadFieldOf(c), "config.min_p");
  c.Clear();
  c.set_repetition_penalty(0);
  EXPECT_EQ(BadFieldOf(c), "config.repetition_penalty");
  c.Clear();
  c.set_repetition_last_n(-2);
  EXPECT_EQ(BadFieldOf(c), "config.repetition_last_n");
  c.Clear();
  c.set_presence_penalty(nan);
  EXPECT_EQ(BadFieldOf(c), "config.presence_penalty");
  c.Clear();
  c.set_frequency_penalty(-inf);
  EXPECT_EQ(BadFieldOf(c), "config.frequency_penalty");
  c.Clear();
  c.set_max_tokens(-1);
  EXPECT_EQ(BadFieldOf(c), "config.max_tokens");
  c.set_max_tokens(0);  // nothing to do without echo
  EXPECT_EQ(BadFieldOf(c), "config.max_tokens");
  c.set_echo(true);
  EXPECT_EQ(BadFieldOf(c), "");
  c.Clear();
  c.add_stop("");
  EXPECT_EQ(BadFieldOf(c), "config.stop[0]");
  c.Clear();
  const std::string x = "x";
  for (int i = 0; i <= kMaxStopStrings; ++i) c.add_stop(x);
  EXPECT_EQ(BadFieldOf(c), "config.stop");
  c.Clear();
  c.set_logprobs(true);
  c.set_top_logprobs(21);
  EXPECT_EQ(BadFieldOf(c), "config.top_logprobs");
  c.set_logprobs(false);
  c.set_top_logprobs(2);
  EXPECT_EQ(BadFieldOf(c), "config.top_logprobs");
}

}  // namespace
}  // namespace atrium::worker

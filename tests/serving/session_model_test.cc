// The generation loop on the real SmolLM2 file: stop strings, max tokens,
// seeds, streaming deltas, prefix reuse across turns, and bad options.
#include "serving/engine/session.h"

#include <gtest/gtest.h>

#include "tests/serving/smollm2_fixture.h"

namespace atrium {
namespace {

using SessionTest = testing::SmolLm2Test;

TEST_F(SessionTest, MaxTokensAndStreamingDeltas) {
  Session s(*model_, *tokenizer_, ctx_, 256);
  std::string streamed;
  int deltas = 0;
  auto r = s.Generate(Prompt("The history of the printing press"), Greedy(20), [&](std::string_view d) {
    streamed.append(d);
    ++deltas;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tokens.size(), 20u);
  EXPECT_EQ(r->finish_reason, "length");
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->text, tokenizer_->Decode(r->tokens));
  EXPECT_GT(deltas, 1);
}

TEST_F(SessionTest, StopStringEndsBeforeIt) {
  Session s(*model_, *tokenizer_, ctx_, 256);
  const std::vector<int32_t> prompt = Prompt("List the planets of the solar system:");
  auto full = s.Generate(prompt, Greedy(40));
  ASSERT_TRUE(full.ok());
  ASSERT_GT(full->text.size(), 20u);
  // Stop at a piece of text from the middle of the greedy output.
  const std::string stop = full->text.substr(full->text.size() / 2, 4);
  const std::string want = full->text.substr(0, full->text.find(stop));
  GenerationOptions o = Greedy(40);
  o.stop = {stop};
  s.Reset();
  std::string streamed;
  auto r = s.Generate(prompt, o, [&](std::string_view d) {
    streamed.append(d);
    return true;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, want);
  EXPECT_EQ(streamed, want);
  EXPECT_EQ(r->finish_reason, "stop");
}

TEST_F(SessionTest, SameSeedSameTextOtherSeedOtherText) {
  GenerationOptions o;
  o.sampling.temperature = 1.0f;
  o.sampling.top_k = 0;
  o.sampling.top_p = 1.0f;
  o.sampling.min_p = 0;
  o.max_tokens = 24;
  o.sampling.seed = 1234;
  const std::vector<int32_t> prompt = Prompt("Once upon a time");
  Session a(*model_, *tokenizer_, ctx_, 128), b(*model_, *tokenizer_, ctx_, 128);
  auto ra = a.Generate(prompt, o);
  auto rb = b.Generate(prompt, o);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->tokens, rb->tokens);
  o.sampling.seed = 99;
  b.Reset();
  auto rc = b.Generate(prompt, o);
  ASSERT_TRUE(rc.ok());
  EXPECT_NE(ra->tokens, rc->tokens);
}

TEST_F(SessionTest, NextTurnReusesCachedPrefixAndMatchesFreshRun) {
  Session chat(*model_, *tokenizer_, ctx_, 512);
  const std::vector<int32_t> first = Prompt("Question: what is the boiling point of water? Answer:");
  auto r1 = chat.Generate(first, Greedy(12));
  ASSERT_TRUE(r1.ok());
  std::vector<int32_t> second = first;
  second.insert(second.end(), r1->tokens.begin(), r1->tokens.end());
  const std::vector<int32_t> more = Prompt(" Question: and its freezing point? Answer:");
  second.insert(second.end(), more.begin(), more.end());
  auto r2 = chat.Generate(second, Greedy(12));
  ASSERT_TRUE(r2.ok());
  EXPECT_LT(r2->prefilled_tokens, r2->prompt_tokens);  // the first turn came from the cache
  Session fresh(*model_, *tokenizer_, ctx_, 512);
  auto r3 = fresh.Generate(second, Greedy(12));
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->prefilled_tokens, r3->prompt_tokens);
  EXPECT_EQ(r2->tokens, r3->tokens);
}

TEST_F(SessionTest, CancelFromCallbackStops) {
  Session s(*model_, *tokenizer_, ctx_, 128);
  int calls = 0;
  auto r = s.Generate(Prompt("Count: one, two, three,"), Greedy(50), [&](std::string_view) { return ++calls < 3; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, "cancelled");
  EXPECT_LT(r->tokens.size(), 50u);
}

TEST_F(SessionTest, BadOptionsAndPromptsAreInvalidArgument) {
  Session s(*model_, *tokenizer_, ctx_, 16);
  GenerationOptions o = Greedy(-1);
  EXPECT_EQ(s.Generate(Prompt("hi"), o).status().code(), StatusCode::kInvalidArgument);
  o = Greedy(4);
  o.sampling.temperature = NAN;
  EXPECT_EQ(s.Generate(Prompt("hi"), o).status().code(), StatusCode::kInvalidArgument);
  o = Greedy(4);
  o.stop = {""};
  EXPECT_EQ(s.Generate(Prompt("hi"), o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Generate({}, Greedy(4)).status().code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> long_prompt(40, 28);
  EXPECT_EQ(s.Generate(long_prompt, Greedy(4)).status().code(), StatusCode::kInvalidArgument);
  // The session still works afterwards.
  EXPECT_TRUE(s.Generate(Prompt("hi"), Greedy(4)).ok());
}

TEST_F(SessionTest, ContextFullEndsWithReasonContext) {
  Session s(*model_, *tokenizer_, ctx_, 12);
  GenerationOptions o = Greedy(100);
  o.ignore_eos = true;
  auto r = s.Generate(Prompt("The sea is"), o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, "context");
}

}  // namespace
}  // namespace atrium

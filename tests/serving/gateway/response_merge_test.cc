// Merging stream messages: text and tokens concatenate, last-message
// fields come from the later message.
#include "serving/gateway/response_merge.h"

#include <gtest/gtest.h>

namespace atrium::gateway {
namespace {

TEST(ResponseMergeTest, ConcatenatesAndKeepsTheLastFields) {
  v1::GenerateResponse into;
  v1::GenerateResponse a;
  a.set_text("Hel");
  a.add_token_ids(1);
  a.add_logprobs()->set_token_id(1);
  MergeGenerateResponse(a, &into);
  v1::GenerateResponse b;
  b.set_text("lo");
  b.add_token_ids(2);
  b.add_token_ids(3);
  b.add_logprobs()->set_token_id(2);
  b.add_logprobs()->set_token_id(3);
  b.set_finish_reason(v1::FINISH_REASON_LENGTH);
  b.mutable_usage()->set_prompt_tokens(4);
  b.mutable_usage()->set_completion_tokens(3);
  b.add_prompt_logprobs()->set_token_id(9);
  b.set_seed(42);
  MergeGenerateResponse(b, &into);
  EXPECT_EQ(into.text(), "Hello");
  ASSERT_EQ(into.token_ids_size(), 3);
  EXPECT_EQ(into.token_ids(2), 3);
  ASSERT_EQ(into.logprobs_size(), 3);
  EXPECT_EQ(into.logprobs(1).token_id(), 2);
  EXPECT_EQ(into.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(into.usage().prompt_tokens(), 4);
  EXPECT_EQ(into.usage().completion_tokens(), 3);
  EXPECT_EQ(into.prompt_logprobs_size(), 1);
  EXPECT_EQ(into.seed(), 42u);
}

TEST(ResponseMergeTest, AnEmptyMessageChangesNothing) {
  v1::GenerateResponse into;
  into.set_text("x");
  into.set_seed(7);
  v1::GenerateResponse empty;
  MergeGenerateResponse(empty, &into);
  EXPECT_EQ(into.text(), "x");
  EXPECT_EQ(into.seed(), 7u);
  EXPECT_FALSE(into.has_usage());
}

}  // namespace
}  // namespace atrium::gateway

// Requests refused at the gateway, before any worker: each gets
// INVALID_ARGUMENT naming its field and a stable reason.
#include "serving/gateway/validation.h"

#include <gtest/gtest.h>

#include <cmath>

namespace atrium::gateway {
namespace {

v1::GenerateRequest Generate(const std::string& prompt) {
  v1::GenerateRequest r;
  r.set_model("models/smollm2-135m-instruct");
  r.set_prompt(prompt);
  return r;
}

void ExpectBad(const rpc::ApiError& e, const std::string& field, const std::string& reason) {
  EXPECT_EQ(e.status.code(), StatusCode::kInvalidArgument) << e.status.ToString();
  EXPECT_EQ(e.field, field) << e.status.ToString();
  if (!reason.empty()) {
    EXPECT_EQ(e.reason, reason) << e.status.ToString();
  }
  EXPECT_NE(e.status.message().find(field), std::string::npos) << "the message names the field";
}

TEST(ValidationTest, AcceptsAPlainRequest) {
  const RequestLimits limits;
  v1::GenerateRequest r = Generate("Hello");
  r.mutable_config()->set_temperature(0.7f);
  r.mutable_config()->set_max_tokens(16);
  EXPECT_TRUE(ValidateGenerate(r, limits).ok());
  v1::ChatRequest chat;
  v1::ChatMessage* m = chat.add_messages();
  m->set_role("user");
  m->set_content("Hi");
  EXPECT_TRUE(ValidateChat(chat, limits).ok());
}

TEST(ValidationTest, RefusesMalformedGenerations) {
  const RequestLimits limits;
  ExpectBad(ValidateGenerate(Generate(""), limits), "prompt", "PROMPT_EMPTY");

  v1::GenerateRequest negative = Generate("Hi");
  negative.mutable_config()->set_max_tokens(-1);
  ExpectBad(ValidateGenerate(negative, limits), "config.max_tokens", "INVALID_GENERATION_CONFIG");

  for (float t : {NAN, INFINITY, -1.0f}) {
    v1::GenerateRequest r = Generate("Hi");
    r.mutable_config()->set_temperature(t);
    ExpectBad(ValidateGenerate(r, limits), "config.temperature", "INVALID_GENERATION_CONFIG");
  }
  v1::GenerateRequest top_p = Generate("Hi");
  top_p.mutable_config()->set_top_p(NAN);
  ExpectBad(ValidateGenerate(top_p, limits), "config.top_p", "");
  v1::GenerateRequest stop = Generate("Hi");
  stop.mutable_config()->add_stop("");
  ExpectBad(ValidateGenerate(stop, limits), "config.stop[0]", "");
}

TEST(ValidationTest, ATenMegabytePromptIsTooLongWithTheLimitInTheMessage) {
  const RequestLimits limits;
  const rpc::ApiError e = ValidateGenerate(Generate(std::string(10 << 20, 'a')), limits);
  ExpectBad(e, "prompt", "PROMPT_TOO_LONG");
  EXPECT_NE(e.status.message().find(std::to_string(limits.max_prompt_bytes)), std::string::npos);
  EXPECT_NE(e.status.message().find("10485760"), std::string::npos);
  // Exactly at the limit is fine.
  EXPECT_TRUE(ValidateGenerate(Generate(std::string(limits.max_prompt_bytes, 'a')), limits).ok());
}

TEST(ValidationTest, RefusesMalformedChats) {
  const RequestLimits limits;
  ExpectBad(ValidateChat(v1::ChatRequest(), limits), "messages", "MESSAGES_EMPTY");
  v1::ChatRequest no_role;
  no_role.add_messages()->set_content("Hi");
  ExpectBad(ValidateChat(no_role, limits), "messages[0].role", "INVALID_MESSAGE");
  v1::ChatRequest big;
  for (int i = 0; i < 3; ++i) {
    v1::ChatMessage* m = big.add_messages();
    m->set_role("user");
    m->set_content(std::string(limits.max_prompt_bytes / 2, 'x'));
  }
  ExpectBad(ValidateChat(big, limits), "messages", "PROMPT_TOO_LONG");
}

TEST(ValidationTest, TokenCallsCheckTheirOwnFields) {
  const RequestLimits limits;
  v1::CountTokensRequest neither;
  ExpectBad(ValidateCountTokens(neither, limits), "prompt", "");
  v1::CountTokensRequest both;
  both.set_prompt("x");
  v1::ChatMessage* m = both.add_messages();
  m->set_role("user");
  ExpectBad(ValidateCountTokens(both, limits), "messages", "");
  v1::DetokenizeRequest ids;
  ids.add_token_ids(5);
  ids.add_token_ids(-2);
  ExpectBad(ValidateDetokenize(ids, limits), "token_ids[1]", "TOKEN_OUT_OF_VOCABULARY");
  v1::TokenizeRequest text;
  text.set_text(std::string(limits.max_prompt_bytes + 1, 'a'));
  ExpectBad(ValidateTokenize(text, limits), "text", "PROMPT_TOO_LONG");
  EXPECT_TRUE(ValidateTokenize(v1::TokenizeRequest(), limits).ok()) << "an empty text has no tokens, not an error";
}

}  // namespace
}  // namespace atrium::gateway

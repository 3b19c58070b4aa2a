// Status -> gRPC status with details, and back; UTF-8 hygiene of strings
// that go into proto fields.
#include "serving/worker/rpc_status.h"

#include <gtest/gtest.h>

#include "serving/worker/text.h"

namespace atrium::rpc {
namespace {

TEST(RpcStatusTest, CodesMapOneToOne) {
  for (int c = 1; c <= 16; ++c) {
    const Status s(static_cast<StatusCode>(c), "why");
    const grpc::Status g = ToGrpc(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(g.error_message(), "why");
    EXPECT_EQ(FromGrpc(g).code(), s.code());
  }
  EXPECT_TRUE(ToGrpc(OkStatus()).ok());
  EXPECT_TRUE(ToGrpc(OkStatus()).error_details().empty());
}

TEST(RpcStatusTest, ErrorInfoCarriesReasonDomainAndMetadata) {
  ApiError e = WithReason(NotFound("model 'models/x' is not installed"), "MODEL_NOT_FOUND");
  e.metadata.emplace_back("model", "models/x");
  const DecodedDetails d = DecodeDetails(ToGrpc(e));
  EXPECT_EQ(d.reason, "MODEL_NOT_FOUND");
  EXPECT_EQ(d.domain, kErrorDomain);
  ASSERT_EQ(d.metadata.size(), 1u);
  EXPECT_EQ(d.metadata[0].second, "models/x");
  EXPECT_TRUE(d.bad_fields.empty());
}

TEST(RpcStatusTest, ReasonDefaultsToTheCodeName) {
  EXPECT_EQ(DecodeDetails(ToGrpc(Unavailable("down"))).reason, "UNAVAILABLE");
}

TEST(RpcStatusTest, BadFieldAddsBadRequest) {
  const grpc::Status g = ToGrpc(BadField("config.temperature", "must be finite"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(g.error_message(), "config.temperature: must be finite");
  const DecodedDetails d = DecodeDetails(g);
  ASSERT_EQ(d.bad_fields.size(), 1u);
  EXPECT_EQ(d.bad_fields[0], "config.temperature");
}

TEST(RpcStatusTest, RetryDelayAddsRetryInfo) {
  ApiError e(ResourceExhausted("queue full"));
  e.retry_delay = std::chrono::milliseconds(1500);
  EXPECT_EQ(DecodeDetails(ToGrpc(e)).retry_delay, std::chrono::milliseconds(1500));
}

TEST(RpcStatusTest, GarbageDetailsDecodeToNothing) {
  const DecodedDetails d = DecodeDetails(grpc::Status(grpc::StatusCode::INTERNAL, "x", "\xff\xff\xff"));
  EXPECT_TRUE(d.reason.empty());
}

TEST(ValidUtf8Test, KeepsValidTextAndReplacesInvalidBytes) {
  EXPECT_EQ(worker::ValidUtf8("plain"), "plain");
  EXPECT_EQ(worker::ValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(worker::ValidUtf8("a\xFF" "b"), "a" + fffd + "b");
  EXPECT_EQ(worker::ValidUtf8("cut \xE2\x82"), "cut " + fffd + fffd);      // a character cut at the end
  EXPECT_EQ(worker::ValidUtf8("\xC0\xAF"), fffd + fffd);                   // overlong '/'
  EXPECT_EQ(worker::ValidUtf8("\xED\xA0\x80"), fffd + fffd + fffd);        // a surrogate
  EXPECT_EQ(worker::ValidUtf8("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // past U+10FFFF
  EXPECT_EQ(worker::ValidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

}  // namespace
}  // namespace atrium::rpc

// The gateway's error mapping: quota refusals carry RetryInfo and
// QuotaFailure, a worker's own errors pass unchanged, a lost worker becomes
// UNAVAILABLE with a retry hint.
#include "serving/gateway/errors.h"

#include <gtest/gtest.h>

#include "atrium/v1/error.pb.h"

namespace atrium::gateway {
namespace {

TEST(ErrorsTest, QuotaRefusalCarriesRetryInfoAndQuotaFailure) {
  Admission refused;
  refused.status = ResourceExhausted("tenant 'acme' is over its quota (60 requests per minute); retry after 1.500 s");
  refused.retry_after = std::chrono::milliseconds(1500);
  const grpc::Status s = QuotaExceededError("acme", refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), refused.status.message());
  const rpc::DecodedDetails d = rpc::DecodeDetails(s);
  EXPECT_EQ(d.reason, "QUOTA_EXCEEDED");
  EXPECT_EQ(d.domain, "atrium.dev");
  EXPECT_EQ(d.retry_delay, std::chrono::milliseconds(1500));
  v1::Status detail;
  ASSERT_TRUE(detail.ParseFromString(s.error_details()));
  bool has_quota_failure = false;
  for (const auto& any : detail.details()) {
    if (v1::QuotaFailure f; any.UnpackTo(&f)) {
      has_quota_failure = true;
      ASSERT_EQ(f.violations_size(), 1);
      EXPECT_EQ(f.violations(0).subject(), "tenants/acme/quota");
    }
  }
  EXPECT_TRUE(has_quota_failure);
}

TEST(ErrorsTest, FieldErrorNamesTheFieldOfAnInvalidArgumentOnly) {
  const grpc::Status bad = FieldError(InvalidArgument("page_size must be >= 0, got -1"), "page_size");
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(rpc::DecodeDetails(bad).bad_fields, std::vector<std::string>{"page_size"});
  const grpc::Status missing = FieldError(NotFound("tenant 'acme' not found"), "name");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(rpc::DecodeDetails(missing).bad_fields.empty());
}

TEST(ErrorsTest, WorkerErrorsPassThroughUnchanged) {
  const grpc::Status worker = rpc::ToGrpc(rpc::BadField("config.temperature", "must be finite", "INVALID_GENERATION_CONFIG"));
  ASSERT_TRUE(IsFromWorker(worker));
  const grpc::Status mapped = MapWorkerStatus(worker, "tenants/acme");
  EXPECT_EQ(mapped.error_code(), worker.error_code());
  EXPECT_EQ(mapped.error_message(), worker.error_message());
  EXPECT_EQ(mapped.error_details(), worker.error_details());
  // The worker's own UNAVAILABLE (it is draining) stays the worker's.
  const grpc::Status draining = rpc::ToGrpc(rpc::WithReason(Unavailable("draining"), "WORKER_DRAINING"));
  EXPECT_EQ(rpc::DecodeDetails(MapWorkerStatus(draining, "tenants/acme")).reason, "WORKER_DRAINING");
  EXPECT_TRUE(MapWorkerStatus(grpc::Status::OK, "tenants/acme").ok());
}

TEST(ErrorsTest, ALostWorkerIsUnavailableWithARetryHint) {
  const grpc::Status transport(grpc::StatusCode::UNAVAILABLE, "Socket closed");
  EXPECT_FALSE(IsFromWorker(transport));
  const grpc::Status s = MapWorkerStatus(transport, "tenants/acme");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("tenants/acme"), std::string::npos);
  EXPECT_NE(s.error_message().find("retry"), std::string::npos);
  const rpc::DecodedDetails d = rpc::DecodeDetails(s);
  EXPECT_EQ(d.reason, "WORKER_UNAVAILABLE");
  EXPECT_EQ(d.retry_delay, kWorkerRestartRetry);
  // Any other transport failure reads the same way.
  EXPECT_EQ(MapWorkerStatus(grpc::Status(grpc::StatusCode::INTERNAL, "RST_STREAM"), "tenants/acme").error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(ErrorsTest, TheClientsOwnCancelAndDeadlineStayAsTheyAre) {
  for (grpc::StatusCode code : {grpc::StatusCode::CANCELLED, grpc::StatusCode::DEADLINE_EXCEEDED}) {
    const grpc::Status s = MapWorkerStatus(grpc::Status(code, "x"), "tenants/acme");
    EXPECT_EQ(s.error_code(), code);
  }
  const grpc::Status big = MapWorkerStatus(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too large"), "tenants/a");
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(rpc::DecodeDetails(big).reason, "MESSAGE_TOO_LARGE");
}

TEST(ErrorsTest, CodeNames) {
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(99)), "UNKNOWN");
}

}  // namespace
}  // namespace atrium::gateway

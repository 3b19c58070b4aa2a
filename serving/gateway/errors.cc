#include "serving/gateway/errors.h"

#include <algorithm>

#include "atrium/v1/error.pb.h"

namespace atrium::gateway {

grpc::Status QuotaExceededError(std::string_view tenant_id, const Admission& admission) {
  rpc::ApiError e = rpc::WithReason(admission.status, "QUOTA_EXCEEDED");
  e.retry_delay = std::max(admission.retry_after, std::chrono::milliseconds(1));
  e.metadata.emplace_back("tenant", "tenants/" + std::string(tenant_id));
  e.metadata.emplace_back("retry_after_ms", std::to_string(e.retry_delay.count()));
  return AddQuotaFailure(rpc::ToGrpc(e), "tenants/" + std::string(tenant_id) + "/quota",
                         admission.status.message());
}

grpc::Status AddQuotaFailure(const grpc::Status& status, std::string_view subject, std::string_view description) {
  v1::Status detail;
  if (status.ok() || !detail.ParseFromString(status.error_details())) return status;
  v1::QuotaFailure failure;
  v1::QuotaFailure::Violation* v = failure.add_violations();
  v->set_subject(std::string(subject));
  v->set_description(std::string(description));
  detail.add_details()->PackFrom(failure);
  return grpc::Status(status.error_code(), status.error_message(), detail.SerializeAsString());
}

bool IsFromWorker(const grpc::Status& status) {
  return !status.ok() && rpc::DecodeDetails(status).domain == rpc::kErrorDomain;
}

grpc::Status MapWorkerStatus(const grpc::Status& status, std::string_view tenant) {
  if (status.ok() || IsFromWorker(status)) return status;
  switch (status.error_code()) {
    // The client's own cancel or deadline: the client library said so, and
    // the caller sees the same code it would have without a gateway.
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return status;
    // A message over the limits of the gateway <-> worker channel.
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return rpc::ToGrpc(rpc::WithReason(Status(StatusCode::kResourceExhausted, status.error_message()),
                                         "MESSAGE_TOO_LARGE"));
    default: {
      // UNAVAILABLE (the socket closed: the worker exited or was killed),
      // or anything else the transport made up.
      rpc::ApiError e = rpc::WithReason(
          Unavailable(StrFormat("the worker process of %.*s ended during the call (%s); retry: the next call "
                                "starts a new one",
                                static_cast<int>(tenant.size()), tenant.data(), status.error_message().c_str())),
          "WORKER_UNAVAILABLE");
      e.retry_delay = kWorkerRestartRetry;
      e.metadata.emplace_back("tenant", std::string(tenant));
      return rpc::ToGrpc(e);
    }
  }
}

std::string_view GrpcCodeName(grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  if (c < 0 || c > 16) return "UNKNOWN";
  return StatusCodeName(static_cast<StatusCode>(c));
}

grpc::Status FieldError(const Status& status, std::string field) {
  rpc::ApiError e(status);
  if (status.code() == StatusCode::kInvalidArgument) e.field = std::move(field);
  return rpc::ToGrpc(e);
}

}  // namespace atrium::gateway

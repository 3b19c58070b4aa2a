#include "serving/worker/rpc_status.h"

#include <algorithm>

#include "atrium/v1/error.pb.h"

namespace atrium::rpc {

ApiError BadField(std::string field, std::string message, std::string reason) {
  ApiError e;
  e.status = InvalidArgument(field + ": " + message);
  e.reason = std::move(reason);
  e.field = std::move(field);
  return e;
}

ApiError WithReason(Status status, std::string reason) {
  ApiError e;
  e.status = std::move(status);
  e.reason = std::move(reason);
  return e;
}

grpc::Status ToGrpc(const ApiError& error) {
  const Status& s = error.status;
  if (s.ok()) return grpc::Status::OK;
  v1::Status detail;
  detail.set_code(static_cast<int>(s.code()));
  detail.set_message(s.message());
  v1::ErrorInfo info;
  info.set_reason(error.reason.empty() ? std::string(StatusCodeName(s.code())) : error.reason);
  info.set_domain(kErrorDomain);
  for (const auto& [k, v] : error.metadata) (*info.mutable_metadata())[k] = v;
  detail.add_details()->PackFrom(info);
  if (!error.field.empty()) {
    v1::BadRequest bad;
    v1::BadRequest::FieldViolation* fv = bad.add_field_violations();
    fv->set_field(error.field);
    fv->set_description(s.message());
    detail.add_details()->PackFrom(bad);
  }
  if (error.retry_delay.count() > 0) {
    v1::RetryInfo retry;
    const int64_t ms = error.retry_delay.count();
    retry.mutable_retry_delay()->set_seconds(ms / 1000);
    retry.mutable_retry_delay()->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
    detail.add_details()->PackFrom(retry);
  }
  // Codes outside gRPC's range cannot occur: StatusCode mirrors them.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.message(), detail.SerializeAsString());
}

Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return OkStatus();
  const int code = std::clamp(static_cast<int>(status.error_code()), 1, 16);
  return Status(static_cast<StatusCode>(code), status.error_message());
}

DecodedDetails DecodeDetails(const grpc::Status& status) {
  DecodedDetails out;
  v1::Status detail;
  if (status.error_details().empty() || !detail.ParseFromString(status.error_details())) return out;
  for (const google::protobuf::Any& any : detail.details()) {
    if (v1::ErrorInfo info; any.UnpackTo(&info)) {
      out.reason = info.reason();
      out.domain = info.domain();
      for (const auto& [k, v] : info.metadata()) out.metadata.emplace_back(k, v);
      std::sort(out.metadata.begin(), out.metadata.end());
    } else if (v1::BadRequest bad; any.UnpackTo(&bad)) {
      for (const auto& fv : bad.field_violations()) out.bad_fields.push_back(fv.field());
    } else if (v1::RetryInfo retry; any.UnpackTo(&retry)) {
      out.retry_delay = std::chrono::milliseconds(retry.retry_delay().seconds() * 1000 +
                                                  retry.retry_delay().nanos() / 1000000);
    }
  }
  return out;
}

}  // namespace atrium::rpc

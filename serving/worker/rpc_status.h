// Status -> grpc::Status at the RPC edge. The code maps one to one (our
// StatusCode mirrors gRPC's), the message stays as written for the user, and
// the trailer `grpc-status-details-bin` carries an atrium.v1.Status with an
// ErrorInfo (a stable reason, domain "atrium.dev") and, where they apply,
// BadRequest (the field at fault) and RetryInfo. The gateway uses the same
// helpers for its own errors and passes the worker's through unchanged.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/support/status.h>

#include "runtime/status.h"

namespace atrium::rpc {

inline constexpr const char* kErrorDomain = "atrium.dev";

// An error as the client sees it: the Status and what to fix.
struct ApiError {
  ApiError() = default;
  ApiError(Status s) : status(std::move(s)) {}  // NOLINT: any Status is an ApiError

  Status status;
  // ErrorInfo.reason, UPPER_SNAKE_CASE ("MODEL_NOT_FOUND"); empty: the
  // code's name ("INVALID_ARGUMENT").
  std::string reason;
  // The request field at fault ("config.temperature"); adds BadRequest.
  std::string field;
  // ErrorInfo.metadata.
  std::vector<std::pair<std::string, std::string>> metadata;
  // Adds RetryInfo when > 0.
  std::chrono::milliseconds retry_delay{0};

  bool ok() const { return status.ok(); }
};

inline ApiError Ok() { return ApiError{}; }
// A bad field: INVALID_ARGUMENT with BadRequest; the message names the field.
ApiError BadField(std::string field, std::string message, std::string reason = "");
ApiError WithReason(Status status, std::string reason);

grpc::Status ToGrpc(const ApiError& error);
inline grpc::Status ToGrpc(const Status& status) { return ToGrpc(ApiError(status)); }
// The other way, for clients of the worker (the gateway, tests).
Status FromGrpc(const grpc::Status& status);

// The details a grpc::Status carries, decoded (for tests and the gateway's
// audit log). Missing parts stay empty.
struct DecodedDetails {
  std::string reason;
  std::string domain;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<std::string> bad_fields;
  std::chrono::milliseconds retry_delay{0};
};
DecodedDetails DecodeDetails(const grpc::Status& status);

}  // namespace atrium::rpc

// The gateway's own errors at the gRPC edge, on top of the worker's
// Status -> grpc::Status mapping (serving/worker/rpc_status.h), which the
// gateway shares so both processes describe errors the same way.
//
// Besides the one-to-one code mapping the gateway adds:
//  - quota refusals: RESOURCE_EXHAUSTED with ErrorInfo QUOTA_EXCEEDED,
//    RetryInfo (when to retry) and QuotaFailure (which quota);
//  - the fate of a worker call: the worker's own errors pass through
//    unchanged (they already carry details), while a transport failure (the
//    worker exited or was killed) becomes UNAVAILABLE WORKER_UNAVAILABLE
//    with a message that says the next call restarts it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <grpcpp/support/status.h>

#include "serving/gateway/quota.h"
#include "serving/worker/rpc_status.h"

namespace atrium::gateway {

// How long a client should wait before retrying a call whose worker died:
// about the time a new worker takes to listen.
inline constexpr std::chrono::milliseconds kWorkerRestartRetry{1000};

// The refusal of a call that QuotaLimiter did not admit.
grpc::Status QuotaExceededError(std::string_view tenant_id, const Admission& admission);

// Appends a QuotaFailure detail (subject, description) to a status built by
// rpc::ToGrpc; returns it unchanged when it carries no atrium.v1.Status.
grpc::Status AddQuotaFailure(const grpc::Status& status, std::string_view subject, std::string_view description);

// Whether a worker call's failure came from the worker itself (it carries
// our ErrorInfo), rather than from the transport or the client library.
bool IsFromWorker(const grpc::Status& status);

// The status the gateway's client gets for a finished worker call. `tenant`
// is "tenants/<id>", named in the message of a lost worker.
grpc::Status MapWorkerStatus(const grpc::Status& status, std::string_view tenant);

// A Status about one request field: INVALID_ARGUMENT gets the field as a
// BadRequest detail; other codes pass as they are.
grpc::Status FieldError(const Status& status, std::string field);

// "OK", "NOT_FOUND", ...: the canonical name, for metric labels and logs.
std::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace atrium::gateway

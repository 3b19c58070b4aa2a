#include "serving/gateway/inference_call.h"

#include "serving/gateway/auth.h"
#include "serving/gateway/errors.h"

namespace atrium::gateway {

InferenceCall::InferenceCall(const InferenceDeps& deps, grpc::CallbackServerContext* ctx, std::string method)
    : deps_(deps), ctx_(ctx), record_(deps.sinks, std::move(method)) {}

InferenceCall::~InferenceCall() = default;

void InferenceCall::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

grpc::Status InferenceCall::Admit(const std::string& model, const std::function<rpc::ApiError()>& validate,
                                  bool stream) {
  if (!deps_.gate->Enter()) {
    rpc::ApiError e = rpc::WithReason(Unavailable("the server is shutting down and admits no new calls; retry "
                                                  "on another replica or after the restart"),
                                      "SERVER_DRAINING");
    e.retry_delay = std::chrono::seconds(1);
    return rpc::ToGrpc(e);
  }
  entered_gate_ = true;
  rpc::ApiError error;
  StatusOr<Principal> principal = Authenticate(*deps_.store, ctx_->client_metadata(), &error);
  if (!principal.ok()) return rpc::ToGrpc(error);
  principal_ = *principal;
  record_.set_principal(principal_);
  StatusOr<worker::ModelInfo> info = deps_.models->Find(model, "model", &error);
  if (!info.ok()) return rpc::ToGrpc(error);
  record_.set_model(info->model.name());
  if (rpc::ApiError e = validate(); !e.ok()) return rpc::ToGrpc(e);
  Admission admission = deps_.quota->Admit(principal_.tenant_id, principal_.quota, stream);
  if (!admission.status.ok()) {
    if (deps_.sinks.metrics != nullptr) deps_.sinks.metrics->CountQuotaRejection(principal_.tenant_id);
    return QuotaExceededError(principal_.tenant_id, admission);
  }
  permit_ = std::move(admission.permit);
  stream_ = stream;
  record_.set_generation(stream);
  if (stream_ && deps_.sinks.metrics != nullptr) deps_.sinks.metrics->StreamStarted();
  return grpc::Status::OK;
}

grpc::Status InferenceCall::WorkerStartError(const Status& status) {
  rpc::ApiError e = rpc::WithReason(status, "WORKER_START_FAILED");
  e.retry_delay = kWorkerRestartRetry;
  return rpc::ToGrpc(e);
}

grpc::Status InferenceCall::TakeLease(StatusOr<WorkerLease> lease) {
  if (!lease.ok()) return WorkerStartError(lease.status());
  std::lock_guard<std::mutex> lock(worker_mu_);
  // A cancelled call's lease goes back as this function returns.
  if (cancelled_) return grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled before it reached a worker");
  lease_ = std::move(*lease);
  // No client deadline: the far-future time point, which gRPC reads as none.
  worker_ctx_.set_deadline(ctx_->deadline());
  return grpc::Status::OK;
}

void InferenceCall::WorkerCallStarted() { MarkAndCancel(&InferenceCall::worker_started_, &InferenceCall::cancelled_); }

void InferenceCall::CancelWorkerCall() { MarkAndCancel(&InferenceCall::cancelled_, &InferenceCall::worker_started_); }

void InferenceCall::MarkAndCancel(bool InferenceCall::*mine, bool InferenceCall::*other) {
  bool cancel = false;
  {
    std::lock_guard<std::mutex> lock(worker_mu_);
    this->*mine = true;
    cancel = this->*other;
  }
  if (cancel) worker_ctx_.TryCancel();
}

void InferenceCall::ChargeTokens() {
  if (tokens_charged_) return;
  tokens_charged_ = true;
  // Charged after the work, whatever the call's end: the worker did it.
  // Tokens come only from a worker, so only after admission, and the permit
  // charges its tenant even once its stream slot is released (Tokenize and
  // the like release it at once).
  permit_.ChargeTokens(record_.prompt_tokens() + record_.completion_tokens());
}

void InferenceCall::Finalize(const grpc::Status& status) {
  record_.Finish(status);
  ChargeTokens();
  permit_.Release();
  lease_.Release();
  if (stream_ && deps_.sinks.metrics != nullptr) deps_.sinks.metrics->StreamEnded();
  stream_ = false;
  if (entered_gate_) deps_.gate->Leave();
  entered_gate_ = false;
}

}  // namespace atrium::gateway

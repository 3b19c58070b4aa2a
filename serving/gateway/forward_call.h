// Tokenize, Detokenize and CountTokens through the gateway: admitted like
// every Inference call (inference_call.h), then forwarded to the tenant's
// worker as one asynchronous unary call whose answer is the client's answer
// (the public messages are the worker's, so nothing is translated). A
// client cancel cancels the worker call; the client's deadline bounds it.
//
// These calls take a request from the tenant's quota but no stream slot
// (concurrent_streams counts Generate and Chat), so a tenant at its stream
// limit can still tokenize. No tokens are charged: nothing is generated.
#pragma once

#include <functional>

#include <grpcpp/support/server_callback.h>

#include "serving/gateway/errors.h"
#include "serving/gateway/inference_call.h"

namespace atrium::gateway {

template <typename Request, typename Response>
class ForwardCall final : public InferenceCall, public grpc::ServerUnaryReactor {
 public:
  // stub->async()->Tokenize(ctx, request, response, done).
  using StartFn = std::function<void(internal::Worker::Stub*, grpc::ClientContext*, const Request*, Response*,
                                     std::function<void(grpc::Status)>)>;

  static grpc::ServerUnaryReactor* Start(const InferenceDeps& deps, grpc::CallbackServerContext* ctx,
                                         std::string method, const std::string& model,
                                         const std::function<rpc::ApiError()>& validate, const Request* request,
                                         Response* response, StartFn start) {
    auto* call = new ForwardCall(deps, ctx, std::move(method), request, response, std::move(start));
    const grpc::Status admitted = call->Admit(model, validate, /*stream=*/false);
    if (!admitted.ok()) {
      call->Complete(admitted);
      return call;
    }
    deps.workers->Acquire(call->principal_.tenant_id,
                          [call](StatusOr<WorkerLease> lease) { call->OnWorker(std::move(lease)); });
    return call;
  }

  void OnCancel() override { CancelWorkerCall(); }

  void OnDone() override {
    Finalize(sent_);
    Unref();
  }

 private:
  ForwardCall(const InferenceDeps& deps, grpc::CallbackServerContext* ctx, std::string method, const Request* request,
              Response* response, StartFn start)
      : InferenceCall(deps, ctx, std::move(method)), request_(request), response_(response), start_(std::move(start)) {}

  void OnWorker(StatusOr<WorkerLease> lease) {
    if (grpc::Status taken = TakeLease(std::move(lease)); !taken.ok()) return Complete(taken);
    Ref();  // the worker call's, dropped when it completes
    Ref();  // ours: the whole call may end before this function does
    start_(lease_->stub(), &worker_ctx_, request_, response_, [this](grpc::Status status) {
      Complete(MapWorkerStatus(status, lease_->tenant()));
      Unref();
    });
    WorkerCallStarted();
    Unref();
  }

  void Complete(const grpc::Status& status) {
    sent_ = status;
    if (!status.ok()) response_->Clear();
    Finish(status);
  }

  const Request* const request_;
  Response* const response_;
  const StartFn start_;
  grpc::Status sent_;
};

}  // namespace atrium::gateway

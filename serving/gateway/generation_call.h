// Generate and Chat through the gateway: each public call is one reactor
// that forwards to the tenant's worker over one client stream
// (ClientReadReactor) and never blocks a gRPC thread on it.
//
// Streaming form: worker messages are written to the client as they come;
// while a write is in flight, later messages are merged into one pending
// message (response_merge.h; the writes as the worker's own reactor does
// them, worker/stream_writes.h), so a slow client gets fewer, larger
// messages and the worker is never held up. Unary form: every message is
// merged into the one answer.
//
// Cancellation and deadlines: the worker call carries the client's deadline;
// a client cancel (OnCancel) or a failed write cancels the worker call,
// whose engine request then ends within one step. A worker that dies ends
// the worker call with a transport error, which errors.h turns into
// UNAVAILABLE WORKER_UNAVAILABLE for the client.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include <grpcpp/support/client_callback.h>
#include <grpcpp/support/server_callback.h>

#include "atrium/v1/inference.pb.h"
#include "serving/gateway/inference_call.h"
#include "serving/worker/stream_writes.h"

namespace atrium::gateway {

class GenerationCall : public InferenceCall {
 public:
  // Starts the worker call: stub->async()->Generate(ctx, request, reactor).
  using StartFn = std::function<void(internal::Worker::Stub* stub, grpc::ClientContext* ctx,
                                     grpc::ClientReadReactor<v1::GenerateResponse>* reactor)>;

 protected:
  GenerationCall(const InferenceDeps& deps, grpc::CallbackServerContext* ctx, std::string method, StartFn start);

  // Admission, then the worker. `model` and `validate` as in Admit.
  void Run(const std::string& model, const std::function<rpc::ApiError()>& validate);

  // A worker message: into the answer (under mu_).
  virtual void Deliver(v1::GenerateResponse& message) = 0;
  // Writes or finishes as the state allows (outside mu_). The caller must
  // not touch `this` afterwards unless it holds a reference.
  virtual void Pump() = 0;

  void ServerDone();  // from OnDone: Finalize, then drops the server's reference

  std::mutex mu_;  // guards the state below and record_ once running
  bool worker_done_ = false;  // final_ is set; nothing more will be delivered
  grpc::Status final_;
  grpc::Status sent_;  // what Finish sent

 private:
  class WorkerReader final : public grpc::ClientReadReactor<v1::GenerateResponse> {
   public:
    explicit WorkerReader(GenerationCall* call) : call_(call) {}
    void OnReadDone(bool ok) override { call_->OnWorkerRead(ok); }
    void OnDone(const grpc::Status& status) override { call_->OnWorkerDone(status); }

   private:
    GenerationCall* const call_;
  };

  void OnWorker(StatusOr<WorkerLease> lease);
  void OnWorkerRead(bool ok);
  void OnWorkerDone(const grpc::Status& status);

  const StartFn start_;
  WorkerReader reader_{this};
  v1::GenerateResponse read_msg_;
};

// Inference.Generate and Inference.Chat.
class StreamingGenerationCall final : public GenerationCall,
                                      public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Admits and starts the call; returns the reactor for the handler.
  static grpc::ServerWriteReactor<v1::GenerateResponse>* Start(const InferenceDeps& deps,
                                                               grpc::CallbackServerContext* ctx, std::string method,
                                                               const std::string& model,
                                                               const std::function<rpc::ApiError()>& validate,
                                                               StartFn start);

  void OnWriteDone(bool ok) override;
  void OnCancel() override { CancelWorkerCall(); }
  void OnDone() override { ServerDone(); }

 private:
  using GenerationCall::GenerationCall;
  void Deliver(v1::GenerateResponse& message) override;
  void Pump() override;

  worker::StreamWrites writes_;  // guarded by mu_
};

// Inference.GenerateUnary and Inference.ChatUnary.
class UnaryGenerationCall final : public GenerationCall, public grpc::ServerUnaryReactor {
 public:
  static grpc::ServerUnaryReactor* Start(const InferenceDeps& deps, grpc::CallbackServerContext* ctx,
                                         std::string method, const std::string& model,
                                         const std::function<rpc::ApiError()>& validate, StartFn start,
                                         v1::GenerateResponse* response);

  void OnCancel() override { CancelWorkerCall(); }
  void OnDone() override { ServerDone(); }

 private:
  UnaryGenerationCall(const InferenceDeps& deps, grpc::CallbackServerContext* ctx, std::string method, StartFn start,
                      v1::GenerateResponse* response)
      : GenerationCall(deps, ctx, std::move(method), std::move(start)), response_(response) {}
  void Deliver(v1::GenerateResponse& message) override;
  void Pump() override;

  v1::GenerateResponse* const response_;
  bool finish_started_ = false;  // guarded by mu_
};

}  // namespace atrium::gateway

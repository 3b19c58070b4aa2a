// What every Inference call does at the gateway before and after its worker
// call, in one base class of the calls' reactors:
//
//   admission: the drain gate -> authentication -> the model exists ->
//              the request is valid -> the tenant's quota admits it;
//   the call:  a lease on the tenant's worker (WorkerManager) and the
//              forwarded call (subclasses);
//   the end:   tokens charged to the tenant's quota, its stream slot and
//              the worker lease released, one audit record and the
//              metrics (CallRecord).
//
// A call object deletes itself when its last reference goes: one for the
// server side (dropped in OnDone) and one while a worker call runs (dropped
// in that call's completion), so neither side's last reaction can outlive
// the object.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include "serving/gateway/call_gate.h"
#include "serving/gateway/call_record.h"
#include "serving/gateway/quota.h"
#include "serving/gateway/store.h"
#include "serving/gateway/validation.h"
#include "serving/gateway/worker_manager.h"
#include "serving/worker/model_registry.h"

namespace atrium::gateway {

// The gateway's parts an Inference call uses; all outlive every call.
struct InferenceDeps {
  Store* store = nullptr;
  QuotaLimiter* quota = nullptr;
  WorkerManager* workers = nullptr;
  worker::ModelRegistry* models = nullptr;
  CallGate* gate = nullptr;
  CallSinks sinks;
  RequestLimits limits;
};

class InferenceCall {
 public:
  virtual ~InferenceCall();
  InferenceCall(const InferenceCall&) = delete;
  InferenceCall& operator=(const InferenceCall&) = delete;

 protected:
  InferenceCall(const InferenceDeps& deps, grpc::CallbackServerContext* ctx, std::string method);

  // The admission steps, in order. OK when admitted (the quota permit and
  // principal are then held here); else the status to finish with.
  // `stream`: a Generate or Chat call (counted in the streams gauge).
  grpc::Status Admit(const std::string& model, const std::function<rpc::ApiError()>& validate, bool stream);

  // Charges the tenant's token quota for the call's recorded prompt and
  // completion tokens, once. Called as soon as the worker's counts arrive,
  // before the client's Finish: a client that sends its next call on the
  // answer must meet the charge (tokens per minute) already in place.
  void ChargeTokens();

  // The end: records `status` (what the client was sent), charges tokens if
  // that has not happened, releases the permit, lease and gate. Once, from
  // the server's OnDone.
  void Finalize(const grpc::Status& status);

  // The status of a failed worker start, for the client.
  static grpc::Status WorkerStartError(const Status& status);

  // The worker call and the client's cancel, which may come at any time:
  // before the worker call starts (it then never starts) or while it runs
  // (it is cancelled). From the lease callback: OK with lease_ held and
  // worker_ctx_ bounded by the client's deadline, or the status to finish
  // with (no worker, or the client cancelled first).
  grpc::Status TakeLease(StatusOr<WorkerLease> lease);
  // Once the worker call runs on worker_ctx_: cancels it if the client
  // cancelled meanwhile.
  void WorkerCallStarted();
  // From OnCancel (or a failed write): cancels the worker call if it runs,
  // else keeps it from starting.
  void CancelWorkerCall();

  void Ref() { refs_.fetch_add(1); }
  // Deletes `this` when it was the last reference.
  void Unref();

  const InferenceDeps& deps_;
  grpc::CallbackServerContext* const ctx_;
  CallRecord record_;  // guarded by the subclass's lock once the call runs
  Principal principal_;
  QuotaPermit permit_;
  WorkerLease lease_;
  grpc::ClientContext worker_ctx_;

 private:
  // The start and the cancel each set their flag; whichever comes second
  // (it sees the other's) cancels the worker call.
  void MarkAndCancel(bool InferenceCall::*mine, bool InferenceCall::*other);

  std::mutex worker_mu_;  // guards the two flags below
  bool cancelled_ = false;
  bool worker_started_ = false;
  bool entered_gate_ = false;
  bool stream_ = false;
  bool tokens_charged_ = false;
  std::atomic<int> refs_{1};
};

}  // namespace atrium::gateway

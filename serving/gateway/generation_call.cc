#include "serving/gateway/generation_call.h"

#include <charconv>

#include "serving/gateway/errors.h"
#include "serving/gateway/response_merge.h"

namespace atrium::gateway {
namespace {

// A decimal trailer the worker sends with every Generate/Chat call; -1 when
// absent (the worker died) or malformed.
int64_t TrailerInt(const std::multimap<grpc::string_ref, grpc::string_ref>& trailers, std::string_view key) {
  auto it = trailers.find(grpc::string_ref(key.data(), key.size()));
  if (it == trailers.end()) return -1;
  int64_t v = -1;
  const char* begin = it->second.data();
  const char* end = begin + it->second.size();
  if (std::from_chars(begin, end, v).ptr != end || v < 0) return -1;
  return v;
}

}  // namespace

GenerationCall::GenerationCall(const InferenceDeps& deps, grpc::CallbackServerContext* ctx, std::string method,
                               StartFn start)
    : InferenceCall(deps, ctx, std::move(method)), start_(std::move(start)) {}

void GenerationCall::Run(const std::string& model, const std::function<rpc::ApiError()>& validate) {
  const grpc::Status admitted = Admit(model, validate, /*stream=*/true);
  if (!admitted.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      final_ = admitted;
      worker_done_ = true;
    }
    Pump();
    return;
  }
  deps_.workers->Acquire(principal_.tenant_id, [this](StatusOr<WorkerLease> lease) { OnWorker(std::move(lease)); });
}

void GenerationCall::OnWorker(StatusOr<WorkerLease> lease) {
  if (grpc::Status taken = TakeLease(std::move(lease)); !taken.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      final_ = std::move(taken);
      worker_done_ = true;
    }
    Pump();  // finishes; may delete `this`
    return;
  }
  Ref();  // the worker call's, dropped at the end of OnWorkerDone
  Ref();  // ours: the worker call may end, and the client's call with it, before this function does
  start_(lease_->stub(), &worker_ctx_, &reader_);
  reader_.StartRead(&read_msg_);
  reader_.StartCall();
  WorkerCallStarted();
  Unref();
}

void GenerationCall::OnWorkerRead(bool ok) {
  if (!ok) return;  // the stream ended: OnWorkerDone follows
  {
    std::lock_guard<std::mutex> lock(mu_);
    record_.TokensArrived(read_msg_.token_ids_size());  // the count if the worker dies before its trailers
    Deliver(read_msg_);
  }
  read_msg_.Clear();
  Pump();  // cannot finish: the worker call is still open
  reader_.StartRead(&read_msg_);
}

void GenerationCall::OnWorkerDone(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& trailers = worker_ctx_.GetServerTrailingMetadata();
    if (const int64_t p = TrailerInt(trailers, "atrium-prompt-tokens"); p >= 0) record_.set_prompt_tokens(p);
    if (const int64_t c = TrailerInt(trailers, "atrium-completion-tokens"); c >= 0) record_.set_completion_tokens(c);
    final_ = MapWorkerStatus(status, lease_->tenant());
    worker_done_ = true;
    ChargeTokens();  // before the client can see the end (Pump may Finish)
  }
  Pump();
  Unref();
}

void GenerationCall::ServerDone() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Finalize(sent_);
  }
  Unref();
}

grpc::ServerWriteReactor<v1::GenerateResponse>* StreamingGenerationCall::Start(
    const InferenceDeps& deps, grpc::CallbackServerContext* ctx, std::string method, const std::string& model,
    const std::function<rpc::ApiError()>& validate, StartFn start) {
  auto* call = new StreamingGenerationCall(deps, ctx, std::move(method), std::move(start));
  // gRPC runs no reaction of this call before the handler returns, so the
  // pointer is still good even if Run finished the call.
  call->Run(model, validate);
  return call;
}

void StreamingGenerationCall::Deliver(v1::GenerateResponse& message) {
  MergeGenerateResponse(message, writes_.pending());
}

void StreamingGenerationCall::Pump() {
  worker::StreamWrites::Action action;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    action = writes_.Next(worker_done_);
    if (action == worker::StreamWrites::Action::kNone) return;
    if (action != worker::StreamWrites::Action::kWrite) {
      status = final_;
      sent_ = status;
    }
  }
  // Outside the lock: a reaction may run before these return.
  writes_.Perform(action, this, status);
}

void StreamingGenerationCall::OnWriteDone(bool ok) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    writes_.WriteDone(ok);  // a failed write drops what is pending
  }
  // The client is gone: stop the generation.
  if (!ok) CancelWorkerCall();
  Pump();
}

grpc::ServerUnaryReactor* UnaryGenerationCall::Start(const InferenceDeps& deps, grpc::CallbackServerContext* ctx,
                                                     std::string method, const std::string& model,
                                                     const std::function<rpc::ApiError()>& validate, StartFn start,
                                                     v1::GenerateResponse* response) {
  auto* call = new UnaryGenerationCall(deps, ctx, std::move(method), std::move(start), response);
  call->Run(model, validate);
  return call;
}

void UnaryGenerationCall::Deliver(v1::GenerateResponse& message) { MergeGenerateResponse(message, response_); }

void UnaryGenerationCall::Pump() {
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_started_ || !worker_done_) return;
    finish_started_ = true;
    status = final_;
    sent_ = status;
    if (!status.ok()) response_->Clear();
  }
  Finish(status);
}

}  // namespace atrium::gateway

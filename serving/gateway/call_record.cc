#include "serving/gateway/call_record.h"

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "serving/gateway/errors.h"

namespace atrium::gateway {
namespace {

double Seconds(CallRecord::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

CallRecord::CallRecord(const CallSinks& sinks, std::string method)
    : sinks_(sinks), method_(std::move(method)), start_unix_ms_(UnixNowMs()) {}

void CallRecord::set_principal(const Principal& principal) {
  tenant_id_ = principal.tenant_id;
  key_id_ = principal.key_id;
}

void CallRecord::set_model(std::string model) {
  model_ = std::move(model);
  if (sinks_.metrics != nullptr) latency_ = sinks_.metrics->LatencyOf(model_);
}

void CallRecord::TokensArrived(int n) {
  if (n <= 0) return;
  const Clock::time_point now = Clock::now();
  completion_tokens_ += n;
  if (latency_.itl != nullptr) {
    // Each of a message's n tokens took 1/n of the gap before it; tokens
    // that came with the first one share its message: no gap.
    const double gap = first_token_seen_ ? Seconds(now - last_token_) / n : 0.0;
    if (!first_token_seen_) latency_.ttft->Observe(Seconds(now - start_));
    for (int i = first_token_seen_ ? 0 : 1; i < n; ++i) latency_.itl->Observe(gap);
  }
  first_token_seen_ = true;
  last_token_ = now;
}

void CallRecord::Finish(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  const Clock::duration latency = Clock::now() - start_;
  if (sinks_.metrics != nullptr) {
    sinks_.metrics->CountRequest(method_, std::string(GrpcCodeName(status.error_code())));
    if (!model_.empty()) sinks_.metrics->CountTokens(model_, prompt_tokens_, completion_tokens_);
    if (generation_ && status.ok() && latency_.e2e != nullptr) latency_.e2e->Observe(Seconds(latency));
  }
  if (sinks_.audit != nullptr) {
    AuditRecord r;
    r.time_ms = start_unix_ms_;
    r.tenant_id = tenant_id_;
    r.key_id = key_id_;
    r.method = method_;
    r.model = model_;
    r.prompt_tokens = prompt_tokens_;
    r.completion_tokens = completion_tokens_;
    r.code = static_cast<StatusCode>(static_cast<int>(status.error_code()));
    r.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(latency).count();
    sinks_.audit->Add(std::move(r));
  }
}

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, CallRecord& record,
                                      const grpc::Status& status) {
  record.Finish(status);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace atrium::gateway

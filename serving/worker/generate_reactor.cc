#include "serving/worker/generate_reactor.h"

#include <grpcpp/server_context.h>

#include "serving/worker/rpc_status.h"
#include "serving/worker/text.h"
#include "serving/worker/worker_service.h"

namespace atrium::worker {
namespace {

v1::FinishReason ToFinishReason(const std::string& reason) {
  if (reason == "stop") return v1::FINISH_REASON_STOP;
  if (reason == "length") return v1::FINISH_REASON_LENGTH;
  if (reason == "context") return v1::FINISH_REASON_CONTEXT_LENGTH;
  return v1::FINISH_REASON_UNSPECIFIED;
}

// Reasons for the errors an engine request can end with.
std::string ReasonOf(const Status& s) {
  switch (s.code()) {
    case StatusCode::kResourceExhausted: return "ENGINE_CAPACITY";
    case StatusCode::kUnavailable: return "WORKER_UNAVAILABLE";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kCancelled: return "CANCELLED";
    default: return "";
  }
}

}  // namespace

GenerateReactor::GenerateReactor(WorkerService& service, grpc::CallbackServerContext* ctx)
    : service_(service), ctx_(ctx) {}

void GenerateReactor::Start(ModelPool& pool, std::string pool_model, std::shared_ptr<const TextModel> text,
                            std::unique_ptr<EngineRequest> request) {
  pool_ = &pool;
  pool_model_ = std::move(pool_model);
  text_ = std::move(text);
  seed_ = request->options.sampling.seed;
  prompt_tokens_ = static_cast<int64_t>(request->prompt.size());
  request->on_delta = [this](const StreamDelta& d) { return OnDelta(d); };
  request->on_done = [this](const Status& s, const GenerationResult& r) { OnEngineDone(s, r); };
  const std::string model = pool_model_;  // `this` may be gone by the end of Start
  StatusOr<int64_t> id = pool.Submit(model, request);
  if (!id.ok()) {
    // The request is back with us and its callbacks will never run.
    rpc::ApiError e(id.status());
    if (id.status().code() == StatusCode::kResourceExhausted) {
      e.reason = "QUEUE_FULL";
      e.retry_delay = std::chrono::seconds(1);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      engine_done_ = true;
      final_status_ = rpc::ToGrpc(e);
      started_ = true;
    }
    Pump();
    return;
  }
  bool cancel = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // on_done may have run already: the id is then stale, and cancelling it
    // is a no-op.
    pool_id_ = *id;
    cancel = cancel_wanted_;
    started_ = true;
  }
  Pump();  // what arrived meanwhile; may finish and delete `this`
  if (cancel) pool.Cancel(model, *id);
}

void GenerateReactor::Reject(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    engine_done_ = true;
    final_status_ = status;
    started_ = true;
  }
  Pump();
}

bool GenerateReactor::CancelTargetLocked(int64_t* id) {
  if (engine_done_) return false;
  if (pool_id_ < 0) {
    cancel_wanted_ = true;  // Start cancels it once submitted
    return false;
  }
  *id = pool_id_;
  return true;
}

bool GenerateReactor::Abort(const Status& status, std::string* pool_model, int64_t* pool_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!engine_done_) abort_status_ = status;
  if (!CancelTargetLocked(pool_id)) return false;
  *pool_model = pool_model_;
  return true;
}

void GenerateReactor::AddLogprob(const TokenLogprob& lp,
                                 google::protobuf::RepeatedPtrField<v1::TokenLogprob>* out) const {
  const Tokenizer& tok = *text_->tokenizer;
  v1::TokenLogprob* p = out->Add();
  p->set_token_id(lp.token);
  p->set_token(ValidUtf8(tok.TokenToPiece(lp.token, /*render_special=*/true)));
  p->set_logprob(lp.logprob);
  for (const auto& [id, logprob] : lp.top) {
    v1::TopLogprob* t = p->add_top_logprobs();
    t->set_token_id(id);
    t->set_token(ValidUtf8(tok.TokenToPiece(id, /*render_special=*/true)));
    t->set_logprob(logprob);
  }
}

bool GenerateReactor::OnDelta(const StreamDelta& delta) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (writes_.write_failed()) return false;  // nobody reads any more: free the sequence
    v1::GenerateResponse* pending = writes_.pending();
    pending->mutable_text()->append(delta.text.data(), delta.text.size());
    for (int32_t t : delta.tokens) pending->add_token_ids(t);
    for (const TokenLogprob& lp : delta.logprobs) AddLogprob(lp, pending->mutable_logprobs());
    if (writes_.writing()) return true;  // OnWriteDone sends it
  }
  Pump();
  return true;
}

void GenerateReactor::OnEngineDone(const Status& status, const GenerationResult& result) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    engine_done_ = true;
    prompt_tokens_ = result.prompt_tokens;
    completion_tokens_ = static_cast<int64_t>(result.tokens.size());
    if (status.ok()) {
      v1::GenerateResponse& last = *writes_.pending();
      last.set_finish_reason(ToFinishReason(result.finish_reason));
      v1::Usage* u = last.mutable_usage();
      u->set_prompt_tokens(static_cast<int32_t>(result.prompt_tokens));
      u->set_completion_tokens(static_cast<int32_t>(result.tokens.size()));
      u->set_total_tokens(u->prompt_tokens() + u->completion_tokens());
      u->set_cached_prompt_tokens(static_cast<int32_t>(result.prompt_tokens - result.prefilled_tokens));
      for (const TokenLogprob& lp : result.prompt_logprobs) AddLogprob(lp, last.mutable_prompt_logprobs());
      last.set_seed(seed_);
      final_status_ = grpc::Status::OK;
    } else if (!abort_status_.ok()) {
      final_status_ = rpc::ToGrpc(rpc::WithReason(abort_status_, "WORKER_DRAINED"));
    } else {
      final_status_ = rpc::ToGrpc(rpc::WithReason(status, ReasonOf(status)));
    }
  }
  Pump();
}

void GenerateReactor::Pump() {
  StreamWrites::Action action;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) return;
    action = writes_.Next(engine_done_);
    if (action == StreamWrites::Action::kNone) return;
    if (action != StreamWrites::Action::kWrite) {
      status = final_status_;
      // For audit and quotas, also when the call failed or was cancelled.
      ctx_->AddTrailingMetadata("atrium-prompt-tokens", std::to_string(prompt_tokens_));
      ctx_->AddTrailingMetadata("atrium-completion-tokens", std::to_string(completion_tokens_));
    }
  }
  // Outside the lock: a reaction may run before these return.
  writes_.Perform(action, this, status);
}

void GenerateReactor::OnWriteDone(bool ok) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A failed write: the stream is broken (client gone or call cancelled);
    // OnCancel cancels the engine request, and OnDelta refuses further deltas.
    writes_.WriteDone(ok);
  }
  Pump();
}

void GenerateReactor::OnCancel() {
  int64_t id = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!CancelTargetLocked(&id)) return;
  }
  pool_->Cancel(pool_model_, id);
}

void GenerateReactor::OnDone() {
  service_.StreamEnded(this);
  delete this;
}

}  // namespace atrium::worker

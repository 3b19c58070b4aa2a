// One Generate or Chat stream: a gRPC ServerWriteReactor fed by the engine's
// callbacks. The step thread never waits for the network: each delta is
// merged into one pending message, and a write starts only when none is in
// flight, so a slow client gets fewer, larger messages instead of stalling
// the batch. The reactor never blocks on the engine either: a cancelled call
// (client cancel, deadline, drain) cancels the engine request, whose on_done
// then finishes the call. The reactor deletes itself in OnDone, which gRPC
// calls only after Finish, which only follows the engine's on_done (or a
// refusal before anything was submitted), so no engine callback outlives it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/support/server_callback.h>

#include "atrium/v1/inference.pb.h"
#include "serving/engine/model_pool.h"
#include "serving/worker/model_registry.h"
#include "serving/worker/stream_writes.h"

namespace grpc {
class CallbackServerContext;
}  // namespace grpc

namespace atrium::worker {

class WorkerService;

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  GenerateReactor(WorkerService& service, grpc::CallbackServerContext* ctx);

  // Hands the request to the pool (its prompt and options set, callbacks
  // not). `pool_model` is the model's file, as the pool knows it.
  void Start(ModelPool& pool, std::string pool_model, std::shared_ptr<const TextModel> text,
             std::unique_ptr<EngineRequest> request);
  // Ends a call that was never submitted.
  void Reject(const grpc::Status& status);
  // From a drain that timed out: the call will end with `status` once the
  // engine has let go of the request. Sets the pool request to cancel (the
  // caller cancels it outside its locks); false when there is none yet.
  bool Abort(const Status& status, std::string* pool_model, int64_t* pool_id);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Engine callbacks, on the step thread (or in Start, for a request that
  // ends before it reaches an engine).
  bool OnDelta(const StreamDelta& delta);
  void OnEngineDone(const Status& status, const GenerationResult& result);
  // Starts the next write, or the finish. The caller must not touch the
  // reactor afterwards: the finish may complete and delete it at once.
  void Pump();
  void AddLogprob(const TokenLogprob& lp, google::protobuf::RepeatedPtrField<v1::TokenLogprob>* out) const;
  // Under mu_: the pool request to cancel (true, *id set), or none: the
  // engine is done, or the request is not submitted yet (Start cancels it).
  bool CancelTargetLocked(int64_t* id);

  WorkerService& service_;
  grpc::CallbackServerContext* const ctx_;
  ModelPool* pool_ = nullptr;
  std::string pool_model_;
  std::shared_ptr<const TextModel> text_;
  uint64_t seed_ = 0;

  std::mutex mu_;  // everything below
  // Until Start or Reject has returned, nothing is written or finished: an
  // engine that ends the request inside Submit must not delete the reactor
  // under Start's feet.
  bool started_ = false;
  int64_t pool_id_ = -1;     // once submitted
  bool cancel_wanted_ = false;  // cancelled before pool_id_ was known
  StreamWrites writes_;  // after a failed write, OnDelta stops the generation
  bool engine_done_ = false;
  grpc::Status final_status_;
  Status abort_status_;  // set by Abort: replaces the engine's CANCELLED
  int64_t prompt_tokens_ = 0;
  int64_t completion_tokens_ = 0;
};

}  // namespace atrium::worker

// The Worker gRPC service (proto/internal/worker.proto) of one tenant's
// worker process, on the callback API: unary calls answer in their handler
// (they only tokenize or read the catalog), Generate and Chat each get a
// GenerateReactor that the engine's step thread feeds.
//
// It also keeps the process's state that outlives calls: the open streams
// (for Health, the drain and the idle timeout), and the drain in progress.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "internal/worker.grpc.pb.h"
#include "serving/engine/model_pool.h"
#include "serving/worker/model_registry.h"

namespace atrium::worker {

class GenerateReactor;

class WorkerService final : public internal::Worker::CallbackService {
 public:
  using Clock = std::chrono::steady_clock;

  // tenant: "tenants/<id>", the prefix cache namespace of every request.
  WorkerService(ModelRegistry& registry, ModelPool& pool, std::string tenant);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* ctx,
                                                           const v1::GenerateRequest* request) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Chat(grpc::CallbackServerContext* ctx,
                                                       const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx, const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* ctx, const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* CountTokens(grpc::CallbackServerContext* ctx, const v1::CountTokensRequest* request,
                                        v1::CountTokensResponse* response) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* ctx, const internal::HealthRequest* request,
                                   internal::HealthResponse* response) override;

  // Stops admissions; streams in flight may take `timeout`, then they are
  // cancelled. With exit, exit_wanted() turns true once no stream is left.
  void StartDrain(std::chrono::milliseconds timeout, bool exit);
  // Advances drains (called by the process's housekeeping thread, often).
  void Tick();
  bool exit_wanted() const { return exit_wanted_.load(); }
  bool draining() const;
  int64_t streams() const;
  // When the last call began or the last stream ended.
  Clock::time_point last_activity() const;

  // From GenerateReactor::OnDone.
  void StreamEnded(GenerateReactor* reactor);

 private:
  struct PendingDrain {
    Clock::time_point deadline;
    bool exit = false;
    int64_t streams_at_start = 0;
    int64_t cancelled = -1;  // streams cancelled at the deadline (-1: not yet)
  };

  void Touch();
  // Registers a new stream; false while draining (the caller rejects it).
  bool Admit(GenerateReactor* reactor);
  // A streaming call's prompt, tokenized; on failure `error` says what to fix.
  using PromptFn = std::function<StatusOr<std::vector<int32_t>>(const TextModel& text, rpc::ApiError* error)>;
  // Generate and Chat, which differ only in how the prompt is built:
  // admission (refused while draining), the model, the prompt, the engine.
  grpc::ServerWriteReactor<v1::GenerateResponse>* Stream(grpc::CallbackServerContext* ctx, const std::string& model,
                                                         const v1::GenerationConfig& config,
                                                         const PromptFn& build_prompt);

  ModelRegistry& registry_;
  ModelPool& pool_;
  const std::string tenant_;
  const Clock::time_point started_ = Clock::now();
  std::atomic<int64_t> last_activity_;  // Clock ticks
  std::atomic<bool> exit_wanted_{false};

  mutable std::mutex mu_;  // guards what follows
  std::unordered_set<GenerateReactor*> streams_;
  bool draining_ = false;
  std::vector<PendingDrain> drains_;
};

}  // namespace atrium::worker

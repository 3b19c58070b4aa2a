// What the gateway keeps of one public call while it runs, and hands to the
// audit log and the metrics exactly once when it ends: who called, which
// method and model, tokens in and out, how it ended, how long it took, and
// for generations the token timings (TTFT, inter-token latency).
//
// Not thread-safe: a call's reactor updates its record under its own lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <grpcpp/support/status.h>

namespace grpc {
class CallbackServerContext;
class ServerUnaryReactor;
}  // namespace grpc

#include "serving/gateway/audit_writer.h"
#include "serving/gateway/metrics.h"
#include "serving/gateway/store.h"

namespace atrium::gateway {

// Where finished calls go. Both outlive every call.
struct CallSinks {
  AuditWriter* audit = nullptr;  // null: no audit (tests)
  GatewayMetrics* metrics = nullptr;
};

class CallRecord {
 public:
  using Clock = std::chrono::steady_clock;

  // `method`: the full gRPC method, "/atrium.v1.Inference/Generate".
  CallRecord(const CallSinks& sinks, std::string method);

  void set_principal(const Principal& principal);
  // A model the catalog knows (labels metrics; client strings never do).
  void set_model(std::string model);
  void set_generation(bool generation) { generation_ = generation; }
  void set_prompt_tokens(int64_t n) { prompt_tokens_ = n; }
  void set_completion_tokens(int64_t n) { completion_tokens_ = n; }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t completion_tokens() const { return completion_tokens_; }

  // `n` more tokens arrived from the worker now: TTFT for the first, the
  // inter-token latency for the others. Also counts completion tokens.
  void TokensArrived(int n);

  // Writes the audit record and the metrics. Later calls do nothing.
  void Finish(const grpc::Status& status);

 private:
  const CallSinks sinks_;
  const std::string method_;
  const Clock::time_point start_ = Clock::now();
  const int64_t start_unix_ms_;
  std::string tenant_id_;
  std::string key_id_;
  std::string model_;
  GatewayMetrics::Latency latency_;  // model_'s histograms (with metrics)
  bool generation_ = false;
  int64_t prompt_tokens_ = 0;
  int64_t completion_tokens_ = 0;
  bool first_token_seen_ = false;
  Clock::time_point last_token_{};
  bool finished_ = false;
};

// Answers a unary call in its handler with `status` and records it.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, CallRecord& record,
                                      const grpc::Status& status);

}  // namespace atrium::gateway

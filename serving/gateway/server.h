// The gateway process's server: the public gRPC services (ModelPlaza,
// Inference, Admin), grpc.health.v1.Health and server reflection on one
// port, Prometheus metrics on another, the per-tenant workers behind them,
// and the drain that ends it all.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "serving/gateway/data_dir.h"
#include "serving/gateway/validation.h"

namespace atrium::gateway {

struct GatewayOptions {
  std::string listen = "0.0.0.0:50051";         // host:port; port 0 picks a free one
  std::string metrics_listen = "0.0.0.0:9464";  // empty: no metrics endpoint
  std::string models_dir;                       // searched first (Catalog::SearchDirs)
  // atrium-worker; empty: the one next to this executable.
  std::string worker_binary;
  int worker_threads = 0;  // per worker; 0: one per core
  int64_t worker_kv_mib = 256;
  std::string worker_kv_type = "f16";  // f16, q8_0 or f32
  int64_t worker_budget_mib = 4096;
  std::chrono::milliseconds worker_idle_timeout{std::chrono::minutes(10)};
  // A message over this is refused by gRPC with RESOURCE_EXHAUSTED before
  // it is parsed. Deliberately above RequestLimits::max_prompt_bytes, so an
  // over-long prompt gets the clearer INVALID_ARGUMENT PROMPT_TOO_LONG and
  // only a message far too large for any request gets this.
  int64_t max_message_bytes = int64_t{16} << 20;
  RequestLimits limits;
};

class GatewayServer {
 public:
  // Starts serving with the state of `data` (which it takes). Fails when a
  // port cannot be bound or the worker binary is missing.
  static StatusOr<std::unique_ptr<GatewayServer>> Start(const GatewayOptions& options, DataDir data);
  ~GatewayServer();  // Drain(0) unless drained
  GatewayServer(const GatewayServer&) = delete;
  GatewayServer& operator=(const GatewayServer&) = delete;

  int port() const;
  int metrics_port() const;  // 0 without a metrics endpoint
  size_t models() const;

  // The SIGTERM path: health turns NOT_SERVING, new Inference calls get
  // UNAVAILABLE, calls in flight may finish for `timeout`, then the rest is
  // cancelled, the workers are stopped and the audit log flushed.
  void Drain(std::chrono::milliseconds timeout);
  // Blocks until Drain has finished.
  void Wait();

 private:
  struct Impl;
  explicit GatewayServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The atrium-worker next to the running executable.
std::string DefaultWorkerBinary();

}  // namespace atrium::gateway

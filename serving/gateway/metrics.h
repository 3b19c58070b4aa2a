// The gateway's Prometheus metrics (prometheus-cpp), served as text at
// http://<metrics address>/metrics.
//
// Names follow vLLM's where one exists, with our prefix, so dashboards
// built for vLLM map over one to one:
//
// | Atrium                                   | type      | labels         | vLLM equivalent                         |
// |------------------------------------------|-----------|----------------|-----------------------------------------|
// | atrium_requests_total                    | counter   | method, code   | vllm:request_success_total (by finish   |
// |                                          |           |                | reason; errors only in the HTTP server's|
// |                                          |           |                | http_requests_total{status})            |
// | atrium_time_to_first_token_seconds       | histogram | model          | vllm:time_to_first_token_seconds        |
// | atrium_inter_token_latency_seconds       | histogram | model          | vllm:inter_token_latency_seconds (was   |
// |                                          |           |                | vllm:time_per_output_token_seconds)     |
// | atrium_e2e_request_latency_seconds       | histogram | model          | vllm:e2e_request_latency_seconds        |
// | atrium_num_requests_waiting              | gauge     | tenant         | vllm:num_requests_waiting               |
// | atrium_num_requests_running              | gauge     | tenant         | vllm:num_requests_running               |
// | atrium_kv_cache_usage_perc               | gauge     | tenant         | vllm:kv_cache_usage_perc (was           |
// |                                          |           |                | vllm:gpu_cache_usage_perc); 0..1        |
// | atrium_num_preemptions                   | gauge     | tenant         | vllm:num_preemptions_total (here since  |
// |                                          |           |                | the tenant's worker started)            |
// | atrium_prefix_cache_hit_tokens           | gauge     | tenant         | vllm:prefix_cache_hits_total (tokens;   |
// |                                          |           |                | since the worker started)               |
// | atrium_kv_cache_blocks_cached            | gauge     | tenant         | - (prefix-cache blocks, evictable)      |
// | atrium_engine_steps                      | gauge     | tenant         | - (batched forwards since worker start) |
// | atrium_worker_uptime_seconds             | gauge     | tenant         | - (since the worker started)            |
// | atrium_prompt_tokens_total               | counter   | model          | vllm:prompt_tokens_total                |
// | atrium_generation_tokens_total           | counter   | model          | vllm:generation_tokens_total            |
// | atrium_streams_active                    | gauge     | -              | - (open Generate/Chat calls)            |
// | atrium_workers                           | gauge     | -              | - (one worker process per tenant)       |
// | atrium_worker_exits_total                | counter   | reason         | - (idle, crashed, exited, shutdown)     |
// | atrium_quota_rejections_total            | counter   | tenant         | -                                       |
//
// The per-tenant gauges come from each worker's Health answer (polled by
// WorkerManager), summed over the worker's resident models; a tenant
// without a worker has none of them. Latencies are measured at the gateway,
// so they include the gateway <-> worker hop that vLLM's in-process figures
// do not. Labels never take client-chosen strings: `model` is set only for
// a model the catalog knows, `tenant` only for an authenticated tenant.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "runtime/status.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace atrium::gateway {

struct WorkerLoad {
  int64_t waiting = 0;
  int64_t running = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t preemptions = 0;        // since the worker started
  int64_t prefix_hit_tokens = 0;  // likewise
  int64_t steps = 0;              // likewise: batched forwards
  int64_t kv_blocks_cached = 0;   // blocks the prefix caches hold for later hits (evictable)
  double uptime_seconds = 0;      // of the worker process
};

class GatewayMetrics {
 public:
  GatewayMetrics();
  ~GatewayMetrics();
  GatewayMetrics(const GatewayMetrics&) = delete;
  GatewayMetrics& operator=(const GatewayMetrics&) = delete;

  // Serves /metrics on `address` ("0.0.0.0:9464"; port 0 picks one).
  // Returns the port it listens on.
  StatusOr<int> Serve(const std::string& address);

  void CountRequest(const std::string& method, const std::string& code);
  // One model's latency histograms. A call looks them up once (each lookup
  // hashes the labels and locks the family), then observes per message.
  struct Latency {
    prometheus::Histogram* ttft = nullptr;
    prometheus::Histogram* itl = nullptr;  // one observation per token
    prometheus::Histogram* e2e = nullptr;
  };
  Latency LatencyOf(const std::string& model);
  void CountTokens(const std::string& model, int64_t prompt, int64_t completion);
  void StreamStarted() { streams_->Increment(); }
  void StreamEnded() { streams_->Decrement(); }
  void SetWorkers(int n) { workers_->Set(n); }
  void CountWorkerExit(const std::string& reason);
  void CountQuotaRejection(const std::string& tenant);
  void SetWorkerLoad(const std::string& tenant, const WorkerLoad& load);
  void ClearWorkerLoad(const std::string& tenant);

  // The text exposition of everything, as /metrics serves it (tests).
  std::string Scrape() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* ttft_;
  prometheus::Family<prometheus::Histogram>* itl_;
  prometheus::Family<prometheus::Histogram>* e2e_;
  prometheus::Family<prometheus::Gauge>* waiting_;
  prometheus::Family<prometheus::Gauge>* running_;
  prometheus::Family<prometheus::Gauge>* kv_usage_;
  prometheus::Family<prometheus::Gauge>* kv_cached_;
  prometheus::Family<prometheus::Gauge>* steps_;
  prometheus::Family<prometheus::Gauge>* uptime_;
  prometheus::Family<prometheus::Gauge>* preemptions_;
  prometheus::Family<prometheus::Gauge>* prefix_hits_;
  prometheus::Family<prometheus::Counter>* prompt_tokens_;
  prometheus::Family<prometheus::Counter>* generation_tokens_;
  prometheus::Family<prometheus::Counter>* worker_exits_;
  prometheus::Family<prometheus::Counter>* quota_rejections_;
  prometheus::Gauge* streams_;
  prometheus::Gauge* workers_;
};

}  // namespace atrium::gateway

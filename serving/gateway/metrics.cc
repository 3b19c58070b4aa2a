#include "serving/gateway/metrics.h"

#include <exception>

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

namespace atrium::gateway {
namespace {

using prometheus::Histogram;

// vLLM's buckets, so its dashboards' quantiles read the same.
const Histogram::BucketBoundaries kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                                  0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
const Histogram::BucketBoundaries kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                 0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0};
const Histogram::BucketBoundaries kE2eBuckets = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,  2.5,  5.0,
                                                 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0};

}  // namespace

GatewayMetrics::GatewayMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  prometheus::Registry& r = *registry_;
  requests_ = &BuildCounter().Name("atrium_requests_total").Help("Finished public RPCs by method and status code").Register(r);
  ttft_ = &BuildHistogram().Name("atrium_time_to_first_token_seconds")
               .Help("From the call's arrival at the gateway to its first generated token").Register(r);
  itl_ = &BuildHistogram().Name("atrium_inter_token_latency_seconds")
              .Help("Time between generated tokens, as the gateway receives them").Register(r);
  e2e_ = &BuildHistogram().Name("atrium_e2e_request_latency_seconds")
              .Help("From the call's arrival to its end, for Generate and Chat").Register(r);
  waiting_ = &BuildGauge().Name("atrium_num_requests_waiting").Help("Requests waiting for admission in a tenant's engines").Register(r);
  running_ = &BuildGauge().Name("atrium_num_requests_running").Help("Requests in the running batch of a tenant's engines").Register(r);
  kv_usage_ = &BuildGauge().Name("atrium_kv_cache_usage_perc").Help("Fraction of a tenant's KV blocks in use (0..1)").Register(r);
  preemptions_ = &BuildGauge().Name("atrium_num_preemptions")
                      .Help("Requests a tenant's engines preempted for KV blocks, since its worker started").Register(r);
  prefix_hits_ = &BuildGauge().Name("atrium_prefix_cache_hit_tokens")
                      .Help("Prompt tokens a tenant's engines took from the prefix cache, since its worker started")
                      .Register(r);
  kv_cached_ = &BuildGauge().Name("atrium_kv_cache_blocks_cached")
                    .Help("KV blocks a tenant's prefix caches hold for later hits (evictable when blocks run out)")
                    .Register(r);
  steps_ = &BuildGauge().Name("atrium_engine_steps")
                .Help("Engine steps (batched forwards) a tenant's engines ran, since its worker started").Register(r);
  uptime_ = &BuildGauge().Name("atrium_worker_uptime_seconds").Help("Seconds since a tenant's worker started")
                 .Register(r);
  prompt_tokens_ = &BuildCounter().Name("atrium_prompt_tokens_total").Help("Prompt tokens processed").Register(r);
  generation_tokens_ = &BuildCounter().Name("atrium_generation_tokens_total").Help("Tokens generated").Register(r);
  worker_exits_ = &BuildCounter().Name("atrium_worker_exits_total").Help("Worker processes that ended, by why").Register(r);
  quota_rejections_ = &BuildCounter().Name("atrium_quota_rejections_total").Help("Calls refused by a tenant's quota").Register(r);
  streams_ = &BuildGauge().Name("atrium_streams_active").Help("Generate and Chat calls open now").Register(r).Add({});
  workers_ = &BuildGauge().Name("atrium_workers").Help("Worker processes running").Register(r).Add({});
}

GatewayMetrics::~GatewayMetrics() = default;

StatusOr<int> GatewayMetrics::Serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
  } catch (const std::exception& e) {
    return Unavailable(StrFormat("cannot serve metrics on %s: %s (is the port taken? use --metrics-port)",
                                 address.c_str(), e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void GatewayMetrics::CountRequest(const std::string& method, const std::string& code) {
  requests_->Add({{"method", method}, {"code", code}}).Increment();
}

GatewayMetrics::Latency GatewayMetrics::LatencyOf(const std::string& model) {
  return {&ttft_->Add({{"model", model}}, kTtftBuckets), &itl_->Add({{"model", model}}, kItlBuckets),
          &e2e_->Add({{"model", model}}, kE2eBuckets)};
}

void GatewayMetrics::CountTokens(const std::string& model, int64_t prompt, int64_t completion) {
  if (prompt > 0) prompt_tokens_->Add({{"model", model}}).Increment(static_cast<double>(prompt));
  if (completion > 0) generation_tokens_->Add({{"model", model}}).Increment(static_cast<double>(completion));
}

void GatewayMetrics::CountWorkerExit(const std::string& reason) { worker_exits_->Add({{"reason", reason}}).Increment(); }

void GatewayMetrics::CountQuotaRejection(const std::string& tenant) {
  quota_rejections_->Add({{"tenant", tenant}}).Increment();
}

void GatewayMetrics::SetWorkerLoad(const std::string& tenant, const WorkerLoad& load) {
  waiting_->Add({{"tenant", tenant}}).Set(static_cast<double>(load.waiting));
  running_->Add({{"tenant", tenant}}).Set(static_cast<double>(load.running));
  kv_usage_->Add({{"tenant", tenant}})
      .Set(load.kv_blocks_total > 0 ? static_cast<double>(load.kv_blocks_used) / load.kv_blocks_total : 0.0);
  preemptions_->Add({{"tenant", tenant}}).Set(static_cast<double>(load.preemptions));
  prefix_hits_->Add({{"tenant", tenant}}).Set(static_cast<double>(load.prefix_hit_tokens));
  kv_cached_->Add({{"tenant", tenant}}).Set(static_cast<double>(load.kv_blocks_cached));
  steps_->Add({{"tenant", tenant}}).Set(static_cast<double>(load.steps));
  uptime_->Add({{"tenant", tenant}}).Set(load.uptime_seconds);
}

void GatewayMetrics::ClearWorkerLoad(const std::string& tenant) {
  for (auto* family : {waiting_, running_, kv_usage_, preemptions_, prefix_hits_, kv_cached_, steps_, uptime_}) {
    family->Remove(&family->Add({{"tenant", tenant}}));
  }
}

std::string GatewayMetrics::Scrape() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace atrium::gateway

// A finished call leaves one audit record (no prompt text) and its metrics.
#include "serving/gateway/call_record.h"

#include <gtest/gtest.h>

#include "serving/gateway/sqlite_store.h"

namespace atrium::gateway {
namespace {

TEST(CallRecordTest, OneAuditRecordAndTheMetricsPerCall) {
  StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  GatewayMetrics metrics;
  {
    AuditWriter audit(**store);
    const CallSinks sinks{&audit, &metrics};
    CallRecord record(sinks, "/atrium.v1.Inference/Generate");
    record.set_principal(Principal{"acme", "key-0123456789ab", false, {}});
    record.set_model("models/smollm2-135m-instruct");
    record.set_generation(true);
    record.set_prompt_tokens(7);
    record.TokensArrived(1);
    record.TokensArrived(2);
    EXPECT_EQ(record.completion_tokens(), 3);
    record.Finish(grpc::Status::OK);
    record.Finish(grpc::Status(grpc::StatusCode::INTERNAL, "twice"));  // no second record
    CallRecord refused(sinks, "/atrium.v1.Inference/Generate");
    refused.Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no key"));
    audit.Flush();
  }
  StatusOr<AuditPage> page = (*store)->Read(AuditQuery{});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->records.size(), 2u);
  const AuditRecord& r = page->records[0];
  EXPECT_EQ(r.tenant_id, "acme");
  EXPECT_EQ(r.key_id, "key-0123456789ab");
  EXPECT_EQ(r.method, "/atrium.v1.Inference/Generate");
  EXPECT_EQ(r.model, "models/smollm2-135m-instruct");
  EXPECT_EQ(r.prompt_tokens, 7);
  EXPECT_EQ(r.completion_tokens, 3);
  EXPECT_EQ(r.code, StatusCode::kOk);
  EXPECT_EQ(page->records[1].code, StatusCode::kUnauthenticated);
  EXPECT_EQ(page->records[1].tenant_id, "");

  const std::string text = metrics.Scrape();
  EXPECT_NE(text.find("atrium_requests_total{code=\"OK\",method=\"/atrium.v1.Inference/Generate\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("atrium_requests_total{code=\"UNAUTHENTICATED\""), std::string::npos);
  EXPECT_NE(text.find("atrium_time_to_first_token_seconds_count{model=\"models/smollm2-135m-instruct\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("atrium_inter_token_latency_seconds_count{model=\"models/smollm2-135m-instruct\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("atrium_e2e_request_latency_seconds_count{model=\"models/smollm2-135m-instruct\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("atrium_prompt_tokens_total{model=\"models/smollm2-135m-instruct\"} 7"), std::string::npos);
  EXPECT_NE(text.find("atrium_generation_tokens_total{model=\"models/smollm2-135m-instruct\"} 3"), std::string::npos);
}

TEST(GatewayMetricsTest, WorkerLoadGaugesComeAndGo) {
  GatewayMetrics metrics;
  metrics.SetWorkerLoad("acme", WorkerLoad{3, 2, 10, 40, 5, 256, 1234, 7, 12.5});
  std::string text = metrics.Scrape();
  EXPECT_NE(text.find("atrium_num_requests_waiting{tenant=\"acme\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("atrium_num_requests_running{tenant=\"acme\"} 2"), std::string::npos);
  EXPECT_NE(text.find("atrium_kv_cache_usage_perc{tenant=\"acme\"} 0.25"), std::string::npos);
  EXPECT_NE(text.find("atrium_num_preemptions{tenant=\"acme\"} 5"), std::string::npos);
  EXPECT_NE(text.find("atrium_prefix_cache_hit_tokens{tenant=\"acme\"} 256"), std::string::npos);
  EXPECT_NE(text.find("atrium_engine_steps{tenant=\"acme\"} 1234"), std::string::npos);
  EXPECT_NE(text.find("atrium_kv_cache_blocks_cached{tenant=\"acme\"} 7"), std::string::npos);
  EXPECT_NE(text.find("atrium_worker_uptime_seconds{tenant=\"acme\"} 12.5"), std::string::npos);
  metrics.ClearWorkerLoad("acme");
  text = metrics.Scrape();
  EXPECT_EQ(text.find("tenant=\"acme\""), std::string::npos) << text;
}

}  // namespace
}  // namespace atrium::gateway

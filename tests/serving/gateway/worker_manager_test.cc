// WorkerManager with the real atrium-worker (no model needed): one worker
// per tenant started on demand and shared, a killed worker noticed at once
// and replaced on the next Acquire, idle workers stopped, Shutdown.
#include "serving/gateway/worker_manager.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <future>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "tests/test_util.h"

namespace atrium::gateway {
namespace {

using std::chrono::milliseconds;

class WorkerManagerTest : public ::testing::Test {
 protected:
  WorkerManagerOptions Options() {
    WorkerManagerOptions o;
    o.worker_binary = ::atrium::testing::WorkerBinary();
    o.socket_dir = dir_.path();
    o.log_dir = dir_.path();
    o.worker_args = {"--threads", "1"};
    o.health_interval = milliseconds(100);
    return o;
  }

  // Acquire, waiting for the answer.
  StatusOr<WorkerLease> Get(WorkerManager& m, const std::string& tenant) {
    std::promise<StatusOr<WorkerLease>> p;
    m.Acquire(tenant, [&p](StatusOr<WorkerLease> lease) { p.set_value(std::move(lease)); });
    return p.get_future().get();
  }

  static bool Alive(pid_t pid) { return ::kill(pid, 0) == 0; }

  // Polls `cond` up to `limit`.
  template <typename F>
  static bool Within(milliseconds limit, F cond) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (cond()) return true;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return cond();
  }

  // A cheap call on the worker: its Health.
  static grpc::Status Ping(const WorkerLease& lease) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    internal::HealthResponse r;
    return lease->stub()->Health(&ctx, internal::HealthRequest(), &r);
  }

  ::atrium::testing::TempDir dir_;
};

TEST_F(WorkerManagerTest, OneWorkerPerTenantStartedOnDemandAndShared) {
  GatewayMetrics metrics;
  WorkerManager m(Options(), &metrics);
  EXPECT_EQ(m.WorkerPid("acme"), -1);
  // Several calls during the start share it.
  std::vector<std::promise<StatusOr<WorkerLease>>> promises(3);
  for (auto& p : promises) {
    m.Acquire("acme", [&p](StatusOr<WorkerLease> lease) { p.set_value(std::move(lease)); });
  }
  std::vector<WorkerLease> leases;
  for (auto& p : promises) {
    StatusOr<WorkerLease> lease = p.get_future().get();
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    leases.push_back(std::move(*lease));
  }
  const pid_t pid = leases[0]->pid();
  for (const WorkerLease& l : leases) EXPECT_EQ(l->pid(), pid);
  EXPECT_EQ(leases[0]->tenant(), "tenants/acme");
  EXPECT_TRUE(Ping(leases[0]).ok());
  StatusOr<WorkerLease> other = Get(m, "globex");
  ASSERT_TRUE(other.ok());
  EXPECT_NE((*other)->pid(), pid) << "each tenant has its own process";
  EXPECT_EQ(m.workers(), 2);
  // A running worker is handed out at once, on the caller's thread.
  bool inline_answer = false;
  m.Acquire("acme", [&](StatusOr<WorkerLease> lease) { inline_answer = lease.ok() && (*lease)->pid() == pid; });
  EXPECT_TRUE(inline_answer);
  EXPECT_TRUE(Within(milliseconds(3000), [&] { return metrics.Scrape().find("atrium_num_requests_waiting{tenant=\"acme\"} 0") != std::string::npos; }))
      << "the health poll feeds the load gauges";
}

TEST_F(WorkerManagerTest, AKilledWorkerIsNoticedAtOnceAndReplacedOnTheNextCall) {
  GatewayMetrics metrics;
  WorkerManager m(Options(), &metrics);
  StatusOr<WorkerLease> lease = Get(m, "acme");
  ASSERT_TRUE(lease.ok());
  const pid_t pid = (*lease)->pid();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_TRUE(Within(milliseconds(500), [&] { return m.WorkerPid("acme") == -1; }))
      << "taken out of routing within half a second";
  EXPECT_TRUE(Within(milliseconds(2000), [&] { return m.workers() == 0; })) << "and reaped";
  EXPECT_EQ(Ping(*lease).error_code(), grpc::StatusCode::UNAVAILABLE) << "calls on it fail";
  StatusOr<WorkerLease> next = Get(m, "acme");
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_NE((*next)->pid(), pid);
  EXPECT_TRUE(Ping(*next).ok());
  EXPECT_NE(metrics.Scrape().find("atrium_worker_exits_total{reason=\"crashed\"} 1"), std::string::npos);
}

TEST_F(WorkerManagerTest, IdleWorkersAreStoppedBusyOnesAreNot) {
  WorkerManagerOptions o = Options();
  o.idle_timeout = milliseconds(300);
  WorkerManager m(o, nullptr);
  StatusOr<WorkerLease> busy = Get(m, "busy");
  ASSERT_TRUE(busy.ok());
  pid_t idle_pid = -1;
  {
    StatusOr<WorkerLease> idle = Get(m, "idle");
    ASSERT_TRUE(idle.ok());
    idle_pid = (*idle)->pid();
  }  // its lease ends: the idle clock starts
  EXPECT_TRUE(Within(milliseconds(5000), [&] { return m.WorkerPid("idle") == -1 && !Alive(idle_pid); }));
  EXPECT_EQ(m.WorkerPid("busy"), (*busy)->pid()) << "a worker with a call in flight is never idle";
  EXPECT_TRUE(Ping(*busy).ok());
}

TEST_F(WorkerManagerTest, AFailedStartIsUnavailableAndShutdownStopsEverything) {
  {
    WorkerManagerOptions o = Options();
    o.worker_binary = "/bin/false";
    WorkerManager m(o, nullptr);
    StatusOr<WorkerLease> lease = Get(m, "acme");
    ASSERT_FALSE(lease.ok());
    EXPECT_EQ(lease.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(lease.status().message().find("tenants/acme"), std::string::npos);
  }
  WorkerManager m(Options(), nullptr);
  StatusOr<WorkerLease> lease = Get(m, "acme");
  ASSERT_TRUE(lease.ok());
  const pid_t pid = (*lease)->pid();
  lease->Release();
  m.Shutdown(milliseconds(2000));
  EXPECT_FALSE(Alive(pid));
  StatusOr<WorkerLease> after = Get(m, "acme");
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
}

// After a failed start, the tenant's next calls fail at once for the
// backoff (naming the failure and when the next try is) instead of each
// forking a worker that fails the same way; after it, a start is tried again,
// and the backoff doubles. Another tenant is not held back.
TEST_F(WorkerManagerTest, FailedStartsBackOff) {
  WorkerManagerOptions o = Options();
  o.worker_binary = "/bin/false";
  o.start_backoff = milliseconds(300);
  WorkerManager m(o, nullptr);
  StatusOr<WorkerLease> first = Get(m, "acme");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().message().find("next attempt"), std::string::npos) << "a real attempt";

  const auto t0 = std::chrono::steady_clock::now();
  StatusOr<WorkerLease> soon = Get(m, "acme");
  ASSERT_FALSE(soon.ok());
  EXPECT_EQ(soon.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(soon.status().message().find("failed to start 1 time(s) in a row"), std::string::npos)
      << soon.status().ToString();
  EXPECT_NE(soon.status().message().find("next attempt"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(100)) << "answered without a launch";

  StatusOr<WorkerLease> other = Get(m, "globex");  // its own slot: a real attempt
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().message().find("next attempt"), std::string::npos);

  std::this_thread::sleep_for(milliseconds(350));
  StatusOr<WorkerLease> retried = Get(m, "acme");  // the backoff is over: tried again
  ASSERT_FALSE(retried.ok());
  EXPECT_EQ(retried.status().message().find("next attempt"), std::string::npos) << retried.status().ToString();
  std::this_thread::sleep_for(milliseconds(350));  // the second backoff is 600 ms
  StatusOr<WorkerLease> doubled = Get(m, "acme");
  ASSERT_FALSE(doubled.ok());
  EXPECT_NE(doubled.status().message().find("failed to start 2 time(s) in a row"), std::string::npos)
      << doubled.status().ToString();
}

}  // namespace
}  // namespace atrium::gateway

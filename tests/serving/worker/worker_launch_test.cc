// The worker process's life without a model: launch, readiness, health,
// errors that need no engine, drain and exit, the idle timeout, and a death
// the parent notices at once.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "serving/worker/rpc_status.h"
#include "tests/serving/worker/worker_test_util.h"

namespace atrium::testing {
namespace {

using std::chrono::milliseconds;

TEST(WorkerLaunchTest, ListensWhenLaunchReturnsAndReportsHealth) {
  auto w = StartWorker({"--threads", "1"}, "tenants/acme");
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(std::filesystem::exists(w->process.socket_path));
  // Only its owner may connect: the socket has no authentication of its own.
  const auto perms = std::filesystem::status(w->process.socket_path).permissions();
  EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(milliseconds(5000)));
  internal::HealthResponse health;
  const grpc::Status s = w->stub->Health(&ctx, internal::HealthRequest(), &health);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(health.state(), internal::HealthResponse::SERVING);
  EXPECT_EQ(health.tenant(), "tenants/acme");
  EXPECT_EQ(health.pid(), w->process.pid);
  EXPECT_EQ(health.streams(), 0);
  EXPECT_TRUE(health.engines().empty()) << "no model is loaded before a request needs it";
}

TEST(WorkerLaunchTest, RequestErrorsNeedNoModel) {
  auto w = StartWorker({"--threads", "1"});
  ASSERT_NE(w, nullptr);
  struct Case {
    std::string model;
    grpc::StatusCode code;
    std::string reason;
  };
  for (const Case& c : {Case{"", grpc::StatusCode::INVALID_ARGUMENT, "MODEL_REQUIRED"},
                        Case{"smollm2", grpc::StatusCode::INVALID_ARGUMENT, "INVALID_MODEL_NAME"},
                        Case{"models/../../etc/passwd", grpc::StatusCode::INVALID_ARGUMENT, "INVALID_MODEL_NAME"},
                        Case{"models/no-such-model", grpc::StatusCode::NOT_FOUND, "MODEL_NOT_FOUND"}}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(milliseconds(5000)));
    v1::GenerateRequest req;
    req.set_model(c.model);
    req.set_prompt("hello");
    auto reader = w->stub->Generate(&ctx, req);
    v1::GenerateResponse msg;
    EXPECT_FALSE(reader->Read(&msg));
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), c.code) << c.model << ": " << s.error_message();
    EXPECT_EQ(rpc::DecodeDetails(s).reason, c.reason) << c.model;
  }
}

TEST(WorkerLaunchTest, SigtermDrainsAndExits) {
  auto w = StartWorker({"--threads", "1"});
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(::kill(w->process.pid, SIGTERM), 0);
  EXPECT_TRUE(ControlClosesWithin(w->process.control_fd, 5000));
  const int status = w->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_FALSE(std::filesystem::exists(w->process.socket_path)) << "the worker removes its socket";
}

TEST(WorkerLaunchTest, IdleWorkerExitsByItself) {
  auto w = StartWorker({"--threads", "1", "--idle-timeout", "0.3"});
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(ControlClosesWithin(w->process.control_fd, 5000));
  const int status = w->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(WorkerLaunchTest, ClosingTheControlChannelStopsTheWorker) {
  // What happens when the gateway dies: its end of the channel closes.
  auto w = StartWorker({"--threads", "1"});
  ASSERT_NE(w, nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  const int status = w->Stop();  // closes the channel, waits, no signal needed
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(WorkerLaunchTest, TheParentSeesAKilledWorkerAtOnce) {
  auto w = StartWorker({"--threads", "1"});
  ASSERT_NE(w, nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(w->process.pid, SIGKILL), 0);
  EXPECT_TRUE(ControlClosesWithin(w->process.control_fd, 2000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(500));
  const int status = w->Stop();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST(WorkerLaunchTest, AWorkerThatCannotStartIsReported) {
  TempDir dir;
  worker::WorkerLaunchOptions o;
  o.binary = WorkerBinary();
  o.tenant = "tenants/test";
  o.socket_dir = dir.path();
  o.args = {"--kv-mib", "0"};  // refused by its flag parser
  o.log_path = dir.path() + "/worker.log";
  StatusOr<worker::LaunchedWorker> w = worker::LaunchWorker(o);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(w.status().message().find("exited with code"), std::string::npos) << w.status().message();
  EXPECT_NE(w.status().message().find(o.log_path), std::string::npos) << "points at the log";
  std::ifstream log(o.log_path);
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("--kv-mib"), std::string::npos) << text;

  o.binary = dir.path() + "/missing-binary";
  EXPECT_EQ(worker::LaunchWorker(o).status().code(), StatusCode::kFailedPrecondition);
  o.binary = WorkerBinary();
  o.tenant = "acme";
  EXPECT_EQ(worker::LaunchWorker(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atrium::testing

// Launching the real atrium-worker for a test, and calling it over gRPC.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "internal/worker.grpc.pb.h"
#include "serving/worker/launch.h"
#include "tests/test_util.h"

namespace atrium::testing {

// A worker process and a stub on it; stopped (and reaped) at the end.
struct TestWorker {
  TempDir dir;
  worker::LaunchedWorker process;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<internal::Worker::Stub> stub;

  ~TestWorker() { Stop(); }
  int Stop() { return process.pid > 0 ? worker::StopWorker(process, std::chrono::seconds(10)) : -1; }
  std::string log() const { return dir.path() + "/worker.log"; }
};

inline std::unique_ptr<TestWorker> StartWorker(const std::vector<std::string>& args,
                                               const std::string& tenant = "tenants/test") {
  auto w = std::make_unique<TestWorker>();
  worker::WorkerLaunchOptions o;
  o.binary = WorkerBinary();
  o.tenant = tenant;
  o.socket_dir = w->dir.path();
  o.args = args;
  o.log_path = w->log();
  StatusOr<worker::LaunchedWorker> launched = worker::LaunchWorker(o);
  EXPECT_TRUE(launched.ok()) << launched.status().ToString();
  if (!launched.ok()) return nullptr;
  w->process = *launched;
  w->channel = grpc::CreateChannel(w->process.target(), grpc::InsecureChannelCredentials());
  w->stub = internal::Worker::NewStub(w->channel);
  return w;
}

// Whether the control channel reads EOF (the worker exited) within `ms`.
inline bool ControlClosesWithin(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) <= 0) return false;
  char c;
  return (p.revents & POLLHUP) != 0 || ::recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

inline std::chrono::system_clock::time_point In(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

}  // namespace atrium::testing

// One worker process per tenant, started on demand, watched, restarted.
//
// Acquire hands out a lease on the tenant's worker: at once when it runs,
// else after starting one (serving/worker/launch.h, the one place a worker
// process is created) on a launcher thread, which then calls the waiting
// callbacks; several calls that arrive during a start share it. The caller's
// thread never waits for a start.
//
// A monitor thread polls every worker's control channel: a worker that
// exits or is killed reads EOF at once, is taken out of routing, reaped and
// logged; its calls in flight fail on their own (its socket closed, so gRPC
// ends them with UNAVAILABLE, which errors.h words for the client), and the
// tenant's next Acquire starts a new worker. The same thread stops workers
// that had no call for idle_timeout, and polls each worker's Health for the
// load metrics.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "internal/worker.grpc.pb.h"
#include "serving/gateway/metrics.h"
#include "serving/worker/launch.h"

namespace atrium::gateway {

struct WorkerManagerOptions {
  std::string worker_binary;  // atrium-worker
  // Sockets go here; keep the path short (Unix socket paths hold 107 bytes)
  // and the directory private (0700).
  std::string socket_dir;
  std::string log_dir;  // worker-<tenant>.log, appended; empty: inherit stderr
  std::vector<std::string> worker_args;  // --models-dir, --threads, --kv-mib, ...
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};  // 0: never
  std::chrono::milliseconds launch_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds health_interval{std::chrono::seconds(2)};
  // After a failed start, the tenant's calls fail at once (UNAVAILABLE) for
  // this long, doubling with each failure in a row up to start_backoff_max,
  // rather than each forking a worker that fails the same way.
  std::chrono::milliseconds start_backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds start_backoff_max{std::chrono::seconds(30)};
  int max_message_bytes = 64 << 20;  // of the gateway <-> worker channel
};

// One running worker process. Shared by the calls on it and the manager.
class WorkerHandle {
 public:
  const std::string& tenant() const { return tenant_; }  // "tenants/<id>"
  pid_t pid() const { return process_.pid; }
  internal::Worker::Stub* stub() const { return stub_.get(); }

 private:
  friend class WorkerManager;
  friend class WorkerLease;
  std::string tenant_id_;  // "<id>"
  std::string tenant_;
  worker::LaunchedWorker process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<internal::Worker::Stub> stub_;
  std::atomic<int64_t> calls_{0};  // leases alive
  std::atomic<int64_t> last_end_ns_{0};  // steady clock, when the last lease ended
};

// A call's hold on a worker: keeps it from being stopped as idle. Move-only.
class WorkerLease {
 public:
  WorkerLease() = default;
  explicit WorkerLease(std::shared_ptr<WorkerHandle> handle);
  WorkerLease(WorkerLease&& other) noexcept = default;
  WorkerLease& operator=(WorkerLease&& other) noexcept;
  ~WorkerLease() { Release(); }

  void Release();
  explicit operator bool() const { return handle_ != nullptr; }
  WorkerHandle* operator->() const { return handle_.get(); }

 private:
  std::shared_ptr<WorkerHandle> handle_;
};

class WorkerManager {
 public:
  using Ready = std::function<void(StatusOr<WorkerLease>)>;

  // `metrics` may be null; it must outlive the manager.
  WorkerManager(WorkerManagerOptions options, GatewayMetrics* metrics);
  ~WorkerManager();  // Shutdown(2 s)
  WorkerManager(const WorkerManager&) = delete;
  WorkerManager& operator=(const WorkerManager&) = delete;

  // Calls `ready` with a lease on the tenant's worker: inline when it runs,
  // else from a launcher thread once it listens. A failed start is
  // UNAVAILABLE (reason WORKER_START_FAILED in the caller's mapping) and the
  // next Acquire tries again. After Shutdown: UNAVAILABLE at once.
  void Acquire(const std::string& tenant_id, Ready ready);

  // Stops every worker (they exit at once when their control channel
  // closes; SIGKILL after `grace`) and the threads. Call it after the calls
  // on the workers are done.
  void Shutdown(std::chrono::milliseconds grace);

  // The pid of the tenant's worker, or -1 (tests, status).
  pid_t WorkerPid(const std::string& tenant_id) const;
  int workers() const;

 private:
  struct Slot {
    std::shared_ptr<WorkerHandle> handle;  // routed to; null when none
    bool launching = false;
    std::vector<Ready> waiters;
    // Failed starts in a row, and until when calls fail without a new try.
    int failures = 0;
    std::chrono::steady_clock::time_point retry_at;
    std::string last_failure;
  };
  struct Launcher {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  void Launch(const std::string& tenant_id);  // on a launcher thread
  void Monitor();
  void Wake();
  // Takes the handle out of routing and stops it (monitor thread only).
  void Retire(const std::shared_ptr<WorkerHandle>& handle, const char* why);
  void PollHealth();
  void StopIdle();

  const WorkerManagerOptions options_;
  GatewayMetrics* const metrics_;
  int wake_fd_ = -1;  // eventfd: the monitor's poll returns

  mutable std::mutex mu_;  // guards what follows
  std::map<std::string, Slot> slots_;  // by tenant id
  // Every process not yet reaped, routed or not; only the monitor reaps.
  std::vector<std::shared_ptr<WorkerHandle>> processes_;
  std::vector<Launcher> launchers_;
  bool shutdown_ = false;
  int64_t health_in_flight_ = 0;
  std::condition_variable health_cv_;

  std::thread monitor_;
};

}  // namespace atrium::gateway

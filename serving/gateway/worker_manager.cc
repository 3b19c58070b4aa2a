#include "serving/gateway/worker_manager.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

namespace atrium::gateway {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() { return Clock::now().time_since_epoch().count(); }

// Whether the worker's control channel has anything to read: the worker
// writes nothing after its readiness byte (which LaunchWorker consumed), so
// anything readable is the EOF of a process that is gone.
bool ControlReadable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace

WorkerLease::WorkerLease(std::shared_ptr<WorkerHandle> handle) : handle_(std::move(handle)) {
  if (handle_ != nullptr) handle_->calls_.fetch_add(1);
}

WorkerLease& WorkerLease::operator=(WorkerLease&& other) noexcept {
  if (this != &other) {
    Release();
    handle_ = std::move(other.handle_);
  }
  return *this;
}

void WorkerLease::Release() {
  if (handle_ == nullptr) return;
  handle_->last_end_ns_.store(NowNs());
  handle_->calls_.fetch_sub(1);
  handle_.reset();
}

WorkerManager::WorkerManager(WorkerManagerOptions options, GatewayMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ATRIUM_CHECK(wake_fd_ >= 0, "eventfd: %s", std::strerror(errno));
  monitor_ = std::thread([this] { Monitor(); });
}

WorkerManager::~WorkerManager() {
  // A worker exits within milliseconds of its control channel closing; the
  // grace only bounds a stuck one.
  Shutdown(std::chrono::seconds(2));
  ::close(wake_fd_);
}

void WorkerManager::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void WorkerManager::Acquire(const std::string& tenant_id, Ready ready) {
  std::unique_lock<std::mutex> lock(mu_);
  if (shutdown_) {
    lock.unlock();
    ready(Unavailable("the server is shutting down"));
    return;
  }
  Slot& slot = slots_[tenant_id];
  if (slot.handle != nullptr && ControlReadable(slot.handle->process_.control_fd)) {
    // It died a moment ago and the monitor has not retired it yet: do not
    // route to it (the monitor still reaps it).
    slot.handle.reset();
  }
  if (slot.handle != nullptr) {
    WorkerLease lease(slot.handle);
    lock.unlock();
    ready(std::move(lease));
    return;
  }
  if (!slot.launching && slot.failures > 0 && Clock::now() < slot.retry_at) {
    const double wait_s = std::chrono::duration<double>(slot.retry_at - Clock::now()).count();
    const Status backing_off = Unavailable(StrFormat(
        "the worker process of tenants/%s failed to start %d time(s) in a row (last: %s); the next attempt is in "
        "%.1f s (see the worker log in the data directory's logs/)",
        tenant_id.c_str(), slot.failures, slot.last_failure.c_str(), wait_s));
    lock.unlock();
    ready(backing_off);
    return;
  }
  slot.waiters.push_back(std::move(ready));
  if (slot.launching) return;
  slot.launching = true;
  // Join launchers that are done, so they do not pile up.
  for (auto it = launchers_.begin(); it != launchers_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = launchers_.erase(it);
    } else {
      ++it;
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  launchers_.push_back({std::thread([this, tenant_id, done] {
                          Launch(tenant_id);
                          done->store(true);
                        }),
                        done});
}

void WorkerManager::Launch(const std::string& tenant_id) {
  worker::WorkerLaunchOptions o;
  o.binary = options_.worker_binary;
  o.tenant = "tenants/" + tenant_id;
  o.socket_dir = options_.socket_dir;
  o.args = options_.worker_args;
  if (!options_.log_dir.empty()) o.log_path = options_.log_dir + "/worker-" + tenant_id + ".log";
  o.ready_timeout = options_.launch_timeout;
  const Clock::time_point start = Clock::now();
  StatusOr<worker::LaunchedWorker> launched = worker::LaunchWorker(o);

  std::shared_ptr<WorkerHandle> handle;
  if (launched.ok()) {
    handle = std::make_shared<WorkerHandle>();
    handle->tenant_id_ = tenant_id;
    handle->tenant_ = o.tenant;
    handle->process_ = *launched;
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(options_.max_message_bytes);
    args.SetMaxReceiveMessageSize(options_.max_message_bytes);
    // Its own connection per worker, never shared with another channel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    handle->channel_ = grpc::CreateCustomChannel(launched->target(), grpc::InsecureChannelCredentials(), args);
    handle->stub_ = internal::Worker::NewStub(handle->channel_);
    handle->last_end_ns_.store(NowNs());
    std::fprintf(stderr, "atrium: started the worker of %s (pid %d) in %.0f ms\n", o.tenant.c_str(),
                 static_cast<int>(launched->pid),
                 std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  } else {
    std::fprintf(stderr, "atrium: cannot start the worker of %s: %s\n", o.tenant.c_str(),
                 launched.status().ToString().c_str());
  }

  std::vector<Ready> waiters;
  std::vector<WorkerLease> leases;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = slots_[tenant_id];
    slot.launching = false;
    waiters.swap(slot.waiters);
    if (launched.ok()) {
      slot.failures = 0;
    } else {
      // Back off: 1x, 2x, 4x ... start_backoff, at most start_backoff_max.
      const auto backoff = std::min(options_.start_backoff * (int64_t{1} << std::min(slot.failures, 20)),
                                    std::chrono::duration_cast<std::chrono::milliseconds>(options_.start_backoff_max));
      ++slot.failures;
      slot.retry_at = Clock::now() + backoff;
      slot.last_failure = launched.status().message();
    }
    if (handle != nullptr) {
      processes_.push_back(handle);
      if (shutdown_) {
        handle.reset();  // Shutdown stops it
      } else {
        slot.handle = handle;
        for (size_t i = 0; i < waiters.size(); ++i) leases.emplace_back(handle);
      }
    }
    if (metrics_ != nullptr) metrics_->SetWorkers(static_cast<int>(processes_.size()));
  }
  Wake();  // the monitor watches the new control channel
  for (size_t i = 0; i < waiters.size(); ++i) {
    if (handle != nullptr) {
      waiters[i](std::move(leases[i]));
    } else if (!launched.ok()) {
      waiters[i](Unavailable("cannot start the worker process of tenants/" + tenant_id + ": " +
                             launched.status().message()));
    } else {
      waiters[i](Unavailable("the server is shutting down"));
    }
  }
}

void WorkerManager::Monitor() {
  Clock::time_point next_health = Clock::now();
  for (;;) {
    std::vector<std::shared_ptr<WorkerHandle>> watched;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shutdown_) return;
      watched = processes_;
    }
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    for (const auto& h : watched) fds.push_back({h->process_.control_fd, POLLIN, 0});
    const int n = ::poll(fds.data(), fds.size(), 200);
    if (n < 0 && errno != EINTR) {
      std::fprintf(stderr, "atrium: worker monitor: poll: %s\n", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (n > 0 && (fds[0].revents & POLLIN) != 0) {
      uint64_t v;
      (void)!::read(wake_fd_, &v, sizeof v);
    }
    for (size_t i = 0; n > 0 && i < watched.size(); ++i) {
      if ((fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[16];
      const ssize_t got = ::recv(fds[i + 1].fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got > 0 || (got < 0 && (errno == EAGAIN || errno == EINTR))) continue;
      Retire(watched[i], nullptr);
    }
    StopIdle();
    if (Clock::now() >= next_health) {
      next_health = Clock::now() + options_.health_interval;
      PollHealth();
    }
  }
}

void WorkerManager::Retire(const std::shared_ptr<WorkerHandle>& handle, const char* why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(handle->tenant_id_);
    if (it != slots_.end() && it->second.handle == handle) it->second.handle.reset();
  }
  const pid_t pid = handle->process_.pid;
  // A worker that exited by itself is reaped at once; one we stop exits as
  // soon as its control channel closes.
  const int status = worker::StopWorker(handle->process_, std::chrono::milliseconds(why != nullptr ? 2000 : 1000));
  const bool crashed = status != -1 && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
  const char* reason = why != nullptr ? why : crashed ? "crashed" : "exited";
  std::fprintf(stderr, "atrium: the worker of %s (pid %d) %s%s\n", handle->tenant_.c_str(), static_cast<int>(pid),
               worker::WaitStatusText(status).c_str(),
               why != nullptr ? StrFormat(" (%s)", why).c_str()
                              : "; its calls in flight failed, and the next call starts a new one");
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(processes_, handle);
    if (metrics_ != nullptr) metrics_->SetWorkers(static_cast<int>(processes_.size()));
  }
  if (metrics_ != nullptr) {
    metrics_->CountWorkerExit(reason);
    metrics_->ClearWorkerLoad(handle->tenant_id_);
  }
}

void WorkerManager::StopIdle() {
  if (options_.idle_timeout.count() <= 0) return;
  std::vector<std::shared_ptr<WorkerHandle>> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = NowNs();
    const int64_t limit = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.idle_timeout).count();
    for (auto& [tenant, slot] : slots_) {
      // Under mu_, so no Acquire hands out a lease on it meanwhile.
      if (slot.handle != nullptr && slot.handle->calls_.load() == 0 &&
          now - slot.handle->last_end_ns_.load() >= limit) {
        idle.push_back(slot.handle);
        slot.handle.reset();
      }
    }
  }
  for (const auto& h : idle) Retire(h, "idle");
}

void WorkerManager::PollHealth() {
  if (metrics_ == nullptr) return;
  std::vector<std::shared_ptr<WorkerHandle>> routed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tenant, slot] : slots_) {
      if (slot.handle != nullptr) routed.push_back(slot.handle);
    }
    health_in_flight_ += static_cast<int64_t>(routed.size());
  }
  for (const auto& h : routed) {
    struct Call {
      grpc::ClientContext ctx;
      internal::HealthRequest request;
      internal::HealthResponse response;
      std::shared_ptr<WorkerHandle> handle;
    };
    auto* call = new Call;
    call->handle = h;
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    h->stub()->async()->Health(&call->ctx, &call->request, &call->response, [this, call](grpc::Status s) {
      if (s.ok()) {
        WorkerLoad load;
        for (const internal::EngineLoad& e : call->response.engines()) {
          load.waiting += e.waiting();
          load.running += e.running();
          load.kv_blocks_used += e.kv_blocks_used();
          load.kv_blocks_total += e.kv_blocks_total();
          load.preemptions += e.preemptions();
          load.prefix_hit_tokens += e.prefix_hit_tokens();
          load.steps += e.steps();
          load.kv_blocks_cached += e.kv_blocks_cached();
        }
        load.uptime_seconds = static_cast<double>(call->response.uptime().seconds()) +
                              call->response.uptime().nanos() * 1e-9;
        metrics_->SetWorkerLoad(call->handle->tenant_id_, load);
      }
      delete call;
      std::lock_guard<std::mutex> lock(mu_);
      if (--health_in_flight_ == 0) health_cv_.notify_all();
    });
  }
}

void WorkerManager::Shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ && !monitor_.joinable()) return;
    shutdown_ = true;
  }
  Wake();
  if (monitor_.joinable()) monitor_.join();
  std::vector<Launcher> launchers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    launchers.swap(launchers_);
  }
  for (Launcher& l : launchers) l.thread.join();
  std::vector<std::shared_ptr<WorkerHandle>> processes;
  {
    std::unique_lock<std::mutex> lock(mu_);
    health_cv_.wait(lock, [this] { return health_in_flight_ == 0; });
    for (auto& [tenant, slot] : slots_) slot.handle.reset();
    processes.swap(processes_);
  }
  for (const auto& h : processes) {
    const int status = worker::StopWorker(h->process_, grace);
    if (metrics_ != nullptr) metrics_->CountWorkerExit("shutdown");
    std::fprintf(stderr, "atrium: stopped the worker of %s: it %s\n", h->tenant_.c_str(), worker::WaitStatusText(status).c_str());
  }
  if (metrics_ != nullptr) metrics_->SetWorkers(0);
}

pid_t WorkerManager::WorkerPid(const std::string& tenant_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(tenant_id);
  return it != slots_.end() && it->second.handle != nullptr ? it->second.handle->pid() : -1;
}

int WorkerManager::workers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(processes_.size());
}

}  // namespace atrium::gateway

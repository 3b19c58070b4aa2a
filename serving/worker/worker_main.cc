#include "serving/worker/worker_main.h"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>

#include <CLI/CLI.hpp>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "serving/engine/engine.h"
#include "serving/worker/model_registry.h"
#include "serving/worker/worker_service.h"

namespace atrium::worker {
namespace {

using Clock = std::chrono::steady_clock;

// How often the main thread looks at the drain and the idle clock.
constexpr int kTickMs = 20;

int Fail(const std::string& message) {
  std::fprintf(stderr, "atrium-worker: %s\n", message.c_str());
  return 1;
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

}  // namespace

void AddWorkerFlags(CLI::App& app, WorkerOptions& o) {
  app.add_option("--socket", o.socket, "Unix socket path to listen on")->required();
  app.add_option("--tenant", o.tenant, "Tenant this worker serves (\"tenants/<id>\")")->capture_default_str();
  app.add_option("--models-dir", o.models_dir, "Extra directory of .gguf files, searched first");
  app.add_option("--packed-cache-dir", o.packed_cache_dir,
                 "Keep packed weights in files here, mapped read-only and shared by every worker (default: private)");
  app.add_option("-t,--threads", o.threads, "Compute threads (0: one per core)")->capture_default_str();
  app.add_option("--kv-mib", o.kv_mib, "Paged KV pool per resident model, MiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--kv-type", o.kv_type, kKvTypeHelp)
      ->capture_default_str()->check(KvTypeNameError);
  app.add_option("--budget-mib", o.budget_mib, "Memory for resident models together (files + KV), MiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--max-queue", o.max_queue, "Waiting requests per model before RESOURCE_EXHAUSTED")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--idle-timeout", o.idle_timeout_s, "Exit after this many seconds without calls (0: never)")
      ->capture_default_str()->check(CLI::Range(0.0, 1e9));
  app.add_option("--drain-timeout", o.drain_timeout_s, "On SIGTERM, seconds streams in flight may take")
      ->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  app.add_option("--control-fd", o.control_fd, "Inherited socket from LaunchWorker (readiness, parent liveness)")
      ->capture_default_str();
  app.add_option("--max-message-mib", o.max_message_mib, "Largest request message accepted, MiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 10));
}

int RunWorker(const WorkerOptions& o) {
  if (o.socket.empty()) return Fail("--socket is required");
  if (o.socket.size() >= sizeof(sockaddr_un::sun_path)) {
    return Fail(StrFormat("--socket %s: a Unix socket path holds at most %zu bytes", o.socket.c_str(),
                          sizeof(sockaddr_un::sun_path) - 1));
  }
  if (o.tenant.rfind("tenants/", 0) != 0 || o.tenant.size() == 8) {
    return Fail("--tenant must be \"tenants/<id>\", got '" + o.tenant + "'");
  }
  // The socket (and anything else created) is for this user only: the
  // gateway is the one client.
  ::umask(0077);
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  // Before any thread starts, so every thread inherits the mask and the
  // signals reach only the signalfd.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) return Fail(std::string("signalfd: ") + std::strerror(errno));

  ops::Context ctx(o.threads);
  ModelRegistry registry(o.models_dir);
  ModelPoolOptions pool_options;
  pool_options.budget_bytes = o.budget_mib << 20;
  pool_options.engine.kv_budget_bytes = o.kv_mib << 20;
  StatusOr<DType> kv_type = KvTypeFromName(o.kv_type);
  if (!kv_type.ok()) return Fail(std::string(kv_type.status().message()));
  pool_options.engine.kv_dtype = *kv_type;
  pool_options.engine.max_queue = static_cast<size_t>(o.max_queue);
  pool_options.models_dir = o.models_dir;
  pool_options.packed_cache_dir = o.packed_cache_dir;
  pool_options.tokenizer_for = [&registry](const std::string& path) { return registry.TokenizerOf(path); };
  ModelPool pool(ctx, pool_options);
  WorkerService service(registry, pool, o.tenant);

  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + o.socket, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_mib << 20));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    ::close(signal_fd);
    return Fail("cannot listen on unix:" + o.socket + " (does its directory exist and is it writable?)");
  }
  std::fprintf(stderr, "atrium-worker: %s: %zu models, listening on unix:%s (pid %d)\n", o.tenant.c_str(),
               registry.List().size(), o.socket.c_str(), static_cast<int>(::getpid()));
  if (o.control_fd >= 0) {
    // Readiness for LaunchWorker; it may not wait for it, so never block.
    const char ready = 'R';
    (void)!::send(o.control_fd, &ready, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  }

  bool hard = false;  // exit without waiting for streams
  bool signalled = false;
  for (;;) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {o.control_fd, POLLIN, 0}};  // poll ignores fd -1
    const int n = ::poll(fds, 2, kTickMs);
    if (n < 0 && errno != EINTR) return Fail(std::string("poll: ") + std::strerror(errno));
    if (n > 0 && (fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info;
      (void)!::read(signal_fd, &info, sizeof info);
      if (!signalled) {
        signalled = true;
        std::fprintf(stderr, "atrium-worker: signal %u: draining (at most %.0f s), then exiting\n", info.ssi_signo,
                     o.drain_timeout_s);
        service.StartDrain(Millis(o.drain_timeout_s), /*exit=*/true);
      } else {
        std::fprintf(stderr, "atrium-worker: second signal: exiting now\n");
        hard = true;
        break;
      }
    }
    if (n > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char buf[64];
      const ssize_t got = ::recv(o.control_fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        std::fprintf(stderr, "atrium-worker: the gateway went away: exiting now\n");
        hard = true;
        break;
      }
    }
    service.Tick();
    if (service.exit_wanted()) break;
    if (o.idle_timeout_s > 0 && service.streams() == 0 && !service.draining() &&
        Clock::now() - service.last_activity() >= Millis(o.idle_timeout_s)) {
      std::fprintf(stderr, "atrium-worker: idle for %.0f s: exiting\n", o.idle_timeout_s);
      break;
    }
  }
  // Streams have ended by now unless the exit is hard. The grace lets the
  // last answers reach their clients; Shutdown waits for it in full
  // while any client keeps its connection open, so it is short. Calls still
  // open then are cancelled, and their engine requests end within one step.
  const auto grace = hard ? std::chrono::milliseconds(0) : std::chrono::milliseconds(250);
  server->Shutdown(std::chrono::system_clock::now() + grace);
  server->Wait();
  server.reset();
  ::unlink(o.socket.c_str());
  std::fprintf(stderr, "atrium-worker: %s: exited\n", o.tenant.c_str());
  ::close(signal_fd);
  return 0;
}

int WorkerMain(int argc, char** argv) {
  CLI::App app{
      "atrium-worker: one tenant's inference engine behind the Worker gRPC service\n"
      "(proto/internal/worker.proto) on a Unix socket. The gateway starts it (serving/worker/launch.h);\n"
      "run it by hand to debug:\n"
      "  atrium-worker --socket /tmp/w.sock --tenant tenants/acme -t 2"};
  WorkerOptions options;
  AddWorkerFlags(app, options);
  CLI11_PARSE(app, argc, argv);
  return RunWorker(options);
}

}  // namespace atrium::worker

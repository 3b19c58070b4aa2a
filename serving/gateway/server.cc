#include "serving/gateway/server.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "serving/gateway/admin_service.h"
#include "serving/gateway/audit_writer.h"
#include "serving/gateway/call_gate.h"
#include "serving/gateway/inference_service.h"
#include "serving/gateway/metrics.h"
#include "serving/gateway/plaza_service.h"
#include "serving/gateway/quota.h"
#include "serving/gateway/worker_manager.h"

namespace atrium::gateway {
namespace {

constexpr const char* kServiceNames[] = {"atrium.v1.ModelPlaza", "atrium.v1.Inference", "atrium.v1.Admin"};

// A private directory for the workers' sockets: short (a Unix socket path
// holds 107 bytes, and tenant ids are up to 63), and 0700, as the sockets
// have no authentication of their own.
StatusOr<std::string> MakeSocketDir() {
  const char* base = std::getenv("XDG_RUNTIME_DIR");
  std::string tmpl = std::string(base != nullptr && std::strlen(base) < 40 ? base : "/tmp") + "/atrium-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return FailedPrecondition(StrFormat("cannot create a socket directory %s: %s", tmpl.c_str(), std::strerror(errno)));
  }
  return tmpl;
}

}  // namespace

std::string DefaultWorkerBinary() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "atrium-worker";
  return (self.parent_path() / "atrium-worker").string();
}

struct GatewayServer::Impl {
  DataDir data;
  std::string socket_dir;
  std::unique_ptr<worker::ModelRegistry> models;
  GatewayMetrics metrics;
  int metrics_port = 0;
  std::unique_ptr<AuditWriter> audit;
  QuotaLimiter quota;
  std::unique_ptr<WorkerManager> workers;
  CallGate gate;
  std::unique_ptr<PlazaService> plaza;
  std::unique_ptr<InferenceService> inference;
  std::unique_ptr<AdminService> admin;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  std::mutex mu;
  std::condition_variable drained_cv;
  bool draining = false;
  bool drained = false;

  ~Impl() {
    // Members go in reverse order; the server (and with it every call) and
    // the workers are gone before the state the calls use.
    server.reset();
    workers.reset();
    audit.reset();
    if (!socket_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(socket_dir, ec);
    }
  }
};

GatewayServer::GatewayServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const GatewayOptions& o, DataDir data) {
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.data = std::move(data);
  const std::string worker_binary = o.worker_binary.empty() ? DefaultWorkerBinary() : o.worker_binary;
  if (::access(worker_binary.c_str(), X_OK) != 0) {
    return FailedPrecondition("the worker binary " + worker_binary +
                              " is not an executable file (build the atrium-worker target, or pass --worker-binary)");
  }
  ASSIGN_OR_RETURN(s.socket_dir, MakeSocketDir());
  s.models = std::make_unique<worker::ModelRegistry>(o.models_dir);
  if (!o.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(s.metrics_port, s.metrics.Serve(o.metrics_listen));
  }
  s.audit = std::make_unique<AuditWriter>(*s.data.store);

  WorkerManagerOptions w;
  w.worker_binary = worker_binary;
  w.socket_dir = s.socket_dir;
  w.log_dir = s.data.log_dir;
  if (!o.models_dir.empty()) w.worker_args.insert(w.worker_args.end(), {"--models-dir", o.models_dir});
  // Every tenant's worker maps the same packed weights read-only: one copy
  // in the page cache, however many workers hold a model.
  w.worker_args.insert(w.worker_args.end(), {"--packed-cache-dir", s.data.packed_dir});
  w.worker_args.insert(w.worker_args.end(),
                       {"--threads", std::to_string(o.worker_threads), "--kv-mib", std::to_string(o.worker_kv_mib), "--kv-type",
                        o.worker_kv_type,
                        "--budget-mib", std::to_string(o.worker_budget_mib), "--max-message-mib",
                        std::to_string(std::max<int64_t>(1, (o.max_message_bytes + (1 << 20) - 1) >> 20))});
  w.idle_timeout = o.worker_idle_timeout;
  w.max_message_bytes = static_cast<int>(std::min<int64_t>(o.max_message_bytes + (1 << 20), INT32_MAX));
  s.workers = std::make_unique<WorkerManager>(std::move(w), &s.metrics);

  const CallSinks sinks{s.audit.get(), &s.metrics};
  InferenceDeps deps;
  deps.store = s.data.store.get();
  deps.quota = &s.quota;
  deps.workers = s.workers.get();
  deps.models = s.models.get();
  deps.gate = &s.gate;
  deps.sinks = sinks;
  deps.limits = o.limits;
  s.plaza = std::make_unique<PlazaService>(*s.data.store, *s.models, sinks);
  s.inference = std::make_unique<InferenceService>(deps);
  s.admin = std::make_unique<AdminService>(*s.data.store, sinks);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &s.port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(o.max_message_bytes, INT32_MAX)));
  builder.RegisterService(s.plaza.get());
  builder.RegisterService(s.inference.get());
  builder.RegisterService(s.admin.get());
  s.server = builder.BuildAndStart();
  if (s.server == nullptr || s.port == 0) {
    return Unavailable("cannot listen on " + o.listen + " (is the port taken? use --port)");
  }
  grpc::HealthCheckServiceInterface* health = s.server->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const char* name : kServiceNames) health->SetServingStatus(name, true);
  return std::unique_ptr<GatewayServer>(new GatewayServer(std::move(impl)));
}

GatewayServer::~GatewayServer() {
  Drain(std::chrono::milliseconds(0));
  Wait();
}

int GatewayServer::port() const { return impl_->port; }
int GatewayServer::metrics_port() const { return impl_->metrics_port; }
size_t GatewayServer::models() const { return impl_->models->List().size(); }

void GatewayServer::Drain(std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.draining) return;
    s.draining = true;
  }
  // Load balancers see NOT_SERVING first, then new calls are refused.
  s.server->GetHealthCheckService()->SetServingStatus(false);
  s.gate.Close();
  const int64_t in_flight = s.gate.in_flight();
  if (in_flight > 0) {
    std::fprintf(stderr, "atrium: draining: waiting up to %.0f s for %lld calls in flight\n", timeout.count() / 1000.0,
                 static_cast<long long>(in_flight));
  }
  const bool idle = s.gate.WaitIdle(std::chrono::steady_clock::now() + timeout);
  if (!idle) {
    std::fprintf(stderr, "atrium: drain timeout: cancelling %lld calls still in flight\n",
                 static_cast<long long>(s.gate.in_flight()));
  }
  // Cancels what is left (each call's OnCancel cancels its worker call) and
  // returns once every call is done.
  s.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  s.server->Wait();
  s.workers->Shutdown(std::chrono::seconds(5));
  s.audit->Flush();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.drained = true;
  }
  s.drained_cv.notify_all();
}

void GatewayServer::Wait() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->drained_cv.wait(lock, [this] { return impl_->drained; });
}

}  // namespace atrium::gateway

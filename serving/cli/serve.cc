// `atrium serve`: the gateway process.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "serving/cli/commands.h"
#include "serving/gateway/server.h"

namespace atrium::cli {
namespace {

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// Where the Python stubs of the protos are, when this is a build tree.
std::string PythonStubsDir() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const std::filesystem::path dir = self.parent_path() / "python";
  return std::filesystem::exists(dir / "atrium" / "v1" / "inference_pb2_grpc.py", ec) ? dir.string() : "";
}

void PrintBanner(const gateway::GatewayServer& server, const gateway::DataDir& data, const ServeFlags& f) {
  const std::string connect = StrFormat("localhost:%d", server.port());
  std::printf("atrium: serving %zu models on %s:%d (gRPC: ModelPlaza, Inference, Admin; health and reflection on)\n",
              server.models(), f.host.c_str(), server.port());
  if (server.metrics_port() > 0) {
    std::printf("atrium: metrics on http://%s:%d/metrics\n", f.host.c_str(), server.metrics_port());
  }
  std::printf("atrium: data in %s (tenants, keys and the audit log in atrium.db; worker logs in logs/)\n",
              data.path.c_str());
  if (data.new_admin_key.has_value()) {
    std::printf(
        "\nFirst run: created the operator tenant tenants/admin and its admin key. It is shown this once\n"
        "(the server keeps only its hash) and was written to %s (readable by you only):\n\n  %s\n",
        data.admin_key_file.c_str(), data.new_admin_key->secret.c_str());
  } else {
    std::printf("atrium: the admin key is in %s (written on the first run)\n", data.admin_key_file.c_str());
  }
  const std::string stubs = PythonStubsDir();
  std::printf(
      "\nCreate a tenant and its API key:\n"
      "  atrium admin --address %s --key-file %s create-tenant acme\n"
      "  atrium admin --address %s --key-file %s create-key acme      (prints the key's secret)\n"
      "\nFirst call, from Python with grpcio (stubs: %s):\n"
      "  import grpc\n"
      "  from atrium.v1 import inference_pb2 as pb, inference_pb2_grpc as rpc\n"
      "  stub = rpc.InferenceStub(grpc.insecure_channel('%s'))\n"
      "  for m in stub.Generate(pb.GenerateRequest(model='models/smollm2-135m-instruct',\n"
      "                         prompt='The capital of France is', config=pb.GenerationConfig(max_tokens=16)),\n"
      "                         metadata=[('authorization', 'Bearer <key>')]):\n"
      "      print(m.text, end='', flush=True)\n\n",
      connect.c_str(), data.admin_key_file.c_str(), connect.c_str(), data.admin_key_file.c_str(),
      stubs.empty() ? "PYTHONPATH=<build>/python" : ("PYTHONPATH=" + stubs).c_str(), connect.c_str());
  std::printf("atrium: listening on %s:%d\n", f.host.c_str(), server.port());
  std::fflush(stdout);
}

}  // namespace

int RunServe(const CommonFlags& common, const ServeFlags& f) {
  // Before any thread starts, so every thread inherits the mask and the
  // signals reach only the signalfd below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  const int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) return Fail(Internal(std::string("signalfd: ") + std::strerror(errno)));

  StatusOr<gateway::DataDir> data = gateway::OpenDataDir(f.data_dir);
  if (!data.ok()) return Fail(data.status());
  gateway::GatewayOptions o;
  o.listen = StrFormat("%s:%d", f.host.c_str(), f.port);
  o.metrics_listen = f.metrics_port < 0 ? "" : StrFormat("%s:%d", f.host.c_str(), f.metrics_port);
  o.models_dir = common.models_dir;
  o.worker_binary = f.worker_binary;
  o.worker_threads = common.threads;
  o.worker_kv_mib = f.kv_mib;
  o.worker_kv_type = f.kv_type;
  o.worker_budget_mib = f.budget_mib;
  o.worker_idle_timeout = Millis(f.idle_timeout);
  o.max_message_bytes = f.max_message_mib << 20;
  o.limits.max_prompt_bytes = static_cast<size_t>(f.max_prompt_kib) << 10;
  if (o.limits.max_prompt_bytes >= static_cast<size_t>(o.max_message_bytes)) {
    return Fail(InvalidArgument("--max-prompt-kib must be below --max-message-mib"));
  }
  // Printed before Start takes the data directory.
  gateway::DataDir& d = *data;
  const gateway::DataDir banner{d.path, nullptr, d.log_dir, d.new_admin_key, d.admin_key_file, d.packed_dir};
  StatusOr<std::unique_ptr<gateway::GatewayServer>> server = gateway::GatewayServer::Start(o, std::move(d));
  if (!server.ok()) return Fail(server.status());
  PrintBanner(**server, banner, f);

  // Written by the drain thread once the drain is done.
  const int drained_fd = ::eventfd(0, EFD_CLOEXEC);
  std::thread drain;
  for (;;) {
    pollfd p[2] = {{signal_fd, POLLIN, 0}, {drained_fd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((p[1].revents & POLLIN) != 0) break;
    signalfd_siginfo info;
    if (::read(signal_fd, &info, sizeof info) != sizeof info) continue;
    if (drain.joinable()) {
      // The user's second Ctrl-C: exit now. The workers exit by themselves
      // when this process goes (their control channel closes).
      std::fprintf(stderr, "atrium: second signal: exiting now\n");
      std::_Exit(1);
    }
    std::fprintf(stderr, "atrium: %s: draining (calls in flight may take %.0f s), then exiting\n",
                 strsignal(static_cast<int>(info.ssi_signo)), f.drain_timeout);
    drain = std::thread([&] {
      (*server)->Drain(Millis(f.drain_timeout));
      const uint64_t one = 1;
      (void)!::write(drained_fd, &one, sizeof one);
    });
  }
  if (drain.joinable()) drain.join();
  server->reset();
  ::close(drained_fd);
  ::close(signal_fd);
  std::fprintf(stderr, "atrium: stopped\n");
  return 0;
}

}  // namespace atrium::cli

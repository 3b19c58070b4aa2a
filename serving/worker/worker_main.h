// The atrium-worker process: one tenant's engine behind the Worker gRPC
// service on a Unix socket. A function, so that the `atrium` CLI can offer
// the same process as a subcommand.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace atrium::worker {

struct WorkerOptions {
  std::string socket;                    // listen here (a Unix socket path); required
  std::string tenant = "tenants/default";  // prefix cache namespace, reported by Health
  std::string models_dir;                // searched first for models (see Catalog::SearchDirs)
  std::string packed_cache_dir;          // shared packed-weight files (ModelPoolOptions); "": private
  int threads = 0;                       // compute threads (0: one per core)
  int64_t kv_mib = 256;                  // each resident model's paged KV pool
  std::string kv_type = "f16";           // its element type: f16, q8_0 or f32
  int64_t budget_mib = 4096;             // resident models together (files + KV)
  int64_t max_queue = 1024;              // waiting requests per model
  double idle_timeout_s = 0;             // exit after this long without calls (0: never)
  double drain_timeout_s = 30;           // on SIGTERM, how long streams in flight may take
  int control_fd = -1;                   // from LaunchWorker (see launch.h); -1: none
  int64_t max_message_mib = 64;          // largest request accepted
};

// The flags of WorkerOptions, for atrium-worker and a CLI subcommand.
void AddWorkerFlags(CLI::App& app, WorkerOptions& options);

// Serves until SIGTERM (drains, then exits), SIGINT twice, the idle
// timeout, or the control fd's peer going away (the gateway
// died: exit at once). Returns the process exit code. Call it before the
// process starts other threads: it blocks SIGTERM and SIGINT in all threads
// and reads them from a signalfd.
int RunWorker(const WorkerOptions& options);

// main() of atrium-worker: flags -> RunWorker.
int WorkerMain(int argc, char** argv);

}  // namespace atrium::worker

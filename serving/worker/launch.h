// Starting a worker process: the one place a worker is created, so that its
// sandbox (namespaces, seccomp, cgroups, rlimits; a later issue) is added
// here and nowhere else.
//
// The parent and the worker share a socketpair, the control channel: the
// worker writes one byte once it listens, and reads EOF when the parent's
// end closes, which happens when the gateway process dies however it dies
// (unlike PR_SET_PDEATHSIG, which follows the forking thread, not the
// process). On the parent's side the same socket reads EOF the moment the
// worker exits, so a dead worker is noticed at once (poll it for POLLHUP).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace atrium::worker {

struct WorkerLaunchOptions {
  std::string binary;  // the atrium-worker executable
  std::string tenant;  // "tenants/<id>"
  // Where the socket goes: <socket_dir>/<id>-<n>.sock. Make it private
  // (0700): the socket has no authentication of its own.
  std::string socket_dir;
  // More worker flags: --models-dir, --threads, --kv-mib, --idle-timeout, ...
  std::vector<std::string> args;
  // stdout and stderr are appended here; empty: inherited.
  std::string log_path;
  // Wait until the worker listens (then a connection succeeds at once);
  // 0: return right after the exec.
  std::chrono::milliseconds ready_timeout{30000};
};

struct LaunchedWorker {
  pid_t pid = -1;
  std::string socket_path;
  // The parent's end of the control channel (close-on-exec). Reads EOF when
  // the worker exits; closing it makes the worker exit at once. The caller
  // owns it (StopWorker closes it).
  int control_fd = -1;

  std::string target() const { return "unix:" + socket_path; }
};

// fork + exec of atrium-worker. Fails with the worker's exit status (and
// the log to read) when it dies before listening, UNAVAILABLE when it does
// not listen within ready_timeout (it is killed then).
StatusOr<LaunchedWorker> LaunchWorker(const WorkerLaunchOptions& options);

// Closes the control channel, which makes the worker exit; SIGKILL after
// `grace`. Reaps it and returns its wait status (as waitpid gives it).
int StopWorker(LaunchedWorker& worker, std::chrono::milliseconds grace);

// A wait status in words, for logs: "exited with code 1", "was killed by
// signal 9 (Killed)"; -1 (not reaped) is "could not be reaped".
std::string WaitStatusText(int status);

}  // namespace atrium::worker

#include "serving/worker/launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <thread>

namespace atrium::worker {
namespace {

using Clock = std::chrono::steady_clock;

// The worker's end of the control channel, as passed in --control-fd.
constexpr int kChildControlFd = 3;

// Waits for the child to end, at most `timeout`; -1 if it has not.
int WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const Clock::time_point until = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (Clock::now() >= until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Only async-signal-safe calls between fork and exec: the parent may have
// other threads, which may hold locks (malloc's among them) at the fork.
[[noreturn]] void ExecChild(const char* binary, char* const* argv, int control, int log_fd, int null_fd) {
  // Our own process group: a terminal's Ctrl-C goes to the gateway, which
  // drains its workers itself.
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Lift every source above the targets first, so no dup2 below overwrites
  // one it still needs (the log may well be fd 3).
  const int c = ::fcntl(control, F_DUPFD, 10);
  const int nul = null_fd >= 0 ? ::fcntl(null_fd, F_DUPFD, 10) : -1;
  const int log = log_fd >= 0 ? ::fcntl(log_fd, F_DUPFD, 10) : -1;
  if (nul >= 0) ::dup2(nul, STDIN_FILENO);
  if (log >= 0) {
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
  }
  ::dup2(c, kChildControlFd);  // dup2 clears close-on-exec
  // Nothing else of the gateway's (its listening sockets, its database)
  // reaches the worker, close-on-exec or not.
  if (::syscall(SYS_close_range, kChildControlFd + 1, ~0U, 0) != 0) {
    for (int fd = kChildControlFd + 1; fd < 4096; ++fd) ::close(fd);
  }
  // --- The sandbox goes here (a later issue). ---
  ::execv(binary, argv);
  const int err = errno;
  (void)!::write(kChildControlFd, "E", 1);
  (void)!::write(kChildControlFd, &err, sizeof err);
  ::_exit(127);
}

}  // namespace

std::string WaitStatusText(int status) {
  if (status == -1) return "could not be reaped";
  if (WIFEXITED(status)) return StrFormat("exited with code %d", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return StrFormat("was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return StrFormat("ended with wait status %d", status);
}

StatusOr<LaunchedWorker> LaunchWorker(const WorkerLaunchOptions& o) {
  if (o.binary.empty() || ::access(o.binary.c_str(), X_OK) != 0) {
    return FailedPrecondition("worker binary '" + o.binary + "' is not an executable file");
  }
  if (o.tenant.rfind("tenants/", 0) != 0 || o.tenant.size() == 8) {
    return InvalidArgument("tenant must be \"tenants/<id>\", got '" + o.tenant + "'");
  }
  static std::atomic<int> counter{0};
  std::string id = o.tenant.substr(8);
  for (char& c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  }
  LaunchedWorker w;
  w.socket_path = StrFormat("%s/%s-%d-%d.sock", o.socket_dir.c_str(), id.c_str(), static_cast<int>(::getpid()),
                            counter.fetch_add(1));
  if (w.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgument(StrFormat("socket path %s is longer than a Unix socket allows (%zu bytes); use a shorter "
                                     "socket_dir",
                                     w.socket_path.c_str(), sizeof(sockaddr_un::sun_path) - 1));
  }
  ::unlink(w.socket_path.c_str());

  std::vector<std::string> args = {o.binary, "--socket", w.socket_path, "--tenant", o.tenant, "--control-fd",
                                   std::to_string(kChildControlFd)};
  args.insert(args.end(), o.args.begin(), o.args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return Internal(std::string("socketpair: ") + std::strerror(errno));
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int log_fd = -1;
  if (!o.log_path.empty()) {
    log_fd = ::open(o.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
      const int err = errno;
      ::close(pair[0]);
      ::close(pair[1]);
      if (null_fd >= 0) ::close(null_fd);
      return FailedPrecondition("worker log " + o.log_path + ": " + std::strerror(err));
    }
  }
  const pid_t pid = ::fork();
  if (pid == 0) ExecChild(argv[0], argv.data(), pair[1], log_fd, null_fd);
  const int fork_errno = errno;
  ::close(pair[1]);
  if (log_fd >= 0) ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  if (pid < 0) {
    ::close(pair[0]);
    return ResourceExhausted(std::string("fork: ") + std::strerror(fork_errno));
  }
  w.pid = pid;
  w.control_fd = pair[0];
  const std::string log_hint = o.log_path.empty() ? "" : " (see " + o.log_path + ")";

  if (o.ready_timeout.count() <= 0) return w;
  const Clock::time_point until = Clock::now() + o.ready_timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    pollfd p{w.control_fd, POLLIN, 0};
    const int n = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      StopWorker(w, std::chrono::milliseconds(0));
      return Unavailable(StrFormat("the worker for %s did not listen within %lld ms%s", o.tenant.c_str(),
                                   static_cast<long long>(o.ready_timeout.count()), log_hint.c_str()));
    }
    char tag = 0;
    const ssize_t got = ::recv(w.control_fd, &tag, 1, 0);
    if (got == 1 && tag == 'R') return w;
    if (got == 1 && tag == 'E') {
      int err = 0;
      (void)!::recv(w.control_fd, &err, sizeof err, MSG_WAITALL);
      StopWorker(w, std::chrono::milliseconds(1000));
      return FailedPrecondition("cannot exec " + o.binary + ": " + std::strerror(err));
    }
    if (got < 0 && errno == EINTR) continue;
    // EOF: it died before listening.
    const int status = StopWorker(w, std::chrono::milliseconds(1000));
    return Unavailable(StrFormat("the worker for %s %s before it listened%s", o.tenant.c_str(),
                                 WaitStatusText(status).c_str(), log_hint.c_str()));
  }
}

int StopWorker(LaunchedWorker& w, std::chrono::milliseconds grace) {
  if (w.control_fd >= 0) {
    ::close(w.control_fd);
    w.control_fd = -1;
  }
  if (w.pid <= 0) return -1;
  int status = WaitFor(w.pid, grace);
  if (status == -1) {
    ::kill(w.pid, SIGKILL);
    status = WaitFor(w.pid, std::chrono::seconds(10));
  }
  w.pid = -1;
  return status;
}

}  // namespace atrium::worker

#include "inspector/watchdog.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "inspector/net.h"
#include "inspector/websocket.h"

namespace memlens::inspector {

namespace {
constexpr char kDismiss = 'd';
constexpr int kPipeFd = 3, kNetnsFd = 4;
}  // namespace

Status close_inspector_remotely(int netns_fd, const std::string& host, uint16_t port,
                                const std::string& ws_path) {
  auto fd = connect_in_namespace_here(netns_fd, host, port, 2000);
  if (!fd) return fd.error();
  auto ws = WebSocket::open(*fd, fmt::format("{}:{}", host, port), ws_path);
  if (!ws) return ws.error();
  nlohmann::json msg = {
      {"id", 1}, {"method", "Runtime.evaluate"}, {"params", {{"expression", "process._debugEnd()"}}}};
  if (auto s = (*ws)->send_text(msg.dump()); !s) return s;
  // The answer, or the connection closing as the inspector stops: either ends it.
  for (int i = 0; i < 8; ++i) {
    auto m = (*ws)->receive(1 << 20);
    if (m || m.error().errno_value != EAGAIN) break;
  }
  return {};
}

Result<InspectorWatchdog> InspectorWatchdog::start(pid_t netns_pid, const std::string& host, uint16_t port,
                                                   const std::string& ws_path) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe");
  int netns = open(fmt::format("/proc/{}/ns/net", netns_pid).c_str(), O_RDONLY | O_CLOEXEC);
  if (netns < 0) {
    Error e = errno_error("cannot open the target's network namespace");
    close(fds[0]);
    close(fds[1]);
    return e;
  }
  pid_t child = fork();
  if (child < 0) {
    Error e = errno_error("cannot fork the inspector watchdog");
    close(fds[0]);
    close(fds[1]);
    close(netns);
    return e;
  }
  if (child == 0) {
    setsid();
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU})
      signal(sig, SIG_IGN);
    prctl(PR_SET_NAME, "memlens-inspect", 0, 0, 0);
    // Only the pipe's read end and the namespace stay open.
    int r = fcntl(fds[0], F_DUPFD_CLOEXEC, 10);
    int n = fcntl(netns, F_DUPFD_CLOEXEC, 10);
    dup2(r, kPipeFd);
    dup2(n, kNetnsFd);
    syscall(SYS_close_range, kNetnsFd + 1, ~0u, 0);
    char c = 0;
    ssize_t got;
    do {
      got = read(kPipeFd, &c, 1);
    } while (got < 0 && errno == EINTR);
    if (got == 1 && c == kDismiss) _exit(0);
    // memlens ended without closing the inspector.
    _exit(close_inspector_remotely(kNetnsFd, host, port, ws_path) ? 0 : 1);
  }
  close(fds[0]);
  close(netns);
  InspectorWatchdog w;
  w.pid_ = child;
  w.pipe_ = fds[1];
  return w;
}

InspectorWatchdog::InspectorWatchdog(InspectorWatchdog&& o) noexcept : pid_(o.pid_), pipe_(o.pipe_) {
  o.pid_ = -1;
  o.pipe_ = -1;
}

InspectorWatchdog& InspectorWatchdog::operator=(InspectorWatchdog&& o) noexcept {
  if (this != &o) {
    release();
    pid_ = o.pid_;
    pipe_ = o.pipe_;
    o.pid_ = -1;
    o.pipe_ = -1;
  }
  return *this;
}

void InspectorWatchdog::dismiss() {
  if (pipe_ >= 0) {
    (void)!write(pipe_, &kDismiss, 1);
    close(pipe_);
    pipe_ = -1;
  }
  if (pid_ > 0) {
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

void InspectorWatchdog::release() {
  if (pipe_ >= 0) {
    close(pipe_);  // not dismissed: the watchdog closes the inspector
    pipe_ = -1;
  }
  if (pid_ > 0) {
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

InspectorWatchdog::~InspectorWatchdog() {
  release();
}

}  // namespace memlens::inspector

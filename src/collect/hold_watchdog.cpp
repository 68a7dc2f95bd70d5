#include "collect/hold_watchdog.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "collect/hold.h"

namespace memlens::collect {

namespace {

// The fd numbers the watchdog keeps (every other one is closed).
constexpr int kSockFd = 3, kMemlensFd = 4, kAnchorFd = 5;

constexpr int kIgnoredSignals[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGPIPE, SIGTSTP,
                                   SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH};

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Receives one fd sent with SCM_RIGHTS; -1 at EOF or on error.
int receive_fd(int sock) {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
      return fd;
    }
  return -1;
}

// The anchor: a process of memlens's process group whose parent (the watchdog) is in another group of the
// same session. While it lives, memlens's group is not orphaned when memlens dies: otherwise the kernel
// (POSIX's orphaned process groups) would send SIGHUP and SIGCONT to the whole group at memlens's death
// if a process in it is stopped, which a held process is, and the traced tree would be hung up.
[[noreturn]] void anchor_main(pid_t memlens_pgid) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  prctl(PR_SET_NAME, "memlens-anchor", 0, 0, 0);
  if (setpgid(0, memlens_pgid) != 0) _exit(1);
  char c;
  while (read(kAnchorFd, &c, 1) < 0 && errno == EINTR) {
  }
  _exit(0);  // the watchdog is done (EOF): every hold was released
}

// Locked by memlens's main thread for as long as it lives: a robust mutex in memory shared with the
// watchdog. The kernel hands it over, marked "owner died", as soon as that thread starts to exit (it walks
// the thread's robust list when it releases its memory, before it closes any file): the watchdog's first
// sign that memlens is ending, whatever ends it.
pthread_mutex_t* g_alive = nullptr;

[[noreturn]] void watchdog_main(int sock, int memlens_pidfd) {
  // A process group of its own in memlens's session: a terminal's Ctrl-C (for the foreground group) or a
  // kill of memlens's group is not for it. The signals that could still reach it by accident are ignored.
  pid_t memlens_pgid = getpgrp();
  setpgid(0, 0);
  for (int sig : kIgnoredSignals) signal(sig, SIG_IGN);
  prctl(PR_SET_NAME, "memlens-release", 0, 0, 0);
  // Keep the socket and the pidfd only: memlens's output (a pipe a caller reads to its end) must not stay
  // open for as long as the watchdog lives. (Moved out of the way first: either may be fd 3 or 4.)
  int high_sock = fcntl(sock, F_DUPFD, 64), high_pidfd = fcntl(memlens_pidfd, F_DUPFD, 64);
  if (high_sock < 0 || high_pidfd < 0 || dup2(high_sock, kSockFd) < 0 || dup2(high_pidfd, kMemlensFd) < 0)
    _exit(1);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  syscall(SYS_close_range, kMemlensFd + 1, ~0u, 0);
  int anchor_pipe[2];
  pid_t anchor = -1;
  if (memlens_pgid != getpgrp() && pipe(anchor_pipe) == 0) {
    anchor = fork();
    if (anchor == 0) {
      close(anchor_pipe[1]);
      if (dup2(anchor_pipe[0], kAnchorFd) < 0) _exit(1);
      close(kSockFd);
      close(kMemlensFd);
      anchor_main(memlens_pgid);
    }
    close(anchor_pipe[0]);
  }

  // First the hold map, or memlens's end if it comes before.
  int map_fd = -1;
  while (map_fd < 0) {
    pollfd fds[2] = {{kMemlensFd, POLLIN, 0}, {kSockFd, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[0].revents) break;
    if (fds[1].revents && (map_fd = receive_fd(kSockFd)) < 0) break;  // EOF: memlens is ending
  }
  if (map_fd >= 0) {
    // memlens's end comes in steps: its memory is released (the robust mutex is handed over), its files
    // are closed one after the other (the BPF links among them, each uprobe link waiting for a grace
    // period of its own: seconds for a few hundred), and only then its pidfd becomes readable. From the
    // first step on, no process may wait for the last: the map is swept every 50 ms (a fork or exec
    // program may still hold a process until its own link is closed), then a few times after the end (a
    // program that had begun a hold just before may still record it for a few microseconds).
    int r = pthread_mutex_lock(g_alive);
    if (r == 0 || r == EOWNERDEAD) {
      while (true) {
        release_all_held(map_fd);
        pollfd fd{kMemlensFd, POLLIN, 0};
        int n = poll(&fd, 1, 50);
        if (n > 0 || (n < 0 && errno != EINTR)) break;
      }
    }
    for (long wait_ms : {0L, 50L, 100L, 200L}) {
      sleep_ms(wait_ms);
      release_all_held(map_fd);
    }
  }
  if (anchor > 0) {
    close(anchor_pipe[1]);
    while (waitpid(anchor, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  _exit(0);
}

}  // namespace

Result<HoldWatchdog> HoldWatchdog::start() {
  if (!g_alive) {
    void* shared =
        mmap(nullptr, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return errno_error("cannot map the watchdog's shared page");
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    g_alive = static_cast<pthread_mutex_t*>(shared);
    pthread_mutex_init(g_alive, &attr);
    pthread_mutexattr_destroy(&attr);
    // Held by this (the main) thread until memlens exits: never unlocked.
    if (int r = pthread_mutex_lock(g_alive); r != 0) return make_error("cannot lock the watchdog's mutex", r);
  }
  int memlens_pidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  if (memlens_pidfd < 0) return errno_error("cannot open a pidfd of memlens (Linux 5.3+)");
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    int e = errno;
    close(memlens_pidfd);
    return make_error("cannot create the watchdog's socket", e);
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(memlens_pidfd);
    close(sv[0]);
    close(sv[1]);
    return make_error("cannot start the watchdog process", e);
  }
  if (pid == 0) watchdog_main(sv[1], memlens_pidfd);
  close(memlens_pidfd);
  close(sv[1]);
  HoldWatchdog w;
  w.pid_ = pid;
  w.sock_ = sv[0];
  return w;
}

HoldWatchdog& HoldWatchdog::operator=(HoldWatchdog&& o) noexcept {
  if (this != &o) {
    if (sock_ >= 0) close(sock_);
    pid_ = o.pid_;
    sock_ = o.sock_;
    o.pid_ = -1;
    o.sock_ = -1;
  }
  return *this;
}

HoldWatchdog::~HoldWatchdog() {
  if (sock_ >= 0) close(sock_);
}

Status HoldWatchdog::watch(int held_map_fd) {
  if (sock_ < 0) return make_error("no watchdog");
  char byte = 1;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &held_map_fd, sizeof(int));
  ssize_t n;
  do n = sendmsg(sock_, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != 1) return errno_error("cannot hand the hold map to the watchdog");
  return {};
}

}  // namespace memlens::collect

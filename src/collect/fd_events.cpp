#include "collect/fd_events.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/close_range.h>
#include <sys/socket.h>

#include <algorithm>

#include "memlens/abi.h"
#include "proc/fd_scan.h"

namespace memlens::collect {

namespace {

std::string family_name(int domain) {
  switch (domain) {
    case AF_UNIX:
      return "unix";
    case AF_INET:
      return "inet";
    case AF_INET6:
      return "inet6";
    case AF_NETLINK:
      return "netlink";
    case AF_PACKET:
      return "packet";
    default:
      return fmt::format("af_{}", domain);
  }
}

std::string protocol_name(int domain, int type) {
  int base = type & 0xf;  // SOCK_NONBLOCK and SOCK_CLOEXEC are or'ed into type
  bool inet = domain == AF_INET || domain == AF_INET6;
  switch (base) {
    case SOCK_STREAM:
      return inet ? "tcp" : "stream";
    case SOCK_DGRAM:
      return inet ? "udp" : "dgram";
    case SOCK_SEQPACKET:
      return "seqpacket";
    case SOCK_RAW:
      return "raw";
    default:
      return fmt::format("type_{}", base);
  }
}

std::string join_path(const std::string& dir, const std::string& rel) {
  if (dir.empty() || rel.empty() || rel.front() == '/') return rel;
  return dir.back() == '/' ? dir + rel : dir + "/" + rel;
}

}  // namespace

std::string fd_kind_name(uint32_t kind) {
  switch (kind) {
    case ML_FDK_OPEN:
      return "open";
    case ML_FDK_OPENAT:
      return "openat";
    case ML_FDK_CREAT:
      return "creat";
    case ML_FDK_SOCKET:
      return "socket";
    case ML_FDK_SOCKETPAIR:
      return "socketpair";
    case ML_FDK_ACCEPT:
      return "accept";
    case ML_FDK_ACCEPT4:
      return "accept4";
    case ML_FDK_PIPE:
      return "pipe";
    case ML_FDK_PIPE2:
      return "pipe2";
    case ML_FDK_DUP:
      return "dup";
    case ML_FDK_DUP2:
      return "dup2";
    case ML_FDK_DUP3:
      return "dup3";
    case ML_FDK_FCNTL:
      return "fcntl";
    case ML_FDK_EVENTFD:
      return "eventfd";
    case ML_FDK_EPOLL_CREATE:
      return "epoll_create";
    case ML_FDK_EPOLL_CREATE1:
      return "epoll_create1";
    case ML_FDK_TIMERFD:
      return "timerfd_create";
    case ML_FDK_SIGNALFD:
      return "signalfd";
    case ML_FDK_MEMFD:
      return "memfd_create";
    case ML_FDK_INOTIFY_INIT:
      return "inotify_init";
    case ML_FDK_INOTIFY_INIT1:
      return "inotify_init1";
    case ML_FDK_PIDFD_OPEN:
      return "pidfd_open";
    case ML_FDK_CLOSE:
      return "close";
    case ML_FDK_CLOSE_RANGE:
      return "close_range";
    default:
      return fmt::format("kind_{}", kind);
  }
}

bool apply_fd_event(model::FdTable& table, const FdEvent& e, double t_s) {
  auto arg_int = [&](int i) { return static_cast<int>(static_cast<uint32_t>(e.args[i])); };
  auto arg_u32 = [&](int i) { return static_cast<uint32_t>(e.args[i]); };

  if (e.close) {
    if (e.kind == ML_FDK_CLOSE) {
      table.close(arg_int(0), t_s);
    } else if (e.kind == ML_FDK_CLOSE_RANGE) {
      if (arg_u32(2) & CLOSE_RANGE_CLOEXEC)
        table.set_cloexec_range(arg_u32(0), arg_u32(1), true);
      else
        table.close_range(arg_u32(0), arg_u32(1), t_s);
    } else {
      return false;
    }
    return true;
  }
  std::string path = e.path;
  int fd = static_cast<int>(e.result);
  std::string call = fd_kind_name(e.kind);
  model::FdEntry n;
  n.fd = fd;
  n.opened_at_s = t_s;
  n.stack_id = e.stack_id;
  n.caller_ip = e.caller_ip;
  n.opened_by = call;
  n.resolved = true;  // the call says what it created; paths are confirmed from /proc later
  auto typed = [&](model::FdType type, bool cloexec) {
    n.type = type;
    n.cloexec = cloexec;
    if (cloexec) n.flags |= O_CLOEXEC;
    table.open(n);
  };
  switch (e.kind) {
    case ML_FDK_OPEN:
    case ML_FDK_OPENAT:
    case ML_FDK_CREAT: {
      uint32_t flags = e.kind == ML_FDK_OPEN     ? arg_u32(1)
                       : e.kind == ML_FDK_OPENAT ? arg_u32(2)
                                                 : static_cast<uint32_t>(O_CREAT | O_WRONLY | O_TRUNC);
      if (e.kind == ML_FDK_OPENAT && arg_int(0) != AT_FDCWD && !path.empty() && path.front() != '/') {
        if (const auto* dir = table.find(arg_int(0))) path = join_path(dir->path, path);
      }
      n.path = path;
      n.flags = flags;
      n.cloexec = (flags & O_CLOEXEC) != 0;
      n.type = model::FdType::kUnknown;
      n.resolved = false;
      table.open(n);
      break;
    }
    case ML_FDK_SOCKET:
      n.socket =
          model::SocketAddress{family_name(arg_int(0)), protocol_name(arg_int(0), arg_int(1)), "", "", ""};
      typed(model::FdType::kSocket, (arg_u32(1) & SOCK_CLOEXEC) != 0);
      break;
    case ML_FDK_SOCKETPAIR:
      n.socket =
          model::SocketAddress{family_name(arg_int(0)), protocol_name(arg_int(0), arg_int(1)), "", "", ""};
      for (int s : e.fds) {
        n.fd = s;
        if (s >= 0) typed(model::FdType::kSocket, (arg_u32(1) & SOCK_CLOEXEC) != 0);
      }
      break;
    case ML_FDK_ACCEPT:
    case ML_FDK_ACCEPT4: {
      // The connection has the listener's family and protocol.
      if (const auto* l = table.find(arg_int(0)); l && l->socket)
        n.socket = model::SocketAddress{l->socket->family, l->socket->protocol, "", "", ""};
      else
        n.socket = model::SocketAddress{};
      typed(model::FdType::kSocket, e.kind == ML_FDK_ACCEPT4 && (arg_u32(2) & SOCK_CLOEXEC) != 0);
      break;
    }
    case ML_FDK_PIPE:
    case ML_FDK_PIPE2:
      for (int s : e.fds) {
        n.fd = s;
        if (s >= 0) typed(model::FdType::kPipe, e.kind == ML_FDK_PIPE2 && (arg_u32(1) & O_CLOEXEC) != 0);
      }
      break;
    case ML_FDK_DUP:
      table.duplicate(arg_int(0), fd, false, false, t_s, e.stack_id, call, e.caller_ip);
      break;
    case ML_FDK_DUP2:
      table.duplicate(arg_int(0), fd, false, true, t_s, e.stack_id, call, e.caller_ip);
      break;
    case ML_FDK_DUP3:
      table.duplicate(arg_int(0), fd, (arg_u32(2) & O_CLOEXEC) != 0, true, t_s, e.stack_id, call,
                      e.caller_ip);
      break;
    case ML_FDK_FCNTL: {
      int cmd = arg_int(1);
      if (cmd == F_SETFD)
        table.set_cloexec_range(arg_u32(0), arg_u32(0), (e.args[2] & FD_CLOEXEC) != 0);
      else if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        table.duplicate(arg_int(0), fd, cmd == F_DUPFD_CLOEXEC, false, t_s, e.stack_id, call, e.caller_ip);
      break;
    }
    case ML_FDK_EVENTFD:
      typed(model::FdType::kEventfd, (arg_u32(1) & O_CLOEXEC) != 0);
      break;
    case ML_FDK_EPOLL_CREATE:
      typed(model::FdType::kEpoll, false);
      break;
    case ML_FDK_EPOLL_CREATE1:
      typed(model::FdType::kEpoll, (arg_u32(0) & O_CLOEXEC) != 0);
      break;
    case ML_FDK_TIMERFD:
      typed(model::FdType::kTimerfd, (arg_u32(1) & O_CLOEXEC) != 0);
      break;
    case ML_FDK_SIGNALFD:
      typed(model::FdType::kSignalfd, (arg_u32(2) & O_CLOEXEC) != 0);
      break;
    case ML_FDK_MEMFD:
      n.path = "/memfd:" + path;
      typed(model::FdType::kMemfd, (arg_u32(1) & 1u /* MFD_CLOEXEC */) != 0);
      break;
    case ML_FDK_INOTIFY_INIT:
      typed(model::FdType::kInotify, false);
      break;
    case ML_FDK_INOTIFY_INIT1:
      typed(model::FdType::kInotify, (arg_u32(0) & O_CLOEXEC) != 0);
      break;
    case ML_FDK_PIDFD_OPEN:
      typed(model::FdType::kPidfd, true);
      break;  // pidfds are always close-on-exec
    default:
      return false;
  }
  return true;
}

void apply_fds_at_exit(model::FdTable& table, const ml_fd_exit_fds& snap, double t) {
  uint32_t words = std::min<uint32_t>(snap.words, ML_FD_EXIT_MAX_FDS / 64);
  int copied_limit = static_cast<int>(words * 64);
  std::vector<int> open;
  for (uint32_t w = 0; w < words; ++w)
    for (uint64_t bits = snap.open_bits[w]; bits != 0; bits &= bits - 1)
      open.push_back(static_cast<int>(w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits))));
  for (auto it = table.entries().lower_bound(copied_limit); it != table.entries().end(); ++it)
    open.push_back(it->first);
  for (int fd : table.reconcile_numbers(open, t)) {
    // Open at exit, created by no traced call; /proc can no longer say what it was.
    proc::ProcFd f;
    f.fd = fd;
    f.type = model::FdType::kOther;
    table.add_unseen(f, t);
  }
}

}  // namespace memlens::collect

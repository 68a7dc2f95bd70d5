#include "host/process_events.h"

#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/clock.h"
#include "host/node_processes.h"
#include "model/attribution.h"
#include "proc/procfs.h"

namespace memlens::host {

Result<std::unique_ptr<NodeLifecycleListener>> NodeLifecycleListener::start(bool keep_started) {
  std::unique_ptr<NodeLifecycleListener> l(new NodeLifecycleListener());
  l->keep_started_ = keep_started;
  l->sock_ = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  if (l->sock_ < 0) return errno_error("cannot open the kernel's process-event connector");
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = CN_IDX_PROC;
  if (bind(l->sock_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return errno_error("cannot listen to process events (needs CAP_NET_ADMIN)");
  // A burst of short processes must not overflow the socket before the thread reads it.
  int rcvbuf = 4 << 20;
  setsockopt(l->sock_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  // The subscription: a netlink header, a connector header, then the multicast operation.
  alignas(nlmsghdr) char req[NLMSG_SPACE(sizeof(cn_msg) + sizeof(proc_cn_mcast_op))] = {};
  auto* nl = reinterpret_cast<nlmsghdr*>(req);
  nl->nlmsg_len = NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_cn_mcast_op));
  nl->nlmsg_type = NLMSG_DONE;
  auto* cn = static_cast<cn_msg*>(NLMSG_DATA(nl));
  cn->id.idx = CN_IDX_PROC;
  cn->id.val = CN_VAL_PROC;
  cn->len = sizeof(proc_cn_mcast_op);
  proc_cn_mcast_op op = PROC_CN_MCAST_LISTEN;
  std::memcpy(cn->data, &op, sizeof(op));
  if (send(l->sock_, req, nl->nlmsg_len, 0) < 0) return errno_error("cannot subscribe to process events");
  // Linux 6.6 and later take a filter with the operation (struct proc_input): exec and exit only, not the
  // fork of every process and thread nor uid, sid or comm changes, so that the thread wakes up about twice
  // per program run rather than four times. Older kernels ignore a message of this size and keep sending
  // every event (filtered here as before).
  struct {
    uint32_t mcast_op, event_type;
  } filter{PROC_CN_MCAST_LISTEN, proc_event::PROC_EVENT_EXEC | proc_event::PROC_EVENT_EXIT};
  alignas(nlmsghdr) char freq[NLMSG_SPACE(sizeof(cn_msg) + sizeof(filter))] = {};
  auto* fnl = reinterpret_cast<nlmsghdr*>(freq);
  fnl->nlmsg_len = NLMSG_LENGTH(sizeof(cn_msg) + sizeof(filter));
  fnl->nlmsg_type = NLMSG_DONE;
  auto* fcn = static_cast<cn_msg*>(NLMSG_DATA(fnl));
  fcn->id = cn->id;
  fcn->len = sizeof(filter);
  std::memcpy(fcn->data, &filter, sizeof(filter));
  (void)send(l->sock_, freq, fnl->nlmsg_len, 0);  // best effort: without it every event still comes
  if (pipe2(l->stop_pipe_, O_CLOEXEC) != 0) return errno_error("cannot create a pipe");
  l->thread_ = std::thread([p = l.get()] { p->run(); });
  return l;
}

NodeLifecycleListener::~NodeLifecycleListener() {
  if (thread_.joinable()) {
    (void)!write(stop_pipe_[1], "x", 1);
    thread_.join();
  }
  for (int fd : {sock_, stop_pipe_[0], stop_pipe_[1]})
    if (fd >= 0) close(fd);
}

NodeLifecycleCounts NodeLifecycleListener::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

void NodeLifecycleListener::track(pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  live_node_.insert(pid);
}

void NodeLifecycleListener::node_started(pid_t tgid, std::string exe, double at_s, bool libnode) {
  ++counts_.started;
  live_node_.insert(tgid);
  if (keep_started_) started_.push_back({tgid, std::move(exe), at_s, libnode});
}

void NodeLifecycleListener::on_exec(pid_t tgid) {
  // Read at once: a short process may be gone by the next message. Its executable (not its maps, which
  // the loader has not filled yet) tells a program embedding Node; a program seen before costs an open,
  // a readlink and an fstat.
  auto exe = read_executable(tgid);
  double now = monotonic_s();
  bool runs_node = exe && exe->runs_node();
  std::lock_guard<std::mutex> lock(mu_);
  if (!exe) ++counts_.unclassified;
  bool was_node = live_node_.count(tgid) > 0;
  if (runs_node && !was_node) {
    node_started(tgid, exe->path, now, exe->needs_libnode);
  } else if (!runs_node && was_node) {
    // A Node process that exec'd another program has ended as a Node process.
    ++counts_.exited;
    live_node_.erase(tgid);
  }
}

void NodeLifecycleListener::on_exit(pid_t tgid, uint32_t exit_code) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!live_node_.erase(tgid)) return;
  ++counts_.exited;
  // exit_code is the wait status: the low seven bits are the signal that killed it.
  if ((exit_code & 0x7f) == SIGKILL) {
    killed_.push_back({tgid, monotonic_s()});
  }
}

std::vector<NodeStarted> NodeLifecycleListener::take_started() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(started_, {});
}

std::vector<NodeKilled> NodeLifecycleListener::take_killed() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(killed_, {});
}

void NodeLifecycleListener::run() {
  alignas(nlmsghdr) char buf[64 << 10];
  while (true) {
    pollfd fds[2] = {{sock_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int ready = poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    ssize_t n = recv(sock_, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == ENOBUFS) {
        std::lock_guard<std::mutex> lock(mu_);
        ++counts_.overruns;
      }
      if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) continue;
      return;
    }
    for (auto* nl = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nl, static_cast<unsigned>(n));
         nl = NLMSG_NEXT(nl, n)) {
      if (nl->nlmsg_type == NLMSG_ERROR || nl->nlmsg_type == NLMSG_NOOP) continue;
      auto* cn = static_cast<cn_msg*>(NLMSG_DATA(nl));
      if (cn->id.idx != CN_IDX_PROC || cn->len < sizeof(proc_event)) continue;
      proc_event ev;
      std::memcpy(&ev, cn->data, sizeof(ev));
      if (ev.what == proc_event::PROC_EVENT_EXEC) {
        on_exec(static_cast<pid_t>(ev.event_data.exec.process_tgid));
      } else if (ev.what == proc_event::PROC_EVENT_EXIT &&
                 ev.event_data.exit.process_pid == ev.event_data.exit.process_tgid) {
        on_exit(static_cast<pid_t>(ev.event_data.exit.process_tgid), ev.event_data.exit.exit_code);
      }
    }
  }
}

}  // namespace memlens::host

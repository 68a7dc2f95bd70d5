#include "collect/hold.h"

#include <bpf/bpf.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "memlens/abi.h"
#include "model/process.h"
#include "proc/procfs.h"

namespace memlens::collect {

namespace {

int pidfd_open(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace

bool process_gone(pid_t pid, uint64_t start_time_ticks) {
  auto st = proc::read_stat(pid);
  return !st || st->state == 'Z' || st->state == 'X' || st->start_time_ticks != start_time_ticks;
}

ReleaseOutcome release_process(pid_t pid, uint64_t start_time_ns) {
  int fd = pidfd_open(pid);
  if (fd < 0) return ReleaseOutcome::kGone;
  // The pidfd names one process from here on: if /proc shows the start time the kernel recorded, the
  // process it names is the one held (not a later process given the same pid).
  auto st = proc::read_stat(pid);
  ReleaseOutcome out = ReleaseOutcome::kGone;
  if (st && st->start_time_ticks == model::start_time_ns_to_ticks(start_time_ns))
    out = pidfd_send_signal(fd, SIGCONT) == 0 ? ReleaseOutcome::kReleased
          : errno == ESRCH                    ? ReleaseOutcome::kGone
                                              : ReleaseOutcome::kFailed;
  close(fd);
  return out;
}

void forget_hold(int held_map_fd, pid_t pid, uint64_t start_time_ns) {
  __u32 key = static_cast<__u32>(pid);
  ml_hold h{};
  if (bpf_map_lookup_elem(held_map_fd, &key, &h) != 0) return;
  // A later hold of the same pid (the process exec'd and is held again, or the pid was reused) stays.
  if (h.start_time_ns == start_time_ns) bpf_map_delete_elem(held_map_fd, &key);
}

size_t release_all_held(int held_map_fd) {
  std::vector<std::pair<__u32, ml_hold>> held;
  __u32 key = 0, next = 0;
  const __u32* prev = nullptr;
  while (bpf_map_get_next_key(held_map_fd, prev, &next) == 0) {
    ml_hold h{};
    if (bpf_map_lookup_elem(held_map_fd, &next, &h) == 0) held.emplace_back(next, h);
    key = next;
    prev = &key;
  }
  size_t released = 0;
  for (const auto& [pid, h] : held) {
    if (release_process(static_cast<pid_t>(pid), h.start_time_ns) == ReleaseOutcome::kReleased) ++released;
    forget_hold(held_map_fd, static_cast<pid_t>(pid), h.start_time_ns);
  }
  return released;
}

}  // namespace memlens::collect

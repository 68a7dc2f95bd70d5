#include "collect/fd_reconcile.h"

#include "common/clock.h"
#include "proc/fd_scan.h"
#include "proc/procfs.h"
#include "proc/sock_diag.h"

namespace memlens::collect {

void resolve_some(model::FdTable& table, pid_t pid, size_t max) {
  for (int fd : table.unresolved(max)) {
    auto f = proc::read_fd(pid, fd, false);
    if (f) table.resolve(*f);
  }
}

bool reconcile_with_proc(model::Trace& trace, model::Process& p) {
  if (p.fds.open_count() > kReconcileMaxFds) return false;
  auto listed = proc::list_fds(p.pid(), kReconcileMaxFds);
  if (!listed) return false;
  // The listing must be this process's, alive: not a later process that got the pid, not one past
  // releasing its files.
  auto st = proc::read_stat(p.pid());
  if (!st || st->start_time_ticks != p.key().start_time_ticks || st->state == 'Z' || st->state == 'X')
    return false;
  if (listed->empty() && p.fds.open_count() > 0) return false;  // files released by an exit in progress
  // Taken after the listing: a traced call that returned before it has an earlier time.
  double now = trace.seconds_since_start(boot_ns());
  for (int fd : p.fds.reconcile_numbers(*listed, now))
    if (auto f = proc::read_fd(p.pid(), fd, true)) p.fds.add_unseen(*f, now);
  return true;
}

void resolve_sockets(model::FdTable& table, pid_t pid) {
  if (table.sockets_open() == 0) return;
  for (const auto& [fd, e] : table.entries()) {
    if (model::effective_type(e) != model::FdType::kSocket || e.inode != 0) continue;
    if (auto f = proc::read_fd(pid, fd, false)) table.resolve(*f);
  }
  table.set_socket_addresses(proc::read_sockets(pid));
}

}  // namespace memlens::collect

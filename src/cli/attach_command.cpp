// memlens attach PID: trace a running process and its descendants without restarting it.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/signals.h"
#include "cli/trace_session.h"
#include "proc/procfs.h"

namespace memlens::cli {

int attach_command(pid_t pid, const TraceOptions& opts) {
  if (pid <= 0 || !proc::process_exists(pid)) {
    fmt::print(stderr, "memlens attach: no process with pid {}\n  remedy: check the pid (ps -e | grep node)\n", pid);
    return kExitNoProcess;
  }
  install_stop_handlers();
  TraceSession session(opts);
  if (int rc = session.start(); rc != kExitOk) return rc;
  session.trace().info.attached_pid = pid;
  if (int rc = session.track_root(pid, true); rc != kExitOk) return rc;
  if (!opts.quiet) fmt::print(stderr, "memlens: attached to pid {}; Ctrl-C to stop\n", pid);
  session.loop(nullptr, nullptr);
  return session.finish_and_report();
}

}  // namespace memlens::cli

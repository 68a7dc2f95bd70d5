// memlens attach PID: trace a running process and its descendants without restarting it.
#include <fmt/format.h>

#include <set>

#include "cli/commands.h"
#include "cli/signals.h"
#include "cli/trace_session.h"
#include "common/clock.h"
#include "host/node_processes.h"
#include "model/attribution.h"
#include "proc/procfs.h"
#include "symbolize/perf_map.h"

namespace memlens::cli {

namespace {

// A node started without V8's perf map cannot have its JS frames named, and nothing memlens does from
// outside changes that: say so at once, with what to do, rather than only in the report.
void warn_without_perf_map(pid_t pid, const TraceOptions& opts) {
  if (!opts.stacks) return;
  auto exe = proc::read_exe(pid);
  if (!exe || !model::looks_like_node(*exe)) return;
  auto reader = symbolize::PerfMapReader::for_process(pid);
  if (!reader) return;
  Status s = reader->refresh();
  if (s.ok() || s.error().errno_value != ENOENT) return;
  fmt::print(
      stderr,
      "memlens: pid {} writes no perf map ({}): JS frames in stacks will be unnamed (native frames are "
      "named)\n  remedy: start node with --perf-basic-prof-only-functions (or NODE_OPTIONS=\"--perf-basic-"
      "prof-only-functions\"), or use memlens run, which adds it\n",
      pid, reader->path());
}

}  // namespace

int attach_command(pid_t pid, const TraceOptions& opts) {
  if (pid <= 0 || !proc::process_exists(pid)) {
    fmt::print(stderr,
               "memlens attach: no process with pid {}\n  remedy: check the pid (ps -e | grep node)\n", pid);
    return kExitNoProcess;
  }
  if (!proc::process_running(pid)) {
    auto st = proc::read_stat(pid);
    fmt::print(
        stderr,
        "memlens attach: pid {} has exited (a zombie not yet reaped by its parent{}): it has no memory "
        "left to trace\n  remedy: attach to a live process (ps -e -o pid,stat,comm | grep node)\n",
        pid, st ? fmt::format(", pid {}", st->ppid) : "");
    return kExitNoProcess;
  }
  install_stop_handlers();
  TraceSession session(opts);
  if (int rc = session.start(); rc != kExitOk) return rc;
  session.trace().info.attached_pid = pid;
  if (int rc = session.track_root(pid, true); rc != kExitOk) return rc;
  if (!opts.quiet) {
    fmt::print(stderr, "memlens: attached to pid {}; Ctrl-C to stop\n", pid);
    warn_without_perf_map(pid, opts);
  }
  session.loop(nullptr, nullptr);
  return session.finish_and_report();
}

int attach_all_command(const host::TopFilter& filter, const TraceOptions& opts) {
  install_stop_handlers();
  TraceSession session(opts);
  if (int rc = session.start(); rc != kExitOk) return rc;
  session.trace().info.host_wide = true;
  host::NodeProcessFinder finder;
  std::set<std::pair<pid_t, uint64_t>> tracked;
  // Every Node process of the host that passes the filter, now and as they start: a new one is found by
  // the next scan (each second) and traced from then on (its children are followed from their fork).
  auto discover = [&]() {
    for (const auto& p : finder.scan()) {
      if (!filter.matches(p)) continue;
      if (!tracked.insert({p.pid, p.start_time_ticks}).second) continue;
      if (session.trace().processes.find_live(p.pid)) continue;  // a descendant of one traced already
      if (session.track_root(p.pid, true) == kExitOk && !opts.quiet)
        fmt::print(stderr, "memlens: tracing pid {} ({})\n", p.pid, p.command);
    }
  };
  discover();
  if (tracked.empty() && !opts.quiet)
    fmt::print(stderr, "memlens: no Node process on this host yet; waiting for one (Ctrl-C to stop)\n");
  double next_scan = monotonic_s() + 1;
  // Never "exited": a host-wide trace ends with --duration or a signal, not with one process.
  session.loop(
      [&]() {
        if (monotonic_s() >= next_scan) {
          discover();
          next_scan = monotonic_s() + 1;
        }
        return false;
      },
      nullptr);
  return session.finish_and_report();
}

}  // namespace memlens::cli

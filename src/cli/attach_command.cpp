// memlens attach PID: trace a running process and its descendants without restarting it.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "cli/commands.h"
#include "cli/host_wide.h"
#include "cli/signals.h"
#include "cli/trace_session.h"
#include "common/clock.h"
#include "host/node_processes.h"
#include "host/process_events.h"
#include "model/attribution.h"
#include "node/v8_frame_layout.h"
#include "proc/procfs.h"
#include "symbolize/perf_map.h"

namespace memlens::cli {

namespace {

// A node started without V8's perf map whose V8 metadata memlens does not understand cannot have its JS
// frames named: say so at once, with what to do, rather than only in the report.
void warn_without_perf_map(pid_t pid, const TraceOptions& opts) {
  if (!opts.stacks) return;
  auto exe = proc::read_exe(pid);
  if (!exe || !model::looks_like_node(*exe)) return;
  auto reader = symbolize::PerfMapReader::for_process(pid);
  if (!reader) return;
  Status s = reader->refresh();
  if (s.ok() || s.error().errno_value != ENOENT) return;
  // Without a perf map, JS frames are named from V8's metadata when its layout is understood.
  if (auto maps = proc::read_maps(pid); maps && node::v8_layout_for_process(pid, *maps).layout) return;
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
  trace_host_wide(session, filter, opts, nullptr);
  return session.finish_and_report();
}

void trace_host_wide(TraceSession& session, const host::TopFilter& filter, const TraceOptions& opts,
                     const std::function<void()>& each_poll) {
  model::TraceInfo& info = session.trace().info;
  info.host_wide = true;
  // New Node processes as the kernel announces their exec, so one that lives a few milliseconds is traced
  // or, when it ends first, listed as missed; without the connector, scans of /proc each second (a
  // process shorter than that can go unseen, and the report says so).
  std::unique_ptr<host::NodeLifecycleListener> events;
  if (auto listener = host::NodeLifecycleListener::start(true); listener) {
    events = std::move(*listener);
    info.discovery = "kernel process events";
  } else {
    info.discovery = "scans of /proc each second (" + listener.error().describe() + ")";
  }
  host::NodeProcessFinder finder;
  std::set<std::pair<pid_t, uint64_t>> tracked;
  auto appears = [&](pid_t pid) {
    for (const auto& p : session.trace().processes.all())
      if (p->pid() == pid) return true;
    return false;
  };
  // One Node process that passes the filter: traced from now on (its children are followed from their
  // fork), unless it is traced already.
  auto trace_one = [&](const host::NodeProcess& p) {
    if (!tracked.insert({p.pid, p.start_time_ticks}).second) return;
    if (session.trace().processes.find_live(p.pid)) return;  // a descendant of one traced already
    if (session.track_root(p.pid, true) == kExitOk) {
      if (!opts.quiet) fmt::print(stderr, "memlens: tracing pid {} ({})\n", p.pid, p.command);
    } else if (!appears(p.pid)) {
      double now = session.trace().seconds_since_start(boot_ns());
      info.missed_processes.push_back({p.pid, p.exe, now,
                                       proc::process_running(p.pid)
                                           ? "its probes could not be attached"
                                           : "it ended while memlens attached to it"});
    }
  };
  auto discover = [&]() {
    for (const auto& p : finder.scan())
      if (filter.matches(p)) trace_one(p);
  };
  auto take_started = [&]() {
    if (!events) return;
    for (const auto& s : events->take_started()) {
      auto p = host::describe_node_process(s.pid);
      if (p && !filter.matches(*p)) continue;
      ++info.node_started;
      if (p) {
        trace_one(*p);
        continue;
      }
      if (appears(s.pid)) continue;  // followed from its parent's fork, and ended since
      double now = session.trace().seconds_since_start(boot_ns());
      double waited_ms = 1000 * (monotonic_s() - s.at_monotonic_s);
      info.missed_processes.push_back(
          {s.pid, s.exe, std::max(0.0, now - waited_ms / 1000),
           fmt::format("ended within {:.0f} ms of its exec, before memlens could attach to it{}", waited_ms,
                       filter.empty() ? "" : " (whether it passed the filter is not known)")});
    }
  };
  discover();
  if (tracked.empty() && !opts.quiet)
    fmt::print(stderr, "memlens: no Node process on this host yet; waiting for one (Ctrl-C to stop)\n");
  double next_scan = monotonic_s() + 1;
  // Never "exited": a host-wide trace ends with --duration or a signal, not with one process.
  session.loop(
      [&]() {
        take_started();
        // The scans stay, behind the kernel's announcements: they find what those missed (a program that
        // maps libnode.so late, announcements the kernel dropped).
        if (monotonic_s() >= next_scan) {
          discover();
          next_scan = monotonic_s() + 1;
        }
        if (each_poll) each_poll();
        return false;
      },
      nullptr);
  take_started();
  if (events) {
    info.discovery_overruns = events->counts().overruns;
    info.discovery_unclassified = events->counts().unclassified;
    events.reset();  // stops its thread before the report is written
  }
}

}  // namespace memlens::cli

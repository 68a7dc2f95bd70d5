// Everything one trace produced: how it was started, which probes ran, what was lost, and the processes.
// The report writers read only this (plus the analysed verdicts and stack profiles).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/process.h"

namespace memlens::model {

struct SkippedProbe {
  std::string name;
  std::string reason;
};

// A Node process a host-wide trace saw start (the kernel announced it) but never traced: it ended (or its
// probes failed) before memlens could attach to it. Never silent: each is listed in the report.
struct MissedProcess {
  pid_t pid = 0;
  std::string exe;
  double at_s = 0;     // trace time it started
  std::string reason;  // why it was not traced
};

// The unwind tables of a trace with stacks (collect/unwind_tables.h), and what the kernel's stack walks
// did with them.
struct UnwindInfo {
  bool enabled = false;
  uint64_t budget_bytes = 0, used_bytes = 0;  // kernel memory for the tables: the cap and what they took
  uint64_t files = 0;                         // executable files whose table is loaded
  double compile_ms = 0;                      // time spent compiling them
  std::vector<std::string> prepared_files;    // memlens run: compiled before the command started
  struct Failed {
    std::string file, reason;  // a file whose frames are unwound by frame pointers, and why
  };
  std::vector<Failed> failed;
  std::map<std::string, uint64_t> walks;  // the kernel's counters (report.json's unwind.walks)
};

struct TraceInfo {
  std::vector<std::string> command;   // argv of `memlens run`
  std::optional<pid_t> attached_pid;  // `memlens attach`
  bool host_wide = false;             // `memlens attach --all`: every Node process of the host
  // Host-wide: how new Node processes were found ("kernel process events", or scans of /proc and why),
  // how many the kernel announced (with the times it dropped announcements), and those never traced.
  std::string discovery;
  uint64_t node_started = 0;
  uint64_t discovery_overruns = 0;
  uint64_t discovery_unclassified =
      0;  // programs that ended before memlens could tell whether they were Node
  std::vector<MissedProcess> missed_processes;
  std::string started_at;        // RFC 3339, UTC
  uint64_t started_boot_ns = 0;  // CLOCK_BOOTTIME at start: t_s = (event ns - this) / 1e9
  int64_t started_unix_ns = 0;   // wall clock at start
  double duration_s = 0;
  double interval_s = 1;
  std::string kernel;
  std::vector<std::string> probes_attached;
  std::vector<SkippedProbe> probes_skipped;
  // Events lost by cause (model/loss.h), per source that counts them ("kernel", "tracer", "v8", "fds"):
  // each source sets its own figures; events_lost() adds them up.
  std::map<std::string, EventLoss> loss_by_source;
  UnwindInfo unwind;
  uint64_t stacks_lost = 0;  // user stacks the kernel could not record (the events themselves were counted)
  uint64_t events_received = 0;
  bool holding = false;       // new processes were held until their probes were attached
  bool holding_fork = false;  // forks too (not only exec'd images)
  std::string stop_reason;    // "target exited", "duration reached", "signal SIGTERM", ...
};

struct Trace {
  TraceInfo info;
  Registry processes;

  EventLoss events_lost() const;
  // Processes that ran (part of their life) untraced, and for how long in all, up to now_s (trace time).
  struct Untraced {
    uint64_t processes = 0;
    double seconds = 0;
  };
  Untraced untraced(double now_s) const;
  double seconds_since_start(uint64_t boot_ns) const;
};

}  // namespace memlens::model

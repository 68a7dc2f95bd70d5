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

struct TraceInfo {
  std::vector<std::string> command;  // argv of `memlens run`
  std::optional<pid_t> attached_pid;  // `memlens attach`
  bool host_wide = false;             // `memlens attach --all`: every Node process of the host
  std::string started_at;             // RFC 3339, UTC
  uint64_t started_boot_ns = 0;       // CLOCK_BOOTTIME at start: t_s = (event ns - this) / 1e9
  int64_t started_unix_ns = 0;        // wall clock at start
  double duration_s = 0;
  double interval_s = 1;
  std::string kernel;
  std::vector<std::string> probes_attached;
  std::vector<SkippedProbe> probes_skipped;
  // Lost events per stage: "kernel_ringbuf_full", "userspace_unknown_process", ... Every stage is listed,
  // zero or not, so a reader can tell "nothing lost" from "not counted".
  std::map<std::string, uint64_t> loss;
  uint64_t events_received = 0;
  std::string stop_reason;  // "target exited", "duration reached", "signal SIGTERM", ...
};

struct Trace {
  TraceInfo info;
  Registry processes;

  uint64_t total_loss() const;
  double seconds_since_start(uint64_t boot_ns) const;
};

}  // namespace memlens::model

// Attribution as a tracing capability: reads the resident bytes of each tracked process's mappings
// (proc::read_resident: PAGEMAP_SCAN, or /proc/PID/smaps) every few seconds
// (less often when reading it is expensive, or while its resident figures stay put), splits the resident
// bytes into categories with model/attribution.h, and puts the categories on every timeline sample.
// Registered last among the extensions so that the V8 figures (live backing stores) of the same sample are
// already filled.
#pragma once

#include <functional>
#include <memory>

#include "collect/extension.h"

namespace memlens::collect {

struct AttributionOptions {
  double min_interval_s = 2.0;   // smaps is read at most this often per process
  double max_interval_s = 30.0;  // ... and at least this often
  // The share of one CPU the reads may take: the interval grows to read_ms / budget when a read is slow.
  // Half a per cent: a node process of 100 MB (a read of about 5 ms) is still read at the 2 s floor, one of
  // 1 GB (about 50 ms) every 10 s.
  double cpu_budget = 0.005;
  // A read walks every page table of the process (11 ms at 230 MB), so a process whose resident figures
  // (anonymous, file, shared; live ArrayBuffer bytes) have each moved by less than this since the last read
  // keeps that read's breakdown until max_interval_s: a steady service is not walked every few seconds to
  // learn nothing. The larger of a floor in bytes (half the smallest growth a verdict counts) and a share.
  double unchanged_bytes = 1024.0 * 1024.0;
  double unchanged_share = 0.005;
  // Whether the kernel marks the OOM killer's victims on their exit events (BpfSession::marks_oom_victims,
  // known once the probes are attached): then the mark decides, else the OOM-kill counters do.
  std::function<bool()> oom_victims_marked;
};

std::unique_ptr<TraceExtension> make_attribution_extension(const AttributionOptions& opts = {});

}  // namespace memlens::collect

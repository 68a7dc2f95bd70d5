// Aggregated stacks of one kind (mmap_growth, page_faults, array_buffers, gc_triggers, fd_opens), as
// every stack writer (folded, pprof, HTML flame graph) consumes them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "symbolize/frame.h"

namespace memlens::report {

struct SampleType {
  std::string type;  // e.g. "bytes", "count", "live_bytes"
  std::string unit;  // e.g. "bytes", "count"
};

struct StackSample {
  symbolize::Stack stack;       // root first
  std::vector<int64_t> values;  // one per StackProfile::sample_types, same order
  int pid = 0;                  // the process the stack was seen in
};

struct StackProfile {
  std::string kind;                    // file stem: "<kind>.folded", "<kind>.pb.gz"
  std::vector<SampleType> sample_types;  // the first is the default shown by viewers
  std::vector<StackSample> samples;
  int64_t time_ns = 0;      // wall-clock start of the trace (ns since the epoch)
  int64_t duration_ns = 0;  // length of the trace
};

}  // namespace memlens::report

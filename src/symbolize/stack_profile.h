// Aggregated, named stacks of one kind (model/stack_kinds.h), as the collector builds them from the
// kernel's stack ids and every stack writer (folded, pprof, HTML flame graph) consumes them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "symbolize/frame.h"

namespace memlens::symbolize {

struct SampleType {
  std::string type;  // e.g. "bytes", "count", "live_bytes"
  std::string unit;  // e.g. "bytes", "count"
};

struct StackSample {
  Stack stack;                  // root first
  std::vector<int64_t> values;  // one per StackProfile::sample_types, same order
  int pid = 0;                  // the process the stack was seen in
};

struct StackProfile {
  std::string kind;                      // file stem: "<kind>.folded", "<kind>.pb.gz"
  std::vector<SampleType> sample_types;  // the first is the default shown by viewers
  std::vector<StackSample> samples;
  int64_t time_ns = 0;      // wall-clock start of the trace (ns since the epoch)
  int64_t duration_ns = 0;  // length of the trace
};

}  // namespace memlens::symbolize

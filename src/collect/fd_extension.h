// fd tracking: uprobes on the C library's fd wrappers of every tracked process (bpf/fd.bpf.h), applied to
// each process's model::FdTable; the table is seeded from /proc when tracking starts.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "collect/extension.h"

namespace memlens::collect {

// The C library functions traced, the kind (enum ml_fd_kind) each reports, and whether the fd comes
// with the return (a return probe is needed) or the call is reported at entry (close, close_range).
struct FdProbeSpec {
  const char* symbol;
  uint32_t kind;
  bool needs_return;
};
const std::vector<FdProbeSpec>& fd_probe_specs();

}  // namespace memlens::collect

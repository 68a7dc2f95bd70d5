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

// Name of a kind as reports show who opened an fd: "openat", "accept4", ...
std::string fd_kind_name(uint32_t kind);

// Applies one ring-buffer fd event to a table (exposed for tests). t_s is the event's trace time.
// Returns false when the event is malformed.
bool apply_fd_event(model::FdTable& table, const void* data, size_t size, double t_s);

}  // namespace memlens::collect

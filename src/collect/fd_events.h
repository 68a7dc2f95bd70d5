// The fd capability's pure part: what an fd event (collect/decode.h) or the kernel's copy of a process's
// fd table at exit means for its model::FdTable. No /proc, no probe: the same on a live trace and a replay.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "collect/decode.h"
#include "memlens/abi.h"
#include "model/fd_table.h"

namespace memlens::collect {

// Name of a kind (enum ml_fd_kind) as reports show who opened an fd: "openat", "accept4", ...
std::string fd_kind_name(uint32_t kind);

// Applies one fd event to a table. t_s is the event's trace time. Returns false when the event's kind is
// not one this build knows.
bool apply_fd_event(model::FdTable& table, const FdEvent& e, double t_s);

// Applies the kernel's copy of a process's fd table at exit (t: the exit's trace time): fds the table holds
// that were not open at exit were closed past close(); fds open that it does not hold were created by no
// traced call. Fds above what the copy holds keep their state.
void apply_fds_at_exit(model::FdTable& table, const ml_fd_exit_fds& snap, double t);

}  // namespace memlens::collect

// The fd capability's reconciliation with /proc: what the probes cannot see (fds inherited, closed past
// close(), a socket's addresses) read from /proc/PID/fd and the process's network namespace, within bounds.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "model/fd_table.h"
#include "model/process.h"
#include "model/trace.h"

namespace memlens::collect {

// Lazily resolved fds per process and interval: bounds the /proc work of a process that opens many files.
constexpr size_t kResolvePerSample = 256;
// At the end (and for a fresh table) every fd is resolved, up to this many.
constexpr size_t kResolveAtEnd = 1u << 20;
// Above this many open fds the per-sample /proc reconciliation is skipped (its readdir grows with the
// table): closes made past close() are then found only when a traced call reuses their number.
constexpr size_t kReconcileMaxFds = 20000;

// Resolves fds of pid the table has not confirmed from /proc yet (at most max).
void resolve_some(model::FdTable& table, pid_t pid, size_t max);

// Brings the table of a live process in line with /proc/PID/fd (readdir; readlink only for numbers the
// table does not hold). Returns false when it was skipped: the process is gone or exiting (its fds are
// released before its exit is reported, and the table keeps what was open at exit), or it holds more than
// kReconcileMaxFds fds.
bool reconcile_with_proc(model::Trace& trace, model::Process& p);

// Fills socket addresses of the open sockets from the process's network namespace.
void resolve_sockets(model::FdTable& table, pid_t pid);

}  // namespace memlens::collect

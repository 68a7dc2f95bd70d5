// Releasing the processes the kernel holds (bpf/memlens.bpf.c, "Holding new processes"): a new process of
// the traced tree is stopped with SIGSTOP before its first instruction and recorded in the ml_held map;
// whoever releases it sends SIGCONT, but only to that very process (a pid can be reused: its start time
// must match the one the kernel recorded), then removes the entry. The tracer releases each process once
// its probes are attached; the watchdog (collect/hold_watchdog.h) releases what is left if memlens dies.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace memlens::collect {

enum class ReleaseOutcome {
  kReleased,  // SIGCONT sent to the process the kernel held
  kGone,      // it has exited (or its pid now names another process): nothing to release
  kFailed,    // it is there and the signal could not be sent
};

// Sends SIGCONT to pid if it is still the process that started at start_time_ns (CLOCK_BOOTTIME ns, the
// kernel's start_boottime), through a pidfd so that the check and the signal name the same process.
ReleaseOutcome release_process(pid_t pid, uint64_t start_time_ns);

// Releases every process in the hold map (fd of ml_held) and removes its entry (after the signal: an entry
// removed first would be lost if the releaser died in between). Returns how many were released.
size_t release_all_held(int held_map_fd);

// Whether pid has exited (or is a zombie), or names another process than the one started at
// start_time_ticks (/proc's clock ticks).
bool process_gone(pid_t pid, uint64_t start_time_ticks);

// Removes pid's entry from the hold map if it is still the hold of the process started at start_time_ns.
void forget_hold(int held_map_fd, pid_t pid, uint64_t start_time_ns);

}  // namespace memlens::collect

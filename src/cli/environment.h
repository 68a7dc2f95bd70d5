// What memlens needs from the host before it can trace: privileges and kernel features. Used by every
// tracing command (to fail early with a remedy) and by `memlens doctor`.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace memlens::cli {

struct Check {
  std::string name;
  bool ok = false;
  std::string detail;  // what was found, or what is wrong
  std::string remedy;  // what to do when !ok
};

// Root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN implies both); the detail names what is missing.
Check check_privileges();
// Whether memlens may read process pid's memory maps and fds: its own uid, or CAP_SYS_PTRACE.
Check check_process_access(pid_t pid);
// Whether memlens may list process pid's fds: its own uid, or CAP_DAC_READ_SEARCH.
Check check_fd_listing(pid_t pid);
Check check_btf();
Check check_ring_buffer();
Check check_uprobes();

// The checks every tracing command makes before loading anything; returns the first failure's exit code
// after printing it, or 0.
int preflight(bool quiet);

// Prints why the kernel side failed (loading the BPF object, tracking a process) and returns the exit code:
// a refusal (EPERM, EACCES) is a matter of privileges and says which capability is missing; anything else
// is the kernel's.
int report_kernel_failure(const std::string& prefix, const Error& e);
bool is_permission_error(const Error& e);

void install_libbpf_logging(bool verbose);

}  // namespace memlens::cli

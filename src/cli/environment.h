// What memlens needs from the host before it can trace: privileges and kernel features. Used by every
// tracing command (to fail early with a remedy) and by `memlens doctor`.
#pragma once

#include <string>
#include <vector>

namespace memlens::cli {

struct Check {
  std::string name;
  bool ok = false;
  std::string detail;  // what was found, or what is wrong
  std::string remedy;  // what to do when !ok
};

Check check_privileges();
Check check_btf();
Check check_ring_buffer();
Check check_uprobes();

// The checks every tracing command makes before loading anything; returns the first failure's exit code
// after printing it, or 0.
int preflight(bool quiet);

void install_libbpf_logging(bool verbose);

}  // namespace memlens::cli

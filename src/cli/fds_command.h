// memlens fds PID: the open fds of a running process, grouped by type and opening stack.
#pragma once

#include <sys/types.h>

namespace memlens::cli {

struct FdsOptions {
  double watch_s = 0;  // > 0: trace opens and closes this long, so fds opened meanwhile have their stacks
  bool json = false;
  bool verbose = false;
};

int fds_command(pid_t pid, const FdsOptions& opts);

}  // namespace memlens::cli

// What `memlens doctor --pid/--binary` says about V8 probes: per probe, found or not, and where.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace memlens::collect {

// One line per probe (found: table, symbol, offset; not found: why), from the plan memlens would use.
Result<std::string> describe_v8_probes_for_pid(pid_t pid);
Result<std::string> describe_v8_probes_for_binary(const std::string& path);

}  // namespace memlens::collect

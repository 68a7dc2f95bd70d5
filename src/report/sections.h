// Report sections contributed by capabilities beyond the core. Each returns null when it has nothing
// for the process (the key is then left out of report.json).
#pragma once

#include <nlohmann/json.hpp>

#include "model/process.h"

namespace memlens::report {

nlohmann::json fd_section(const model::Process& p);  // "fds"
nlohmann::json v8_gc_section(const model::Process& p);  // "gc"
nlohmann::json v8_array_buffers_section(const model::Process& p);  // "array_buffers"

}  // namespace memlens::report

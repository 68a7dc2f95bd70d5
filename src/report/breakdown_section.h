// report.json "breakdown": where the process's resident memory goes, by category, at the end of the trace.
#pragma once

#include <nlohmann/json.hpp>

#include "model/process.h"

namespace memlens::report {

// {"js_heap_bytes": .., ..., "other_anon_bytes": .., "unexplained_bytes": .., "method": {..}}: the
// categories and unexplained_bytes add up to the process's rss_bytes. Null when never measured.
nlohmann::json breakdown_section(const model::Process& p);

}  // namespace memlens::report

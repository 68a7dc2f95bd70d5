// report.json "verdicts": growth verdicts per process, from its timeline, its GC history and its limits.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analyze/verdicts.h"
#include "model/process.h"

namespace memlens::report {

// The top growing stacks of a category, rendered, most important first. Stack capture fills this; until
// then verdicts carry an empty top_stacks.
using TopStacksFn = std::function<std::vector<std::string>(analyze::Category)>;

// The memory limit a process runs into, from the limits read while it lived: its cgroup's effective limit
// against the whole cgroup's usage, else the host's MemTotal against MemTotal - MemAvailable.
std::optional<analyze::MemoryLimit> memory_limit(const model::ProcessLimits& limits);

// The series and limits analyze() judges, built from the model: every timeline sample's categories and
// RSS, heap used after each GC, live backing-store bytes, open fds, and the limits read while the process
// lived (cgroup memory.max, V8's heap limit, RLIMIT_NOFILE).
analyze::AnalysisInput analysis_input(const model::Process& p, const TopStacksFn& top_stacks = nullptr);

// [{kind, category, rate_bytes_per_s, rate_per_s, rate_unit, confidence, evidence, headline, top_stacks,
//   seconds_to_limit?, basis, window_s, start_value, end_value}], most important first. Null when the
// process has no timeline.
nlohmann::json verdict_section(const model::Process& p, const TopStacksFn& top_stacks = nullptr);

}  // namespace memlens::report

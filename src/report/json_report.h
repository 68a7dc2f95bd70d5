// report.json: the stable, versioned schema documented in docs/report-schema.md. Built from the model;
// later stages (attribution, V8, fds, verdicts) add their sections to the same object.
#pragma once

#include <nlohmann/json.hpp>

#include "model/trace.h"
#include "symbolize/stack_profile.h"

namespace memlens::report {

// 2: loss accounting in one vocabulary (events lost by cause, untraced processes), per process too.
inline constexpr int kSchemaVersion = 2;

// profiles: the trace's stack profiles, from which each verdict names its category's top stacks.
nlohmann::json build_report(const model::Trace& trace,
                            const std::vector<symbolize::StackProfile>& profiles = {});
// trace_end_s: the trace time at its end (a process still running is counted untraced up to it);
// unmaps_probed: munmap and madvise were probed (--unmap-probes), so their counts mean something.
nlohmann::json process_json(const model::Process& p,
                            const std::vector<symbolize::StackProfile>& profiles = {}, double trace_end_s = 0,
                            bool unmaps_probed = true);
// Whether the trace probed munmap and madvise (the probes it lists as attached).
bool unmaps_probed(const model::TraceInfo& info);

// The report's "profiles" list: per stack kind, its files and sample totals (the totals a reader of the
// folded and pprof files finds there).
nlohmann::json profiles_summary(const std::vector<symbolize::StackProfile>& profiles);

// Writes dir/report.json atomically.
Status write_report_json(const std::string& dir, const nlohmann::json& report);

}  // namespace memlens::report

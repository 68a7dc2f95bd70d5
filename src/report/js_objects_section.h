// What V8's own view (--js-objects) adds to the report: report.json's "js_objects" section, the js_live
// profile (live JS heap by allocation site, as folded/pprof/flame graph), and the growing sites that a
// JS heap verdict names as its top stacks (top_stacks_from: "js_live").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/process.h"
#include "symbolize/stack_profile.h"

namespace memlens::report {

// {requested, mode, state, reason, address, opened_by_memlens, sigusr1_handler, profiles,
//  sampling_interval_bytes, growing_sites: [{function, url, line, column, stack, rate_bytes_per_s,
//  first_bytes, last_bytes, window_s, live_bytes, live_objects}], forced_gcs: [{t_s, pause_ms, reason, ok,
//  error?}] (the latest), forced_gc_count, forced_gc_failed, forced_gc_pause_total_ms,
//  forced_gc_pause_max_ms, other_clients: [{t_s, peer}] (the first), other_clients_total,
//  points_dropped}. Null when --js-objects was not asked for this process.
nlohmann::json js_objects_section(const model::Process& p);

// The growing allocation sites, one line each, fastest first (empty when none grows).
std::vector<std::string> js_live_top_lines(const model::Process& p, size_t limit = 5);

// The last sampling profile of p as a stack profile "js_live" (sample types inuse_space, inuse_objects).
// Empty samples when no profile was read.
void append_js_live_samples(const model::Process& p, symbolize::StackProfile& profile);
symbolize::StackProfile js_live_profile_frame(int64_t time_ns, int64_t duration_ns);

// report.json's js_objects.{snapshots, diff, retainers} (docs/report-schema.md): the growing groups of the
// last snapshot diff, one line each ("grows: Object x 1200 (+3.1 MiB) held by global -> cache -> ..."),
// largest first; and one line on the snapshots taken (pauses, memlens's peak RSS) or refused. Empty when
// there is nothing to say.
std::vector<std::string> js_snapshot_growth_lines(const nlohmann::json& js_objects, size_t limit);
std::string js_snapshots_line(const nlohmann::json& js_objects);

// "name (file:line:column)" for a JS frame; "(anonymous)" for an unnamed function.
std::string js_frame_name(const model::JsFrame& f);

}  // namespace memlens::report

#include "report/json_report.h"

#include <algorithm>

#include "common/json_text.h"
#include "common/safe_file.h"
#include "report/breakdown_section.h"
#include "report/js_objects_section.h"
#include "report/sections.h"
#include "report/top_stacks.h"
#include "report/verdict_section.h"

namespace memlens::report {

using nlohmann::json;

json event_loss_json(const model::EventLoss& lost, bool per_process) {
  json by_cause = json::object();
  for (const auto& [cause, n] : lost.by_cause()) {
    // Per process, only the causes that are per process: malformed events and events of an unknown process
    // belong to no process.
    if (per_process && (std::string(cause) == "malformed" || std::string(cause) == "unknown_process"))
      continue;
    by_cause[cause] = n;
  }
  return by_cause;
}

json process_json(const model::Process& p, const std::vector<symbolize::StackProfile>& profiles,
                  double trace_end_s, bool unmaps_probed) {
  json j;
  j["pid"] = p.pid();
  j["ppid"] = p.ppid();
  j["start_time_ns"] = p.start_time_ns;
  j["comm"] = p.comm;
  j["exe"] = p.exe;
  j["cmdline"] = p.cmdline;
  if (p.exit_status) j["exit_status"] = *p.exit_status;
  if (p.exited_at_s) j["exited_at_s"] = *p.exited_at_s;
  j["first_seen_s"] = p.first_seen_s;
  j["attached_late"] = p.attached_late;
  j["rss_bytes"] = p.rss.total();
  j["rss_peak_bytes"] = p.rss_peak_bytes;
  j["rss"] = {{"anon_bytes", p.rss.anon_bytes},
              {"file_bytes", p.rss.file_bytes},
              {"shmem_bytes", p.rss.shmem_bytes},
              {"swap_bytes", p.rss.swap_bytes}};
  auto totals = p.address_space.totals();
  j["mappings"] = {
      {"anon_bytes", totals.anon_bytes}, {"file_bytes", totals.file_bytes}, {"count", totals.count}};
  // traced_user and traced_kernel are estimates: sampled faults times the sample period.
  json faults = {{"traced_user", p.faults_user},
                 {"traced_kernel", p.faults_kernel},
                 {"sampled", p.fault_sample_period > 0},
                 {"sample_period", p.fault_sample_period}};
  if (p.has_kernel_fault_counts) {
    faults["minor"] = p.minflt;
    faults["major"] = p.majflt;
  }
  faults["minor_before_tracking"] = p.minflt_at_start;
  faults["major_before_tracking"] = p.majflt_at_start;
  j["page_faults"] = faults;
  // mprotect is not probed (docs/probes.md): no count that would always read 0. munmap and madvise are
  // probed only with --unmap-probes: without, none is seen, and unmaps_probed says so.
  j["events"] = {{"mmap", p.events.mmap}, {"munmap", p.events.munmap},   {"mremap", p.events.mremap},
                 {"brk", p.events.brk},   {"madvise", p.events.madvise}, {"unmaps_probed", unmaps_probed}};
  // Only when sampled: a capture recorded with every stack reads as before.
  if (p.growth_stack_sample_max > 0)
    j["mmap_growth_sampling"] = {{"mean_bytes_per_stack_min", p.growth_stack_sample_min},
                                 {"mean_bytes_per_stack_max", p.growth_stack_sample_max}};
  json timeline = json::array();
  for (const auto& s : p.timeline) {
    json t = {{"t_s", s.t_s},
              {"rss_bytes", s.rss.total()},
              {"anon_bytes", s.rss.anon_bytes},
              {"file_bytes", s.rss.file_bytes},
              {"shmem_bytes", s.rss.shmem_bytes}};
    if (s.js_heap_used_bytes) t["js_heap_used_bytes"] = *s.js_heap_used_bytes;
    if (s.array_buffers_bytes) t["array_buffers_bytes"] = *s.array_buffers_bytes;
    if (s.fds_open) t["fds_open"] = *s.fds_open;
    // Categories sit in their own object: "array_buffers_bytes" above is V8's live figure, which the
    // array_buffers category (resident bytes) must not overwrite.
    if (!s.categories.empty()) {
      json cats = json::object();
      for (const auto& [cat, bytes] : s.categories) cats[cat + "_bytes"] = bytes;
      t["categories"] = std::move(cats);
    }
    timeline.push_back(std::move(t));
  }
  j["timeline"] = std::move(timeline);
  if (p.timeline_thinned > 0) j["timeline_thinned"] = p.timeline_thinned;
  if (auto gc = v8_gc_section(p); !gc.is_null()) j["gc"] = std::move(gc);
  if (auto ab = v8_array_buffers_section(p); !ab.is_null()) j["array_buffers"] = std::move(ab);
  if (auto fds = fd_section(p); !fds.is_null()) j["fds"] = std::move(fds);
  if (auto b = breakdown_section(p); !b.is_null()) j["breakdown"] = std::move(b);
  if (auto js = js_objects_section(p); !js.is_null()) j["js_objects"] = std::move(js);
  if (auto v = verdict_section(p, top_stacks_for(p.pid(), profiles)); !v.is_null())
    j["verdicts"] = std::move(v);
  if (const auto& k = p.attribution.oom_kill) {
    j["oom_kill"] = {{"t_s", k->at_s},
                     {"scope", k->scope},
                     {"limit_bytes", k->limit_bytes ? json(*k->limit_bytes) : json(nullptr)},
                     {"grew_most", k->grew_most.empty() ? json(nullptr) : json(k->grew_most)},
                     {"grew_most_bytes", k->grew_most_bytes},
                     {"decided_by", k->decided_by.empty() ? json(nullptr) : json(k->decided_by)},
                     {"scope_counted", k->scope_counted}};
  }
  if (!p.notes.empty()) j["notes"] = p.notes;
  // Loss accounting (docs/report-schema.md): events of this process lost, and the time it ran untraced.
  auto lost = p.lost();
  j["loss"] = {{"events_lost", lost.total()},
               {"events_lost_by_cause", event_loss_json(lost, true)},
               {"untraced_s", p.untraced.seconds(p.exited_at_s.value_or(trace_end_s))},
               {"untraced_reason", p.untraced.any() ? json(p.untraced.reason()) : json(nullptr)}};
  j["hold"] = {{"count", p.holds}, {"held_s", p.held_s}};
  return j;
}

json build_report(const model::Trace& trace, const std::vector<symbolize::StackProfile>& profiles) {
  const auto& info = trace.info;
  json j;
  j["schema_version"] = kSchemaVersion;
  j["memlens_version"] = MEMLENS_VERSION;
  if (info.attached_pid) j["attached_pid"] = *info.attached_pid;
  if (info.host_wide) {
    j["host_wide"] = true;
    json missed = json::array();
    for (const auto& m : info.missed_processes)
      missed.push_back({{"pid", m.pid}, {"exe", m.exe}, {"started_at_s", m.at_s}, {"reason", m.reason}});
    j["discovery"] = {{"source", info.discovery},
                      {"node_started", info.node_started},
                      {"overruns", info.discovery_overruns},
                      {"unclassified", info.discovery_unclassified},
                      {"missed", missed}};
  } else
    j["command"] = info.command;
  j["started_at"] = info.started_at;
  j["duration_s"] = info.duration_s;
  j["interval_s"] = info.interval_s;
  j["kernel"] = info.kernel;
  j["stop_reason"] = info.stop_reason;
  json skipped = json::array();
  for (const auto& s : info.probes_skipped) skipped.push_back({{"name", s.name}, {"reason", s.reason}});
  j["probes"] = {{"attached", info.probes_attached}, {"skipped", skipped}};
  auto lost = trace.events_lost();
  auto untraced = trace.untraced(info.duration_s);
  j["loss"] = {{"events_lost", lost.total()},     {"events_lost_by_cause", event_loss_json(lost, false)},
               {"stacks_lost", info.stacks_lost}, {"untraced_processes", untraced.processes},
               {"untraced_s", untraced.seconds},  {"missed_processes", info.missed_processes.size()}};
  if (info.unwind.enabled) {
    json failed = json::array();
    for (const auto& f : info.unwind.failed) failed.push_back({{"file", f.file}, {"reason", f.reason}});
    j["unwind"] = {{"table_budget_bytes", info.unwind.budget_bytes},
                   {"table_bytes", info.unwind.used_bytes},
                   {"files", info.unwind.files},
                   {"compile_ms", info.unwind.compile_ms},
                   {"failed", failed},
                   {"walks", info.unwind.walks}};
    if (!info.unwind.prepared_files.empty()) j["unwind"]["prepared_files"] = info.unwind.prepared_files;
  }
  uint64_t held = 0;
  double held_s = 0, held_max_s = 0;
  for (const auto& p : trace.processes.all()) {
    if (p->holds == 0) continue;
    ++held;
    held_s += p->held_s;
    held_max_s = std::max(held_max_s, p->held_s);
  }
  j["holds"] = {{"enabled", info.holding},
                {"fork", info.holding_fork},
                {"processes", held},
                {"total_s", held_s},
                {"max_s", held_max_s}};
  j["events_received"] = info.events_received;
  json procs = json::array();
  for (const auto& p : trace.processes.all())
    procs.push_back(process_json(*p, profiles, info.duration_s, unmaps_probed(info)));
  j["processes"] = std::move(procs);
  return j;
}

bool unmaps_probed(const model::TraceInfo& info) {
  // Counted only when probed: a trace (or a capture) without the probe has no count to give.
  const auto& attached = info.probes_attached;
  return std::find(attached.begin(), attached.end(), "libc:munmap") != attached.end();
}

json profiles_summary(const std::vector<symbolize::StackProfile>& profiles) {
  json out = json::array();
  for (const auto& prof : profiles) {
    json totals = json::object();
    for (size_t i = 0; i < prof.sample_types.size(); ++i) {
      int64_t sum = 0;
      for (const auto& s : prof.samples)
        if (i < s.values.size()) sum += s.values[i];
      totals[prof.sample_types[i].type] = sum;
    }
    out.push_back({{"kind", prof.kind},
                   {"folded", prof.kind + ".folded"},
                   {"pprof", prof.kind + ".pb.gz"},
                   {"stacks", prof.samples.size()},
                   {"totals", totals}});
  }
  return out;
}

Status write_report_json(const std::string& dir, const json& report) {
  return write_file_atomic(dir + "/report.json", json_text(report, 2) + "\n");
}

}  // namespace memlens::report

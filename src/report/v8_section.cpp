// The "gc" and "array_buffers" sections of a process (docs/v8-probes.md says where each figure comes from).
#include "report/sections.h"

namespace memlens::report {

using nlohmann::json;

json v8_gc_section(const model::Process& p) {
  const auto& v8 = p.v8;
  if (!v8.probed) return nullptr;
  auto s = model::summarize_gcs(v8);
  json by_kind = json::object();
  for (const auto& [kind, n] : s.by_kind) by_kind[kind] = n;
  json events = json::array();
  for (const auto& g : v8.gcs) {
    json e = {{"t_s", g.t_s}, {"kind", model::gc_kind_name(g.kind)}, {"pause_ms", g.pause_ms}};
    e["heap_used_before_bytes"] = g.heap_used_before_bytes ? json(*g.heap_used_before_bytes) : json(nullptr);
    e["heap_used_after_bytes"] = g.heap_used_after_bytes ? json(*g.heap_used_after_bytes) : json(nullptr);
    events.push_back(std::move(e));
  }
  json j = {{"source", v8.probe_source},
            {"count", s.count},
            {"by_kind", std::move(by_kind)},
            {"pause_ms",
             {{"total", s.pause_total_ms},
              {"max", s.pause_max_ms},
              {"p50", s.pause_p50_ms},
              {"p99", s.pause_p99_ms}}}};
  j["heap_used_after_gc_bytes"] =
      s.heap_used_after_last_gc_bytes ? json(*s.heap_used_after_last_gc_bytes) : json(nullptr);
  if (!v8.holder_path.empty()) j["v8_object"] = v8.holder_path;
  // Set by --max-old-space-size (command line or NODE_OPTIONS); V8's own default is not guessed.
  j["heap_limit_bytes"] = v8.heap_size_limit_bytes ? json(*v8.heap_size_limit_bytes) : json(nullptr);
  j["events"] = std::move(events);
  if (v8.gcs_thinned.count > 0) j["events_thinned"] = v8.gcs_thinned.count;
  // Only when sampling left GCs without a stack of their own: the gc_triggers profile's counts are then
  // estimates (each kept stack weighs the GCs it stands for).
  if (v8.trigger_stack_gcs > v8.trigger_stacks)
    j["trigger_stacks"] = {{"stacks", v8.trigger_stacks}, {"gcs", v8.trigger_stack_gcs}};
  return j;
}

json v8_array_buffers_section(const model::Process& p) {
  const auto& v8 = p.v8;
  if (!v8.array_buffers_probed) return nullptr;
  json j = {{"live_bytes", v8.array_buffer_live_bytes},
            {"peak_bytes", v8.array_buffer_peak_bytes},
            {"source", v8.array_buffers_source},
            {"allocators", v8.array_buffer_allocators},
            {"counting", v8.array_buffers_counting}};
  // Exact totals need every allocation and free probed (--v8-alloc-probes). Otherwise the live figure's
  // rises and falls between samples bound them from below: a Buffer allocated and freed between two
  // samples is not seen. Counted from the first sample; for a process traced from its start, that
  // sample's live bytes were allocated while traced too.
  if (!v8.array_buffers_counting) {
    uint64_t allocated = 0, freed = 0;
    std::optional<uint64_t> prev;
    for (const auto& s : p.timeline) {
      if (!s.array_buffers_bytes) continue;
      uint64_t live = *s.array_buffers_bytes;
      if (!prev) {
        if (!p.attached_late) allocated += live;
      } else if (live > *prev) {
        allocated += live - *prev;
      } else {
        freed += *prev - live;
      }
      prev = live;
    }
    j["allocated_bytes_total"] = allocated;
    j["freed_bytes_total"] = freed;
    j["totals_exact"] = false;
    j["totals_note"] =
        "lower bounds, from the live figure's rises and falls between samples; --v8-alloc-probes counts "
        "every "
        "allocation and free";
  }
  if (v8.array_buffers_counting) {
    j["totals_exact"] = true;
    j["allocated_bytes_total"] = v8.array_buffer_allocated_total;
    j["freed_bytes_total"] = v8.array_buffer_freed_total;
    j["allocations"] = v8.array_buffer_allocations;
    j["frees"] = v8.array_buffer_frees;
    // Attach mode: backing stores allocated or freed before memlens attached are not in the totals.
    j["counted_since_attach"] = v8.array_buffers_baseline_unknown;
  }
  if (v8.external_probed)
    j["external_adjustments"] = {{"count", v8.external_adjustments},
                                 {"sum_bytes", v8.external_adjustments_bytes}};
  return j;
}

}  // namespace memlens::report

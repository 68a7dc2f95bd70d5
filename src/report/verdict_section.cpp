#include "report/verdict_section.h"

#include <fmt/format.h>

#include <algorithm>

#include "report/js_objects_section.h"
#include "report/top_stacks.h"

namespace memlens::report {

using analyze::Category;

// A process memlens saw start spends its first seconds warming up: JIT code, compilation caches, connection
// buffers and malloc arenas grow and then level off, and a 60 s window can end before they visibly have.
// Resident figures from that period are not judged. A process memlens attached to is usually past it.
constexpr double kWarmUpS = 20;

std::optional<analyze::MemoryLimit> memory_limit(const model::ProcessLimits& limits) {
  analyze::MemoryLimit m;
  // A cgroup limit above the host's memory is never reached: the host runs out first.
  bool cgroup = limits.cgroup_memory_max_bytes && limits.cgroup_usage_bytes &&
                (!limits.host_memory_bytes || *limits.cgroup_memory_max_bytes < *limits.host_memory_bytes);
  if (cgroup) {
    m.scope = analyze::MemoryLimit::Scope::cgroup;
    m.limit_bytes = static_cast<double>(*limits.cgroup_memory_max_bytes);
    m.usage_bytes = static_cast<double>(*limits.cgroup_usage_bytes);
    m.where = fmt::format("cgroup {} {}", limits.cgroup_version, limits.cgroup_limit_set_at);
    return m;
  }
  if (!limits.host_memory_bytes || !limits.host_memory_available_bytes) return std::nullopt;
  m.scope = analyze::MemoryLimit::Scope::host;
  m.limit_bytes = static_cast<double>(*limits.host_memory_bytes);
  m.usage_bytes = static_cast<double>(
      *limits.host_memory_bytes - std::min(*limits.host_memory_bytes, *limits.host_memory_available_bytes));
  m.where = "host";
  return m;
}

analyze::AnalysisInput analysis_input(const model::Process& p, const TopStacksFn& top_stacks) {
  analyze::AnalysisInput in;
  double judged_from_s = p.attached_late ? 0 : p.first_seen_s + kWarmUpS;
  for (const auto& s : p.timeline) {
    if (s.t_s >= judged_from_s) {
      in[Category::rss].resident.push_back({s.t_s, static_cast<double>(s.rss.total())});
      for (const auto& [name, bytes] : s.categories)
        if (auto c = analyze::parse_category(name))  // "unexplained" is not judged
          in[*c].resident.push_back({s.t_s, static_cast<double>(bytes)});
    }
    if (s.fds_open) in[Category::fds].resident.push_back({s.t_s, static_cast<double>(*s.fds_open)});
    if (s.array_buffers_bytes)
      in.array_buffers_live.push_back({s.t_s, static_cast<double>(*s.array_buffers_bytes)});
  }
  // Open sockets per sample, from the fd table (empty, so not judged, when fds are not traced).
  for (const auto& [t_s, n] : p.fds.sockets_series)
    in[Category::sockets].resident.push_back({t_s, static_cast<double>(n)});
  for (const auto& g : p.v8.gcs)
    if (g.heap_used_after_bytes)
      in.js_heap_after_gc.push_back({g.t_s, static_cast<double>(*g.heap_used_after_bytes), g.full()});

  const auto& limits = p.attribution.limits;
  in.memory_limit = memory_limit(limits);
  if (p.v8.heap_size_limit_bytes)
    in[Category::js_heap].limit = static_cast<double>(*p.v8.heap_size_limit_bytes);
  if (limits.nofile_soft) {
    in[Category::fds].limit = static_cast<double>(*limits.nofile_soft);
    in[Category::sockets].limit = static_cast<double>(*limits.nofile_soft);
  }
  if (top_stacks)
    for (size_t i = 0; i < analyze::kCategoryCount; ++i) {
      auto c = static_cast<Category>(i);
      if (!in[c].resident.empty()) in[c].top_stacks = top_stacks(c);
    }
  // V8's own view names the JS heap's growth better than any stack of ours: the sites whose live objects
  // grow (--js-objects).
  if (auto js = js_live_top_lines(p); !js.empty()) in[Category::js_heap].top_stacks = std::move(js);
  return in;
}

nlohmann::json verdict_section(const model::Process& p, const TopStacksFn& top_stacks) {
  if (p.timeline.empty()) return nullptr;
  auto verdicts = analyze::analyze(analysis_input(p, top_stacks));
  auto faults = p.stacks.find(model::stack_kind::kPageFaults);
  bool has_fault_stacks = faults != p.stacks.end() && !faults->second.empty();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : verdicts) {
    bool count = analyze::is_count_category(v.category);
    nlohmann::json j = {
        {"kind", analyze::kind_name(v.kind)},
        {"category", analyze::category_name(v.category)},
        {"rate_per_s", v.rate_per_s},
        {"rate_unit", analyze::rate_unit(v.category)},
        {"confidence", v.confidence},
        {"evidence", v.evidence},
        {"headline", v.headline},
        {"top_stacks", v.top_stacks},
        {"basis", v.basis},
        {"window_s", v.window_s},
        {"start_value", v.start_value},
        {"end_value", v.end_value},
    };
    if (!count) j["rate_bytes_per_s"] = v.rate_per_s;
    if (v.seconds_to_limit) j["seconds_to_limit"] = *v.seconds_to_limit;
    if (v.projection) {
      nlohmann::json growing = nlohmann::json::array();
      for (auto c : v.projection->growing) growing.push_back(analyze::category_name(c));
      j["limit"] = {{"kind", v.projection->limit},      {"value", v.projection->limit_value},
                    {"used", v.projection->used_value}, {"rate_per_s", v.projection->rate_per_s},
                    {"where", v.projection->where},     {"growing", growing}};
    }
    if (v.part_of) j["part_of"] = analyze::category_name(*v.part_of);
    // Only a full GC tells a JS heap leak from garbage promoted to old space. V8 may run none for minutes
    // in a large heap; through its inspector memlens can ask for them (each pause measured).
    if (v.category == Category::js_heap && v.kind == analyze::VerdictKind::growth_unconfirmed &&
        !p.js_objects.requested)
      j["confirm_with"] = "--js-objects";
    if (!v.top_stacks.empty())
      j["top_stacks_from"] = v.category == Category::js_heap && !js_live_top_lines(p, 1).empty()
                                 ? "js_live"
                                 : top_stack_source(v.category, has_fault_stacks).kind;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace memlens::report

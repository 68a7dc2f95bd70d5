#include "report/js_objects_section.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "analyze/js_live.h"
#include "analyze/verdicts.h"
#include "common/units.h"

namespace memlens::report {

using nlohmann::json;

namespace {

// The frame that names a site: the app's (analyze::JsSiteGrowth::app_frame), else the innermost frame.
const model::JsFrame* naming_frame(const analyze::JsSiteGrowth& g, const model::JsStack& stack) {
  if (g.app_frame) return &*g.app_frame;
  return stack.empty() ? nullptr : &stack.back();
}

}  // namespace

std::string js_frame_name(const model::JsFrame& f) {
  std::string fn = f.function.empty() ? "(anonymous)" : f.function;
  if (f.url.empty()) return fn;
  return fmt::format("{} ({}:{}:{})", fn, f.url, f.line, f.column);
}

std::vector<std::string> js_live_top_lines(const model::Process& p, size_t limit) {
  std::vector<std::string> out;
  const auto& s = p.js_objects;
  for (const auto& g : analyze::growing_js_sites(s, {}, analyze::heap_after_full_gcs(p.v8))) {
    if (out.size() >= limit) break;
    const auto& stack = g.stack;
    const model::JsFrame* f = naming_frame(g, stack);
    std::string line =
        fmt::format("{} live, +{}/min: {}", format_bytes(static_cast<double>(g.live_bytes)),
                    format_bytes(g.rate_bytes_per_s * 60), f ? js_frame_name(*f) : std::string("(no frame)"));
    if (g.app_frame_inferred)
      line += fmt::format(" (inlined into optimized {}: V8 records only the outer function)",
                          stack.empty() ? std::string("code") : js_frame_name(stack.back()));
    else if (!g.inlined_candidates.empty())
      line += fmt::format(" (or what V8 inlined into it: {})", js_frame_name(g.inlined_candidates.front()));
    // Up to three callers of the naming frame (of the optimized frame, for an inlined function).
    size_t shown = 0;
    bool below = g.app_frame_inferred;
    for (auto it = stack.rbegin(); it != stack.rend() && shown < 3; ++it) {
      if (!below) {
        below = f && *it == *f;
        continue;
      }
      line += fmt::format(" ← {}", it->function.empty() ? "(anonymous)" : it->function);
      ++shown;
    }
    out.push_back(std::move(line));
  }
  return out;
}

json js_objects_section(const model::Process& p) {
  const auto& s = p.js_objects;
  if (!s.requested) return nullptr;
  json j = {{"requested", true},
            {"mode", s.mode},
            {"state", s.state.empty() ? "pending" : s.state},
            {"reason", s.reason},
            {"address", s.address},
            {"opened_by_memlens", s.opened_by_memlens},
            {"sigusr1_handler", s.handler},
            {"profiles", s.profiles},
            {"sampling_interval_bytes", s.sampling_interval_bytes},
            {"points_dropped", s.points_dropped}};
  // Was it ever open? The history says (the last state of a finished trace is "closed").
  bool was_open =
      std::any_of(s.history.begin(), s.history.end(), [](const auto& h) { return h.state == "open"; });
  j["was_open"] = was_open;
  for (const auto& h : s.history)
    if (h.state == "unavailable") j["unavailable_reason"] = h.reason;
  json sites = json::array();
  for (const auto& g : analyze::growing_js_sites(s, {}, analyze::heap_after_full_gcs(p.v8))) {
    const auto& stack = g.stack;
    const model::JsFrame* f = naming_frame(g, stack);
    json frames = json::array();
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) frames.push_back(js_frame_name(*it));
    json candidates = json::array();
    for (const auto& c : g.inlined_candidates) candidates.push_back(js_frame_name(c));
    sites.push_back({{"function", f ? f->function : ""},
                     {"url", f ? f->url : ""},
                     {"line", f ? f->line : 0},
                     {"column", f ? f->column : 0},
                     {"inlined", g.app_frame_inferred},
                     {"inlined_candidates", candidates},
                     {"stack", std::move(frames)},
                     {"rate_bytes_per_s", g.rate_bytes_per_s},
                     {"first_bytes", g.first_bytes},
                     {"last_bytes", g.last_bytes},
                     {"window_s", g.window_s},
                     {"live_bytes", g.live_bytes},
                     {"live_objects", g.live_objects}});
  }
  j["growing_sites"] = std::move(sites);
  json gcs = json::array();
  for (const auto& g : s.forced_gcs) {
    json e = {{"t_s", g.t_s}, {"pause_ms", g.pause_ms}, {"reason", g.reason}, {"ok", g.ok}};
    if (!g.ok) e["error"] = g.error;
    gcs.push_back(std::move(e));
  }
  j["forced_gcs"] = std::move(gcs);
  j["forced_gc_count"] = s.forced_gc_totals.count;
  j["forced_gc_failed"] = s.forced_gc_totals.failed;
  j["forced_gc_pause_total_ms"] = s.forced_gc_totals.pause_total_ms;
  j["forced_gc_pause_max_ms"] = s.forced_gc_totals.pause_max_ms;
  json clients = json::array();
  for (const auto& c : s.other_clients) clients.push_back({{"t_s", c.t_s}, {"peer", c.peer}});
  j["other_clients"] = std::move(clients);
  j["other_clients_total"] = s.other_clients_total;
  json snaps = json::array();
  for (const auto& sn : s.snapshots) {
    json e = {{"t_s", sn.t_s},
              {"reason", sn.reason},
              {"ok", sn.ok},
              {"refused", sn.refused},
              {"pause_ms", sn.pause_ms},
              {"json_bytes", sn.json_bytes},
              {"nodes", sn.nodes},
              {"edges", sn.edges},
              {"heap_used_bytes", sn.heap_used_bytes},
              {"parsed_bytes", sn.parsed_bytes},
              {"memlens_rss_before_bytes", sn.memlens_rss_before_bytes},
              {"memlens_peak_rss_bytes", sn.memlens_peak_rss_bytes},
              {"target_rss_before_bytes", sn.target_rss_before_bytes},
              {"target_rss_peak_bytes", sn.target_rss_peak_bytes},
              {"cgroup_free_bytes", sn.cgroup_free_bytes >= 0 ? json(sn.cgroup_free_bytes) : json(nullptr)},
              {"host_free_bytes", sn.host_free_bytes >= 0 ? json(sn.host_free_bytes) : json(nullptr)}};
    if (!sn.error.empty()) e["error"] = sn.error;
    if (!sn.file.empty()) e["file"] = sn.file;
    if (!sn.file_error.empty()) e["file_error"] = sn.file_error;
    snaps.push_back(std::move(e));
  }
  j["snapshots"] = std::move(snaps);
  j["diff"] = nullptr;
  j["retainers"] = json::array();
  if (s.diff) {
    json groups = json::array(), collections = json::array(), retainers = json::array();
    for (const auto& g : s.diff->groups) {
      groups.push_back({{"type", g.type},
                        {"name", g.name},
                        {"count", g.count},
                        {"bytes", g.bytes},
                        {"count_delta", g.count_delta},
                        {"bytes_delta", g.bytes_delta},
                        {"new_objects", g.new_objects},
                        {"new_bytes", g.new_bytes},
                        {"retained_bytes", g.retained_bytes >= 0 ? json(g.retained_bytes) : json(nullptr)}});
      if (!g.retainer_path.empty())
        retainers.push_back({{"group", g.name},
                             {"type", g.type},
                             {"path", g.retainer_path},
                             {"text", fmt::format("{}", fmt::join(g.retainer_path, " -> "))},
                             {"location", g.location.empty() ? json(nullptr) : json(g.location)}});
    }
    for (const auto& c : s.diff->collections)
      collections.push_back({{"type", c.type},
                             {"name", c.name},
                             {"id", c.id},
                             {"entries_before", c.entries_before},
                             {"entries_after", c.entries_after},
                             {"retainer_path", c.retainer_path},
                             {"text", fmt::format("{}", fmt::join(c.retainer_path, " -> "))}});
    j["diff"] = {
        {"t_s", s.diff->t_s},
        {"from_t_s", s.diff->from_t_s},
        {"groups", std::move(groups)},
        {"collections", std::move(collections)},
        {"retained_note", s.diff->retained_note.empty() ? json(nullptr) : json(s.diff->retained_note)}};
    j["retainers"] = std::move(retainers);
  }
  return j;
}

std::vector<std::string> js_snapshot_growth_lines(const json& js, size_t limit) {
  std::vector<std::string> out;
  auto d = js.find("diff");
  if (d == js.end() || !d->is_object()) return out;
  // A path on one line: from the innermost closure scope when there is one (the app's own variable), else
  // its last steps; report.json has it whole.
  auto short_path = [](const json& path) {
    std::vector<std::string> steps;
    for (const auto& p : path)
      if (p.is_string()) steps.push_back(p.get<std::string>());
    size_t from = 0;
    for (size_t i = 0; i < steps.size(); ++i)
      if (steps[i].rfind("(scope", 0) == 0) from = i;
    std::string text =
        fmt::format("{}{}", from > 0 ? "... -> " : "",
                    fmt::join(steps.begin() + static_cast<std::ptrdiff_t>(from), steps.end(), " -> "));
    if (text.size() > 160) text = "... " + text.substr(text.size() - 156);
    return text;
  };
  std::map<std::string, std::string> held_by, where;
  for (const auto& r : js.value("retainers", json::array())) {
    held_by[r.value("type", "") + "\t" + r.value("group", "")] = short_path(r.value("path", json::array()));
    if (r.contains("location") && r["location"].is_string())
      where[r.value("type", "") + "\t" + r.value("group", "")] = r["location"].get<std::string>();
  }
  for (const auto& g : d->value("groups", json::array())) {
    if (out.size() >= limit) break;
    std::string key = g.value("type", "") + "\t" + g.value("name", "");
    std::string line = fmt::format(
        "grows: {} x {} (+{})", g.value("name", ""), g.value("count_delta", int64_t{0}),
        format_bytes(static_cast<uint64_t>(std::max<int64_t>(0, g.value("bytes_delta", int64_t{0})))));
    if (g.contains("retained_bytes") && g["retained_bytes"].is_number())
      line += fmt::format(", retaining {}", format_bytes(g["retained_bytes"].get<uint64_t>()));
    if (auto h = held_by.find(key); h != held_by.end() && !h->second.empty()) line += " held by " + h->second;
    if (auto w = where.find(key); w != where.end()) line += " (" + w->second + ")";
    out.push_back(std::move(line));
  }
  for (const auto& c : d->value("collections", json::array())) {
    if (out.size() >= limit + 2) break;
    std::string path = short_path(c.value("retainer_path", json::array()));
    out.push_back(fmt::format("grows: {} {} -> {} entries, held by {}", c.value("name", ""),
                              c.value("entries_before", uint64_t{0}), c.value("entries_after", uint64_t{0}),
                              path));
  }
  return out;
}

std::string js_snapshots_line(const json& js) {
  const json& snaps = js.value("snapshots", json::array());
  if (snaps.empty()) return "";
  size_t ok = 0;
  double max_pause = 0;
  uint64_t peak = 0, growth = 0;
  std::string refused, file_error;
  size_t files = 0;
  for (const auto& s : snaps) {
    if (s.contains("file")) ++files;
    if (file_error.empty()) file_error = s.value("file_error", "");
    if (s.value("ok", false)) {
      ++ok;
      max_pause = std::max(max_pause, s.value("pause_ms", 0.0));
      uint64_t p = s.value("memlens_peak_rss_bytes", uint64_t{0}),
               b = s.value("memlens_rss_before_bytes", uint64_t{0});
      peak = std::max(peak, p);
      growth = std::max(growth, p > b ? p - b : 0);
    } else if (refused.empty()) {
      refused = s.value("error", "");
    }
  }
  std::string line = fmt::format(
      "heap snapshots: {} taken, longest pause {:.0f} ms, memlens peak RSS {} (+{} while reading and diffing "
      "one)",
      ok, max_pause, format_bytes(peak), format_bytes(growth));
  if (files > 0) line += fmt::format("; {} written to the report directory (heap-PID-N.heapsnapshot)", files);
  if (!file_error.empty()) line += "; a snapshot file was not written: " + file_error;
  if (!refused.empty()) line += "; " + refused;
  return line;
}

symbolize::StackProfile js_live_profile_frame(int64_t time_ns, int64_t duration_ns) {
  symbolize::StackProfile prof;
  prof.kind = model::stack_kind::kJsLive;
  prof.sample_types = {{"inuse_space", "bytes"}, {"inuse_objects", "count"}};
  prof.time_ns = time_ns;
  prof.duration_ns = duration_ns;
  return prof;
}

void append_js_live_samples(const model::Process& p, symbolize::StackProfile& profile) {
  const auto& s = p.js_objects;
  for (const auto& [id, point] : s.last) {
    symbolize::StackSample sample;
    sample.pid = p.pid();
    for (const auto& f : s.stacks[id]) {
      symbolize::Frame fr;
      fr.kind = symbolize::FrameKind::kJs;
      fr.function = js_frame_name(f);
      fr.module = f.url.empty() ? "[v8]" : f.url;
      sample.stack.push_back(std::move(fr));
    }
    sample.values = {static_cast<int64_t>(point.bytes), static_cast<int64_t>(point.objects)};
    profile.samples.push_back(std::move(sample));
  }
}

}  // namespace memlens::report
